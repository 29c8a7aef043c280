#!/usr/bin/env python
"""The paper's comparison, run here: one slimmable network (S-Net) against networks trained
individually at each width (I-Nets), same config and schedule, for every seed; then the report.

    tools/compare_study.py [--config-file configs/Synthetic/clutter_mask_rcnn_R18_FPN.yaml] \\
        [--seeds 0 1] [--universal] [--distill] [--output output/compare] [KEY VALUE ...]

Generates the clutter dataset if it is missing; runs tools/train_net.py once per seed for the
S-Net and once per width and seed for the I-Nets (MODEL.SLIMMABLE.WIDTHS [w]), in
OUTPUT/snet_s<seed> and OUTPUT/inet_w<w>_s<seed>; then writes OUTPUT/report/comparison.{md,json,
csv,png} (--report) with tools/compare_widths.py and OUTPUT/study.json (wall time per run).
--universal adds a universally slimmable model per seed (sandwich rule, evaluated every 1/16
from the narrowest width to 1; OUTPUT/usnet_s<seed>), compared at the S-Net's widths and drawn
as a curve; --distill adds the S-Net (and with --universal the US-Net) trained with inplace
distillation (OUTPUT/snet_distill_s<seed>, usnet_distill_s<seed>), compared with the I-Nets in
OUTPUT/report_distill. Finished runs are kept and a killed run resumes from its last
checkpoint, so running it again continues the study. Progress and the ETA of the whole study
are printed every 30 s (--progress-every); each run's own log is OUTPUT/<run>/log.txt.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Optional, Sequence

from slimdet.data.datasets import annotation_path, default_root
from slimdet.layers import width_key
from slimdet.utils.model_setup import load_slimmable_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY_CONFIG = os.path.join(REPO, "configs", "Synthetic", "clutter_mask_rcnn_R18_FPN.yaml")
# Relative cost of one training iteration at width w: 0.15 + 0.54 w^2, measured with the clutter
# config on a 2-core CPU (0.18 s at 0.25, 0.69 s at 1.0). Only ratios matter: the ETA scales
# them by the speed observed in this study.
_FIXED_COST, _WIDTH_COST = 0.15, 0.54


@dataclass
class Run:
    """One training run of the study."""

    name: str
    opts: list[str]
    widths: list[float]
    max_iter: int

    @property
    def cost(self) -> float:
        return self.max_iter * sum(_FIXED_COST + _WIDTH_COST * w * w for w in self.widths)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", default=STUDY_CONFIG)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--universal", action="store_true",
                        help="also train and compare a universally slimmable model per seed")
    parser.add_argument("--distill", action="store_true",
                        help="also train the S-Net (and US-Net) with inplace distillation per seed")
    parser.add_argument("--output", default="output/compare", metavar="DIR")
    parser.add_argument("--data", default=default_root("clutter"), metavar="DIR",
                        help="clutter dataset root, generated there if missing")
    parser.add_argument("--report", default="report", metavar="NAME",
                        help="folder under OUTPUT for the comparison (NAME_distill: --distill's)")
    parser.add_argument("--progress-every", type=float, default=30, metavar="SECONDS")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    return parser.parse_args(argv)


def universal_test_widths(lowest: float, step: float = 1 / 16) -> list[float]:
    """Every ``step`` from ``lowest`` to 1."""
    count = int(round((1 - lowest) / step))
    return [round(lowest + i * step, 6) for i in range(count + 1)]


def plan(config_file: str, seeds: Sequence[int], opts: Sequence[str], universal: bool = False,
         distill: bool = False) -> list[Run]:
    """Seed by seed: the I-Nets, widest first (the first run shows early whether the benchmark
    suits the schedule), the S-Net, and the distilled S-Net and the US-Net if asked."""
    cfg = load_slimmable_config(config_file, opts)
    widths = sorted((float(w) for w in cfg.MODEL.SLIMMABLE.WIDTHS), reverse=True)
    max_iter = cfg.SOLVER.MAX_ITER
    distilled = ["MODEL.SLIMMABLE.DISTILL.ENABLED", "True"]
    runs = []
    for seed in seeds:
        opts_seed = ["SEED", str(seed)]
        runs += [Run(f"inet_{width_key(w)}_s{seed}",
                     [*opts_seed, "MODEL.SLIMMABLE.WIDTHS", f"[{w}]"], [w], max_iter)
                 for w in widths]
        runs.append(Run(f"snet_s{seed}", opts_seed, widths, max_iter))
        if distill:
            runs.append(Run(f"snet_distill_s{seed}", [*opts_seed, *distilled], widths, max_iter))
        if universal:
            lowest, n = min(widths), cfg.MODEL.SLIMMABLE.SANDWICH_WIDTHS
            usnet = [*opts_seed, "MODEL.SLIMMABLE.UNIVERSAL", "True",
                     "MODEL.SLIMMABLE.TEST_WIDTHS", str(universal_test_widths(lowest))]
            sandwich = [1.0, lowest] + [(1 + lowest) / 2] * (n - 2)
            runs.append(Run(f"usnet_s{seed}", usnet, sandwich, max_iter))
            if distill:
                runs.append(Run(f"usnet_distill_s{seed}", [*usnet, *distilled], sandwich,
                                max_iter))
    return runs


def _finished(folder: str) -> bool:
    return all(os.path.isfile(os.path.join(folder, f))
               for f in ("per_width_results.json", "model_final.pth"))


def _iterations_done(folder: str) -> int:
    """Iterations the run in ``folder`` has logged (Detectron2's metrics.json)."""
    try:
        with open(os.path.join(folder, "metrics.json")) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    done = [json.loads(line).get("iteration", -1) for line in lines if line.startswith("{")]
    return max(done, default=-1) + 1


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


class Progress:
    """Share of the study's work done and its ETA, from the speed observed since start."""

    def __init__(self, runs: list[Run]):
        self.total = sum(r.cost for r in runs)
        self.start = time.monotonic()
        self.done_before = 0.0  # work of the runs finished in an earlier invocation
        self.done = 0.0

    def line(self, index: int, runs: list[Run], run: Run, iterations: int) -> str:
        current = run.cost * min(iterations, run.max_iter) / run.max_iter
        done = self.done + current
        elapsed = time.monotonic() - self.start
        worked = done - self.done_before
        eta = _clock(elapsed / worked * (self.total - done)) if worked > 0 else "estimating"
        return (f"[compare] run {index + 1}/{len(runs)} {run.name}: iter {iterations}/"
                f"{run.max_iter} | study {100 * done / self.total:.0f}% | elapsed "
                f"{_clock(elapsed)} | ETA {eta}")


def train(run: Run, folder: str, args: argparse.Namespace, progress: Progress, index: int,
          runs: list[Run]) -> float:
    """Run (or resume) ``tools/train_net.py`` for ``run`` in ``folder``, printing the study's
    progress every ``args.progress_every`` seconds; returns its wall time in seconds."""
    os.makedirs(folder, exist_ok=True)
    command = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--resume",
               "--config-file", args.config_file, *args.opts, *run.opts, "OUTPUT_DIR", folder]
    start = time.monotonic()
    with open(os.path.join(folder, "stdout.txt"), "a") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            try:
                proc.wait(timeout=args.progress_every)
            except subprocess.TimeoutExpired:
                print(progress.line(index, runs, run, _iterations_done(folder)), flush=True)
    if proc.returncode:
        with open(os.path.join(folder, "stdout.txt")) as f:
            tail = "".join(f.readlines()[-30:])
        raise SystemExit(f"{run.name} failed (exit {proc.returncode}); end of "
                         f"{folder}/stdout.txt:\n{tail}")
    return time.monotonic() - start


