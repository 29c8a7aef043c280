#!/usr/bin/env python
"""Does the width controller hold its latency budget when the machine gets busy?

Writes a video from images, runs tools/predict.py --latency-budget on it in a subprocess, and
once a given share of the frames is done starts a CPU-heavy process (PyTorch matrix products on
every core). Then it reports, before and after the load: the share of frames over budget, the
widths used, and how many frames and seconds the controller took to step down; and draws
latency and width per frame (DIR/load_test.png).

    tools/adaptive_load_test.py --config-file configs/Synthetic/slim_mask_rcnn_R18_FPN.yaml \\
        --weights output/demo/model_final.pth --budget 60 --output output/load_test \\
        [--profile output/demo/profile.json]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from typing import Optional, Sequence

import cv2

from slimdet.evaluation.plot import plot_load_test
from slimdet.runtime import load_test_rows, summarize_load_test

HOG = ("import torch\ntorch.set_num_threads({threads})\na = torch.randn(1024, 1024)\n"
       "while True:\n    a @ a\n")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--budget", type=float, required=True, metavar="MS")
    parser.add_argument("--output", required=True, metavar="DIR")
    parser.add_argument("--profile", help="profile JSON passed on to tools/predict.py")
    parser.add_argument("--images", default="datasets/synthetic/images/val/*.png",
                        help="glob of the frames' images, used in a loop")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--load-at", type=float, default=0.5,
                        help="share of the frames after which the load starts")
    parser.add_argument("--load-threads", type=int, default=os.cpu_count())
    return parser.parse_args(argv)


def write_video(pattern: str, frames: int, path: str) -> None:
    files = sorted(glob.glob(pattern))
    if not files:
        raise ValueError(f"no image matches {pattern!r}; generate the synthetic data first")
    first = cv2.imread(files[0])
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 25.0,
                             (first.shape[1], first.shape[0]))
    for i in range(frames):
        writer.write(cv2.imread(files[i % len(files)]))
    writer.release()


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    video = os.path.join(args.output, "clip.mp4")
    write_video(args.images, args.frames, video)
    out_dir = os.path.join(args.output, "predict")
    csv_path = os.path.join(out_dir, "clip.csv")
    if os.path.exists(csv_path):
        os.remove(csv_path)
    predict = [sys.executable, os.path.join(os.path.dirname(__file__), "predict.py"),
               "--config-file", args.config_file, "--input", video, "--output", out_dir,
               "--latency-budget", str(args.budget)]
    if args.profile:
        predict += ["--profile", args.profile]
    proc = subprocess.Popen(predict + ["--opts", "MODEL.WEIGHTS", args.weights])
    hog, load_frame = None, None
    try:
        while proc.poll() is None:
            done = len(load_test_rows(csv_path))
            if hog is None and done >= args.frames * args.load_at:
                hog = subprocess.Popen([sys.executable, "-c",
                                        HOG.format(threads=args.load_threads)])
                load_frame = done
            time.sleep(0.02)
    finally:
        if hog is not None:
            hog.kill()
    if proc.returncode:
        raise SystemExit(f"tools/predict.py failed with exit code {proc.returncode}")
    rows = load_test_rows(csv_path)
    if load_frame is None:
        raise SystemExit("the video ended before the load started")
    result = summarize_load_test(rows, load_frame, args.budget)
    with open(os.path.join(args.output, "load_test.json"), "w") as f:
        json.dump(result, f, indent=2)
    plot_load_test(rows, load_frame, args.budget, os.path.join(args.output, "load_test.png"))
    print(json.dumps(result, indent=2))
    print(f"Plot: {os.path.join(args.output, 'load_test.png')}")
    return result


if __name__ == "__main__":
    main()
