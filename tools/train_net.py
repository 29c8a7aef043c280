#!/usr/bin/env python
"""Train and evaluate slimmable detectors (Detectron2's train_net flags).

    tools/train_net.py --config-file configs/COCO/slim_mask_rcnn_R50_FPN.yaml --num-gpus 8
    tools/train_net.py --config-file ... --eval-only MODEL.WEIGHTS output/.../model_final.pth
"""
import torch
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from slimdet.checkpoint import SlimmableCheckpointer
from slimdet.config import validate_slimmable_config
from slimdet.engine import SlimmableTrainer
from slimdet.layers import width_key
from slimdet.utils import load_slimmable_config


def setup(args):
    cfg = load_slimmable_config(args.config_file, args.opts)
    cfg.freeze()
    validate_slimmable_config(cfg)  # bad widths fail before the output folder is touched
    check_devices(cfg.MODEL.DEVICE, args.num_gpus)
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="slimdet")
    return cfg


def check_devices(device: str, num_gpus: int) -> None:
    """Fail before any work when the run asks for GPUs this machine does not have."""
    available = torch.cuda.device_count()
    if num_gpus > 1 and num_gpus > available:
        raise SystemExit(f"--num-gpus {num_gpus}: this machine has {available} CUDA device(s); "
                         f"pass --num-gpus {max(available, 1)} (CPU training runs one process)")
    if device.startswith("cuda") and not available:
        raise SystemExit(f"MODEL.DEVICE {device}: PyTorch sees no CUDA device here; add "
                         "MODEL.DEVICE cpu to the command line")


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = SlimmableTrainer.build_model(cfg)
        SlimmableCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume)
        results = SlimmableTrainer.test(cfg, model)
        if comm.is_main_process():  # TEST.EXPECTED_RESULTS hold for the widest width
            verify_results(cfg, results[width_key(max(cfg.MODEL.SLIMMABLE.WIDTHS))])
        return results
    trainer = SlimmableTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    check_devices("cpu", args.num_gpus)  # before launch spawns processes
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
