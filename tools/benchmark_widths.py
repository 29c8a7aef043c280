#!/usr/bin/env python
"""Per-width benchmark of a slimmable R-CNN: parameters, GFLOPs by part, inference latency and
peak memory against stock Detectron2 models of the same width and the exported model, and one
training iteration over all widths against single-width iterations.

    tools/benchmark_widths.py --config-file configs/COCO/slim_mask_rcnn_R50_FPN_slim_heads.yaml \\
        --input-size 512 683 --output output/benchmark/mask_slim_heads

Prints the tables and writes DIR/benchmark.json and DIR/benchmark.png (latency and GFLOPs per
width; plus AP per width with --eval-json). Inference runs with fixed proposal, box-candidate and
detection counts (slimdet.benchmark.FIXED_WORK_OPTS, overridable by opts, and --box-candidates)
so that every width does the same ROI work; the counts are reported.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Optional, Sequence

from detectron2.utils.logger import setup_logger

from slimdet.benchmark import (FIXED_WORK_OPTS, benchmark_widths, format_tables, load_eval_ap,
                               plot_widths)
from slimdet.utils import load_slimmable_model


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--weights", help="slimmable or stock checkpoint (default: random init, "
                        "which costs the same)")
    parser.add_argument("--input-size", type=int, nargs=2, default=(512, 683), metavar=("H", "W"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--widths", type=float, nargs="+", default=(),
                        help="widths to measure (default: the listed ones; a universal model "
                        "takes any of its range)")
    parser.add_argument("--repeats", type=int, default=9, help="timed inference runs per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument("--box-candidates", type=int, default=1000,
                        help="(proposal, class) pairs entering the box NMS, pinned at every width "
                        "through the score threshold, about what a trained detector has at its "
                        "0.05 threshold (0: keep the config's threshold, e.g. with trained "
                        "weights)")
    parser.add_argument("--train-repeats", type=int, default=3,
                        help="timed training iterations of each kind (0: skip training)")
    parser.add_argument("--train-images", type=int, default=1,
                        help="images per training iteration (the COCO configs train on 2 per GPU; "
                        "1 keeps a CPU run short)")
    parser.add_argument("--output", help="directory for benchmark.json and benchmark.png")
    parser.add_argument("--eval-json", help="per-width evaluation results, to plot AP")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config options KEY VALUE ...")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = parse_args(argv)
    setup_logger(name="slimdet")
    cfg, model = load_slimmable_model(
        args.config_file, [*FIXED_WORK_OPTS, *args.opts, "MODEL.DEVICE", args.device], args.weights)
    result = benchmark_widths(cfg, model, height=args.input_size[0], width=args.input_size[1],
                              repeats=args.repeats, warmup=args.warmup,
                              box_candidates=args.box_candidates, train_repeats=args.train_repeats,
                              train_images=args.train_images, widths=args.widths)
    result["config_file"] = args.config_file
    result["opts"] = list(args.opts)
    print(format_tables(result))
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        with open(os.path.join(args.output, "benchmark.json"), "w") as f:
            json.dump(result, f, indent=2)
        ap = load_eval_ap(args.eval_json) if args.eval_json else None
        plot_widths(result, os.path.join(args.output, "benchmark.png"), ap)
    return result


if __name__ == "__main__":
    main()
