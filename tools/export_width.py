#!/usr/bin/env python
"""Export a slimmable model: one width as a plain Detectron2 model, or every width in one file.

One width (a plain Detectron2 config and checkpoint, optionally a traced TorchScript model.ts):

    tools/export_width.py --config-file configs/COCO/slim_mask_rcnn_R50_FPN.yaml --width 0.5 \\
        --weights output/slim_mask_rcnn_R50_FPN/model_final.pth --output export/w0.5 --torchscript

Every width in ONE file that runs without slimdet and Detectron2 (tools/run_exported.py):

    tools/export_width.py --config-file CFG --weights W --all-widths --format onnx --output DIR

writes DIR/model.onnx (or DIR/model.pt with --format torchscript) and DIR/model.json, then runs
the file at each width on --image (default: a random image of --input-size) and checks its
detections against SlimmablePredictor's: same count and classes, boxes and keypoints within
0.01 px, scores within 1e-4, mask IoU >= 0.99.
"""
from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

import cv2
import numpy as np
import torch
from detectron2.utils.logger import setup_logger

import slimdet
from slimdet import width_key
from slimdet.benchmark import export_latency, random_images
from slimdet.export import (FORMATS, check_exported, export_all_widths, export_torchscript,
                            match_failures, max_output_difference, save_export, state_dict_bytes)
from slimdet.runtime import SlimmablePredictor
from slimdet.utils import load_slimmable_config, load_slimmable_model


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--width", type=float, help="export this width as plain Detectron2")
    which.add_argument("--all-widths", action="store_true",
                       help="export every width in one file (see --format, --widths)")
    parser.add_argument("--widths", type=float, nargs="+",
                        help="with --all-widths: the widths to hold (default: the model's; a "
                             "universal model exports any list)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="torchscript",
                        help="with --all-widths: model.pt (TorchScript) or model.onnx")
    parser.add_argument("--weights", help="slimmable or stock checkpoint (default: random init)")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--torchscript", action="store_true",
                        help="with --width: also write a traced model.ts")
    parser.add_argument("--input-size", type=int, nargs=2, default=(512, 683), metavar=("H", "W"),
                        help="size of the random image used for tracing and the checks")
    parser.add_argument("--image", help="with --all-widths: check the file on this image")
    parser.add_argument("--latency", type=int, default=0, metavar="REPEATS",
                        help="with --all-widths: also time each width REPEATS times: eager, "
                             "this file, and a file of that width alone (single_width/)")
    parser.add_argument("--threads", type=int, help="with --latency: threads of the runtime")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config options KEY VALUE ...")
    return parser.parse_args(argv)


def export_one_width(args: argparse.Namespace) -> dict[str, object]:
    """``--width``: plain Detectron2 files of that width, checked against the slimmable model."""
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
    return report


def export_every_width(args: argparse.Namespace) -> dict[str, object]:
    """``--all-widths``: one file with every width, checked width by width."""
    cfg = load_slimmable_config(args.config_file, args.opts)
    cfg.MODEL.WEIGHTS = args.weights or ""
    cfg.freeze()
    predictor = SlimmablePredictor(cfg)
    widths = args.widths or predictor.widths
    description = export_all_widths(cfg, predictor.model, widths, args.format, args.output,
                                    tuple(args.input_size))
    path = os.path.join(args.output, description["file"])
    if args.image:
        image = cv2.imread(args.image)
        if image is None:
            raise FileNotFoundError(f"cannot read the image {args.image}")
    else:
        image = np.random.default_rng(0).integers(0, 256, (*args.input_size, 3), dtype=np.uint8)
    checks = check_exported(path, predictor.predict_at, image)
    size = os.path.getsize(path)
    report: dict[str, object] = {"file": path, "widths": widths, "bytes": size,
                                 "size_vs_state_dict": size / state_dict_bytes(predictor.model)}
    for w, check in checks.items():
        report[width_key(w)] = check
    report["failures"] = {w: match_failures(c) for w, c in checks.items() if match_failures(c)}
    if args.latency:
        latency = export_latency(cfg, predictor.model, predictor.predict_at, path, image,
                                 args.latency, args.threads)
        report["latency_ms"] = {width_key(w): {run: round(t.median, 2) for run, t in runs.items()}
                                for w, runs in latency.items()}
    return report


def main(argv: Optional[Sequence[str]] = None) -> dict[str, object]:
    args = parse_args(argv)
    setup_logger(name="slimdet")
    if not args.all_widths and (args.widths or args.image):
        raise SystemExit("--widths and --image go with --all-widths")
    report = export_every_width(args) if args.all_widths else export_one_width(args)
    for key, value in report.items():
        print(f"{key}: {value}")
    if report.get("failures"):
        raise SystemExit(f"{report['file']} does not reproduce the slimmable model at widths "
                         f"{sorted(report['failures'])}: {report['failures']}")
    return report


if __name__ == "__main__":
    main()
