#!/usr/bin/env python
"""Run a slimmable detector on images or a video and draw what it finds, like Detectron2's
demo/demo.py, at a fixed width, under a latency budget, or at every width side by side.

    tools/predict.py --config-file configs/Synthetic/slim_mask_rcnn_R18_FPN.yaml \\
        --input 'datasets/synthetic/images/val/00000[1-3].png' --all-widths --output out/ \\
        --opts MODEL.WEIGHTS output/demo/model_final.pth
    tools/predict.py --config-file ... --input clip.mp4 --latency-budget 40 --output out/ \\
        [--profile profile.json] --opts MODEL.WEIGHTS ...

Images: one picture per input in --output (with --all-widths one panel per width, captioned with
width, latency, GFLOPs and detections). Video: the annotated video and a CSV of frame, time,
width, latency; with --latency-budget the width adapts after every frame (WidthController).
"""
from __future__ import annotations

import argparse
import csv
import glob
import logging
import os
import time
from typing import Optional, Sequence

import cv2
import numpy as np
from detectron2.config import CfgNode
from detectron2.data.detection_utils import read_image
from detectron2.utils.logger import setup_logger
from detectron2.utils.video_visualizer import VideoVisualizer

from slimdet.layers import width_key, width_scope
from slimdet.runtime import (SlimmablePredictor, WidthProfile, draw_panel, side_by_side,
                             with_caption)
