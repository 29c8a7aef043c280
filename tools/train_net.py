#!/usr/bin/env python
"""Train and evaluate slimmable detectors (Detectron2's train_net flags).

    tools/train_net.py --config-file configs/COCO/slim_mask_rcnn_R50_FPN.yaml --num-gpus 8
    tools/train_net.py --config-file ... --eval-only MODEL.WEIGHTS output/.../model_final.pth
"""
from detectron2.engine import default_argument_parser, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm

from slimdet.checkpoint import SlimmableCheckpointer
from slimdet.engine import SlimmableTrainer
from slimdet.engine.run_setup import check_devices, setup_run
from slimdet.layers import width_key


def main(args):
    cfg = setup_run(args)
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
