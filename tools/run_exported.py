#!/usr/bin/env python
"""Run a slimmable detector exported with every width in one file (tools/export_width.py
--all-widths) with torch or ONNX Runtime, numpy and OpenCV only: no slimdet, no Detectron2.

    tools/run_exported.py export/model.onnx --width 0.5 --input image.png --output out.json \\
        --draw out.png
    tools/run_exported.py export/model.pt --latency-budget 40 --input 'frames/*.png' \\
        --output out.json [--profile profile.json]

--output writes {"width", "latency_ms", "instances": [{"bbox": [x0, y0, x1, y1], "score",
"category_id", "category", "segmentation" (COCO RLE), "keypoints"}]} in input-image pixels
(a list of them, with "input", for several inputs). With --latency-budget the width adapts
frame by frame (slimdet_lite.LatencyController), starting from --profile (written by
--write-profile) or from a measurement of every width on the first input.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import time
from typing import Optional, Sequence

import cv2
from slimdet_lite import (ExportedModel, LatencyController, draw_detections, load_profile,
                          measure_widths, save_profile)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model.pt or model.onnx, next to its model.json")
    parser.add_argument("--input", nargs="+", required=True, help="image files or glob patterns")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--width", type=float, help="run at this width (default: the widest)")
    mode.add_argument("--latency-budget", type=float, metavar="MS",
                      help="adapt the width frame by frame to keep each within MS milliseconds")
    parser.add_argument("--profile", help="per-width latencies of this device for the budget")
    parser.add_argument("--write-profile", metavar="FILE",
                        help="measure every width on the first input, write them to FILE")
    parser.add_argument("--output", help="detections as JSON")
    parser.add_argument("--draw", help="picture of the detections (a folder for several inputs)")
    parser.add_argument("--min-score", type=float, default=0.5, help="drawn instances' score")
    parser.add_argument("--threads", type=int, help="the runtime's intra-op threads")
    return parser.parse_args(argv)


def _inputs(patterns: Sequence[str]) -> list[str]:
    files = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise SystemExit(f"--input {pattern!r}: no such file")
        files.extend(matches)
    return files


def _read(path: str):
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read image {path}")
    return image


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    args = parse_args(argv)
    if args.profile and args.latency_budget is None:
        raise SystemExit("--profile goes with --latency-budget")
    files = _inputs(args.input)
    try:  # errors as one line that names the file or the flag
        model = ExportedModel(args.model, args.threads)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(str(e)) from None
    try:
        width = max(model.widths) if args.width is None else model.widths[model.index(args.width)]
    except ValueError as e:
        raise SystemExit(f"--width {args.width:g}: {e}") from None
    controller = None
    if args.write_profile or args.latency_budget is not None:
        reference = (load_profile(args.profile, model) if args.profile else
                     measure_widths(model, _read(files[0])))
        if args.write_profile:
            save_profile(args.write_profile, model, _read(files[0]).shape, reference, args.threads)
        if args.latency_budget is not None:
            controller = LatencyController(model.widths, args.latency_budget, reference)
    results = []
    for path in files:
        image = _read(path)
        width = controller.width if controller is not None else width
        start = time.perf_counter()
        result = model(image, width)
        result["latency_ms"] = round((time.perf_counter() - start) * 1e3, 2)
        if controller is not None:
            controller.observe(result["latency_ms"])
        result["input"] = path
        results.append(result)
        print(f"{path}: width {result['width']:g}, {result['latency_ms']:.1f} ms, "
              f"{len(result['instances'])} detections")
        if args.draw:
            out = (args.draw if len(files) == 1 else
                   os.path.join(args.draw, os.path.splitext(os.path.basename(path))[0] + ".png"))
            os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
            caption = f"w{result['width']:g} | {result['latency_ms']:.0f} ms | " \
                      f"{len(result['instances'])} det"
            cv2.imwrite(out, draw_detections(image, result, caption, args.min_score))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results[0] if len(files) == 1 else results, f)
    return results


if __name__ == "__main__":
    main()