def _save(study: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(study, f, indent=2)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    start = time.monotonic()
    if not os.path.isfile(annotation_path(args.data, "instances", "val")):
        subprocess.run([sys.executable, "-m", "slimdet.data.clutter", "--out", args.data],
                       check=True)
    runs = plan(args.config_file, args.seeds, args.opts, args.universal, args.distill)
    progress = Progress(runs)
    study_file = os.path.join(args.output, "study.json")
    runs_before = {}
    if os.path.isfile(study_file):  # a continued study keeps the wall times measured earlier
        with open(study_file) as f:
            runs_before = json.load(f)["runs"]
    study = {"config_file": args.config_file, "seeds": args.seeds, "opts": args.opts,
             "runs": {r.name: runs_before[r.name] for r in runs if r.name in runs_before}}
    for index, run in enumerate(runs):
        folder = os.path.join(args.output, run.name)
        if _finished(folder):
            print(f"[compare] run {index + 1}/{len(runs)} {run.name}: finished earlier, kept")
            progress.done_before += run.cost
        else:
            print(f"[compare] run {index + 1}/{len(runs)} {run.name}: training "
                  f"{run.max_iter} iterations at widths {run.widths}", flush=True)
            seconds = train(run, folder, args, progress, index, runs)
            study["runs"][run.name] = {"wall_s": round(seconds)}
            _save(study, study_file)  # a killed study keeps the wall times of finished runs
            print(f"[compare] run {index + 1}/{len(runs)} {run.name}: done in "
                  f"{_clock(seconds)}", flush=True)
        progress.done += run.cost
    report = os.path.join(args.output, args.report)
    snets, inets, usnets, distilled, usnets_distilled = (
        [os.path.join(args.output, r.name) for r in runs if r.name.startswith(prefix)]
        for prefix in ("snet_s", "inet_", "usnet_s", "snet_distill_", "usnet_distill_"))
    compare = [sys.executable, os.path.join(REPO, "tools", "compare_widths.py"),
               "--individual", *inets]
    for slimmable, universal, suffix in ((snets, usnets, ""),
                                         (distilled, usnets_distilled, "_distill")):
        if slimmable:
            curve = ["--universal", *universal] if universal else []
            subprocess.run([*compare, "--slimmable", *slimmable, *curve,
                            "--output", report + suffix], check=True)
    study["wall_s"] = round(time.monotonic() - start)
    _save(study, study_file)
    print(f"[compare] study done in {_clock(study['wall_s'])}; report in {report}/")
    return study


if __name__ == "__main__":
    main()
