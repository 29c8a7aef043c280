#!/usr/bin/env python
"""Profile every width of a slimmable model on this device at the input size it will see:
latency (median, p90), peak memory and GFLOPs per call of SlimmablePredictor, plus the cost of
switching width. The JSON is what tools/predict.py --profile and
slimdet.runtime.choose_width read.

    tools/profile_widths.py --config-file configs/Synthetic/slim_mask_rcnn_R18_FPN.yaml \\
        --weights output/demo/model_final.pth --input-size 128 128 --output profile.json \\
        [--image datasets/synthetic/images/val/000001.png] [--budgets 20 40 80]

Run it on a quiet machine: the profile is the unloaded reference that the adaptive controller
compares measured latencies against.
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

import cv2
import numpy as np
from detectron2.utils.logger import setup_logger

from slimdet.runtime import SlimmablePredictor, WidthProfile, choose_width
from slimdet.utils import load_slimmable_config


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--weights", help="slimmable or stock checkpoint (default: MODEL.WEIGHTS)")
    parser.add_argument("--input-size", type=int, nargs=2, required=True, metavar=("H", "W"),
                        help="size of the images the application passes to the predictor")
    parser.add_argument("--output", required=True, metavar="FILE", help="profile JSON to write")
    parser.add_argument("--image", help="a representative image, resized to H x W (default: "
                        "uniform noise, which gives an untrained or any model few detections)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per width")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per width first")
    parser.add_argument("--budgets", type=float, nargs="*", default=[], metavar="MS",
                        help="also print the width choose_width picks for these latency budgets")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config options KEY VALUE ...")
    return parser.parse_args(argv)


def _image(path: Optional[str], height: int, width: int) -> np.ndarray:
    if path is None:
        return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = cv2.imread(path)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def main(argv: Optional[Sequence[str]] = None) -> WidthProfile:
    args = parse_args(argv)
    setup_logger(name="slimdet")
    cfg = load_slimmable_config(args.config_file, args.opts)
    if args.weights:
        cfg.MODEL.WEIGHTS = args.weights
    cfg.freeze()
    predictor = SlimmablePredictor(cfg)
    profile = predictor.profile(_image(args.image, *args.input_size), repeats=args.repeats,
                                warmup=args.warmup)
    profile.notes.update(config_file=args.config_file, weights=cfg.MODEL.WEIGHTS,
                         image=args.image or "noise")
    profile.save(args.output)
    print(profile.table())
    for budget in args.budgets:
        try:
            print(f"latency budget {budget:g} ms (p90): width {choose_width(profile, budget):g}")
        except ValueError as err:
            print(f"latency budget {budget:g} ms: {err}")
    print(f"Profile: {args.output}")
    return profile


if __name__ == "__main__":
    main()
