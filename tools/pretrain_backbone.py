#!/usr/bin/env python
"""Pretrain a slimmable, universally slimmable or single-width ResNet backbone for image
classification (Detectron2's train_net flags), then write it for detection.

    tools/pretrain_backbone.py --config-file configs/Pretrain/clutter_classes_R18.yaml \\
        [--num-gpus N] [--resume] [KEY VALUE ...]
    tools/pretrain_backbone.py ... MODEL.SLIMMABLE.WIDTHS "[0.5]"   # an individual ResNet

The data is any ImageFolder layout registered with slimdet.data.image_folder
(clutter_classes_{train,val}: python -m slimdet.data.clutter_classes). Every width trains on
every iteration (universal models: the sandwich rule), with per-width top-1 at the end
(TEST.EVAL_PERIOD: also during training), progress and ETA, exact resume. The run writes
OUTPUT_DIR/backbone.pth: the ResNet's weights named as a ResNet-FPN detector's
(backbone.bottom_up.*), for MODEL.WEIGHTS of a detection config with the same MODEL.RESNETS
and MODEL.SLIMMABLE.WIDTHS (e.g. MODEL.RESNETS.NORM FrozenBN to fine-tune with frozen norms).
"""
import os

import torch
from detectron2.utils import comm

from slimdet.checkpoint import backbone_checkpoint
from slimdet.engine import ClassificationTrainer
from slimdet.engine.run_setup import evaluate_checkpoint, launch_command, setup_run


def main(args):
    cfg = setup_run(args)
    if args.eval_only:
        return evaluate_checkpoint(ClassificationTrainer, cfg, args)
    trainer = ClassificationTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    results = trainer.train()
    if comm.is_main_process():
        path = os.path.join(cfg.OUTPUT_DIR, "backbone.pth")
        model = trainer.model.module if comm.get_world_size() > 1 else trainer.model
        torch.save(backbone_checkpoint(model), path)
        print(f"Backbone for detection: {path}")
    return results


if __name__ == "__main__":
    launch_command(main)