from slimdet.utils import load_slimmable_config

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
logger = logging.getLogger("slimdet.predict")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--input", nargs="+", required=True,
                        help="image files or glob patterns, or one video file")
    parser.add_argument("--output", required=True, help="directory for pictures, video and CSV")
    parser.add_argument("--confidence-threshold", type=float, default=0.5)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--width", type=float, help="run at this width (default: the widest)")
    mode.add_argument("--latency-budget", type=float, metavar="MS",
                      help="adapt the width to keep every call within MS milliseconds")
    mode.add_argument("--all-widths", action="store_true",
                      help="images only: one picture per input with a panel per width")
    parser.add_argument("--profile", help="profile JSON of this device (tools/profile_widths.py) "
                        "for --latency-budget; default: measure every width on the first input")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls per width with --all-widths (median reported)")
    parser.add_argument("--scale", type=float, default=1.0, help="enlarge drawings by this factor")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER,
                        help="config options KEY VALUE ... (e.g. MODEL.WEIGHTS file.pth)")
    return parser.parse_args(argv)


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    cfg = load_slimmable_config(args.config_file, args.opts)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.confidence_threshold
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = args.confidence_threshold
    cfg.freeze()
    return cfg


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Files named or matched by ``patterns``, in order; a pattern matching nothing is an error."""
    files = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise ValueError(f"--input {pattern!r}: no such file (and no file matches it as a "
                             "glob pattern)")
        files.extend(matches)
    return files


def read_bgr(path: str) -> np.ndarray:
    """An image file as a BGR uint8 array, or ``ValueError`` naming the file."""
    try:
        return read_image(path, format="BGR")
    except Exception as err:  # PIL and PathManager raise many types for unreadable files
        raise ValueError(f"cannot read image {path}: {type(err).__name__}: {err}") from err


def _caption(width: float, latency_ms: float, detections: int, gflops: Optional[float] = None,
             budget_ms: Optional[float] = None) -> str:
    parts = [width_key(width), f"{latency_ms:.0f} ms" + (f"/{budget_ms:g}" if budget_ms else "")]
    if gflops is not None:
        parts.append(f"{gflops:.2f} GFLOPs")
    parts.append(f"{detections} det")
    return " | ".join(parts)


def predict_images(predictor: SlimmablePredictor, files: Sequence[str],
                   args: argparse.Namespace) -> list[str]:
    metadata = predictor.metadata
    written = []
    for path in files:
        image = read_bgr(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        if args.all_widths:
            profile = predictor.profile(image, repeats=args.repeats, warmup=1)
            panels = []
            for w in predictor.widths:
                with width_scope(predictor.model, w):
                    instances = predictor(image)["instances"]
                cost = profile.widths[w]
                panels.append(draw_panel(image, instances, metadata, _caption(
                    w, cost["latency_ms"]["median"], len(instances), cost["gflops"]), args.scale))
            picture, out = side_by_side(panels), os.path.join(args.output, f"{stem}_widths.png")
        else:
            width = predictor.width
            instances = predictor(image)["instances"]
            caption = _caption(width, predictor.last_latency_ms, len(instances),
                               budget_ms=predictor.budget_ms)
            picture = draw_panel(image, instances, metadata, caption, args.scale)
            out = os.path.join(args.output, f"{stem}.png")
        cv2.imwrite(out, picture)
        logger.info("%s -> %s", path, out)
        written.append(out)
    return written


def predict_video(predictor: SlimmablePredictor, path: str, args: argparse.Namespace) -> dict:
    video = cv2.VideoCapture(path)
    ok, frame = video.read()
    if not video.isOpened() or not ok:
        raise ValueError(f"cannot read video {path}: OpenCV opened no frame from it")
    fps = video.get(cv2.CAP_PROP_FPS) or 25.0
    stem = os.path.splitext(os.path.basename(path))[0]
    out_video, out_csv = (os.path.join(args.output, f"{stem}.{ext}") for ext in ("mp4", "csv"))
    visualizer = VideoVisualizer(predictor.metadata)
    writer = None
    start = time.perf_counter()
    with open(out_csv, "w", newline="") as f:
        table = csv.writer(f)
        table.writerow(["frame", "time_s", "width", "latency_ms", "over_budget", "detections"])
        index = 0
        while ok:
            width = predictor.width
            instances = predictor(frame)["instances"].to("cpu")
            latency = predictor.last_latency_ms
            over = predictor.budget_ms is not None and latency > predictor.budget_ms
            table.writerow([index, f"{time.perf_counter() - start:.3f}", f"{width:g}",
                            f"{latency:.2f}", int(over), len(instances)])
            f.flush()  # readable while the video runs (tools/adaptive_load_test.py polls it)
            drawn = visualizer.draw_instance_predictions(frame[:, :, ::-1], instances)
            drawn = with_caption(np.ascontiguousarray(drawn.get_image()[:, :, ::-1]), _caption(
                width, latency, len(instances), budget_ms=predictor.budget_ms))
            if writer is None:
                writer = cv2.VideoWriter(out_video, cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (drawn.shape[1], drawn.shape[0]))
            writer.write(drawn)
            ok, frame = video.read()
            index += 1
    writer.release()
    video.release()
    logger.info("%s: %d frames -> %s, %s", path, index, out_video, out_csv)
    return {"video": out_video, "csv": out_csv, "frames": index}


def main(argv: Optional[Sequence[str]] = None):
    args = parse_args(argv)
    setup_logger(name="slimdet")
    files = expand_inputs(args.input)
    is_video = files[0].lower().endswith(VIDEO_SUFFIXES)
    if is_video and (len(files) > 1 or args.all_widths):
        raise ValueError("a video is predicted alone and without --all-widths; got "
                         f"{len(files)} inputs" + (" and --all-widths" if args.all_widths else ""))
    if args.profile and args.latency_budget is None:
        raise ValueError("--profile is used with --latency-budget")
    cfg = setup_cfg(args)
    profile = WidthProfile.load(args.profile) if args.profile else None
    predictor = SlimmablePredictor(cfg, width=args.width, latency_budget_ms=args.latency_budget,
                                   profile=profile)
    os.makedirs(args.output, exist_ok=True)
    if is_video:
        return predict_video(predictor, files[0], args)
    return predict_images(predictor, files, args)


if __name__ == "__main__":
    main()
