#!/usr/bin/env python
"""Export one width of a slimmable model as a plain Detectron2 config, checkpoint and, optionally,
a traced TorchScript model.

    tools/export_width.py --config-file configs/COCO/slim_mask_rcnn_R50_FPN.yaml --width 0.5 \\
        --weights output/slim_mask_rcnn_R50_FPN/model_final.pth --output export/w0.5 --torchscript

Writes DIR/config.yaml and DIR/model.pth, which plain Detectron2 loads with
``get_cfg().merge_from_file`` and ``DetectionCheckpointer(build_model(cfg)).load``, and with
--torchscript DIR/model.ts, traced on a random image of --input-size and checked against the
eager model on that image. The outputs of the exported and slimmable models on the same image
are compared too; both maximum errors are printed.
"""
from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

import torch
from detectron2.utils.logger import setup_logger

import slimdet
from slimdet.benchmark import random_images
from slimdet.export import export_torchscript, max_output_difference, save_export
from slimdet.utils import load_slimmable_model


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--width", type=float, required=True)
    parser.add_argument("--weights", help="slimmable or stock checkpoint (default: random init)")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--torchscript", action="store_true", help="also write a traced model.ts")
    parser.add_argument("--input-size", type=int, nargs=2, default=(512, 683), metavar=("H", "W"),
                        help="size of the random image used for tracing and the checks")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config options KEY VALUE ...")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict[str, object]:
    args = parse_args(argv)
    setup_logger(name="slimdet")
    cfg, model = load_slimmable_model(args.config_file, args.opts, args.weights)
    cfg_w, model_w = slimdet.export_at_width(cfg, model, args.width)
    report: dict[str, object] = save_export(cfg_w, model_w.eval(), args.output)
    inputs = random_images(*args.input_size, model_w.device)
    with slimdet.width_scope(model, args.width), torch.no_grad():
        expected = model_w(inputs)
        report["detections_compared"] = len(expected[0]["instances"])
        report["max_error_vs_slimmable"] = max_output_difference(model(inputs), expected)
    if args.torchscript:
        report["torchscript"] = os.path.join(args.output, "model.ts")
        report["max_error_torchscript"] = export_torchscript(model_w, inputs, report["torchscript"])
    for key, value in report.items():
        print(f"{key}: {value}")
    return report


if __name__ == "__main__":
    main()
