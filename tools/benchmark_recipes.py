#!/usr/bin/env python
"""What the training recipes cost and what they clip: each width's gradient norm over a few
training iterations on random images of any size, and one iteration of sum, widthclip and
autoclip timed interleaved with their peak memory.

    tools/benchmark_recipes.py --config-file configs/COCO/slim_mask_rcnn_R50_FPN.yaml \\
        --input-size 800 1216 --iterations 8 --output output/benchmark/recipes_R50

Prints both tables and writes DIR/recipes.json. Weights are random unless --weights is given;
autoclip's percentile is the config's (SOLVER.CLIP_GRADIENTS.PERCENTILE, an override).
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Optional, Sequence

from detectron2.utils.logger import setup_logger

from slimdet.benchmark import format_recipe_tables, gradient_norms, recipe_cost
from slimdet.study.plan import DEFAULT_CLIP_VALUE
from slimdet.utils import load_slimmable_model


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--weights", help="slimmable or stock checkpoint (default: random init)")
    parser.add_argument("--input-size", type=int, nargs=2, default=(800, 1216), metavar=("H", "W"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--images", type=int, default=2, help="images per training iteration")
    parser.add_argument("--iterations", type=int, default=8,
                        help="training iterations whose gradient norms are measured (0: none)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed iterations of each recipe (0: no timing)")
    parser.add_argument("--clip-value", type=float, default=DEFAULT_CLIP_VALUE,
                        help="of widthclip")
    parser.add_argument("--output", help="directory for recipes.json")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config options KEY VALUE ...")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = parse_args(argv)
    setup_logger(name="slimdet")
    cfg, model = load_slimmable_model(args.config_file, [*args.opts, "MODEL.DEVICE", args.device],
                                      args.weights)
    height, width = args.input_size
    result: dict[str, Any] = {"config_file": args.config_file}
    if args.iterations:
        result["gradient_norms"] = gradient_norms(cfg, model, height=height, width=width,
                                                  iterations=args.iterations, images=args.images)
    if args.repeats:
        result["cost"] = recipe_cost(cfg, model, height=height, width=width,
                                     repeats=args.repeats, images=args.images,
                                     clip_value=args.clip_value)
    print(format_recipe_tables(result))
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        with open(os.path.join(args.output, "recipes.json"), "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
