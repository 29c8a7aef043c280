#!/usr/bin/env python
"""Train and evaluate slimmable detectors (Detectron2's train_net flags).

    tools/train_net.py --config-file configs/COCO/slim_mask_rcnn_R50_FPN.yaml --num-gpus 8
    tools/train_net.py --config-file ... --eval-only MODEL.WEIGHTS output/.../model_final.pth
"""
from detectron2.evaluation import verify_results
from detectron2.utils import comm

from slimdet.engine import SlimmableTrainer
from slimdet.engine.run_setup import evaluate_checkpoint, launch_command, setup_run
from slimdet.layers import width_key


def main(args):
    cfg = setup_run(args)
    if args.eval_only:
        results = evaluate_checkpoint(SlimmableTrainer, cfg, args)
        if comm.is_main_process():  # TEST.EXPECTED_RESULTS hold for the widest width
            verify_results(cfg, results[width_key(max(cfg.MODEL.SLIMMABLE.WIDTHS))])
        return results
    trainer = SlimmableTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    launch_command(main)
