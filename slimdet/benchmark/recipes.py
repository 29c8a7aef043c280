"""What a training recipe costs and what it clips, on any config at any input size.

Two measurements through the real training loop (``SlimmableSimpleTrainer``, every width per
iteration on a random batch, ``random_training_batch``):

- ``gradient_norms``: each width's gradient norm over a few training iterations at the config's
  learning rate (what a per-width threshold is compared against), read through a
  ``NormPercentile(100)``, which records every norm and never clips;
- ``recipe_cost``: one iteration of ``sum``, ``widthclip`` (a fixed per-width norm) and
  ``autoclip`` (a per-width percentile), timed interleaved at learning rate 0 (the weights stay
  put), with each one's peak memory.
"""
from __future__ import annotations

import itertools
import statistics
from typing import Any, Iterable

import torch
from detectron2.config import CfgNode
from detectron2.solver import build_optimizer
from detectron2.utils.events import EventStorage
from torch import nn

from ..engine import SlimmableSimpleTrainer
from ..layers import get_widths
from ..solver import FixedNorm, NormPercentile
from .inputs import random_training_batch
from .memory import MIB, with_peak_memory
from .timing import time_interleaved

__all__ = ["gradient_norms", "recipe_cost", "format_recipe_tables"]



def _loop(cfg: CfgNode, model: nn.Module, batches: Iterable[list[dict]], width_clip,
          lr: float) -> SlimmableSimpleTrainer:
    run_cfg = cfg.clone()
    run_cfg.defrost()
    run_cfg.SOLVER.BASE_LR = lr
    run_cfg.SOLVER.CLIP_GRADIENTS.ENABLED = False  # each recipe's clipping is its loop's
    optimizer = build_optimizer(run_cfg, model)
    widths = sorted(get_widths(model), reverse=True)
    return SlimmableSimpleTrainer(model, batches, optimizer, widths=widths, width_clip=width_clip)


def gradient_norms(cfg: CfgNode, model: nn.Module, *, height: int, width: int,
                   iterations: int, images: int = 2) -> dict[str, dict[str, Any]]:
    """Each width's gradient L2 norm over ``iterations`` training iterations (a new random
    batch of ``images`` images of ``height`` x ``width`` each time, at ``SOLVER.BASE_LR``
    scaled to the batch: ``images / IMS_PER_BATCH``, the linear scaling rule): per width its
    norms, median, 10th and 90th percentile."""
    device = torch.device(cfg.MODEL.DEVICE)
    batches = (random_training_batch(cfg, height, width, device, count=images, seed=it)
               for it in itertools.count())
    recorder = NormPercentile(100.0)  # the largest norm so far: never clips
    lr = cfg.SOLVER.BASE_LR * images / cfg.SOLVER.IMS_PER_BATCH
    loop = _loop(cfg, model, batches, recorder, lr)
    model.train()
    try:
        with EventStorage(0):
            for it in range(iterations):
                loop.iter = it
                loop.run_step()
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
    out = {}
    for key, norms in recorder.history.items():
        deciles = (statistics.quantiles(norms, n=10, method="inclusive") if len(norms) > 1
                   else norms * 9)
        out[key] = {"norms": norms, "median": statistics.median(norms), "p10": deciles[0],
                    "p90": deciles[-1]}
    return out


def recipe_cost(cfg: CfgNode, model: nn.Module, *, height: int, width: int, repeats: int,
                clip_value: float, warmup: int = 1, images: int = 2) -> dict[str, Any]:
    """Median time and peak memory of one training iteration under each recipe (learning rate
    0): ``sum``, ``widthclip`` at ``clip_value`` and ``autoclip`` at the config's
    ``SOLVER.CLIP_GRADIENTS.PERCENTILE``; and each one's time and memory against ``sum``'s."""
    device = torch.device(cfg.MODEL.DEVICE)
    batch = random_training_batch(cfg, height, width, device, count=images)
    thresholds = {"sum": 0.0, "widthclip": FixedNorm(clip_value),
                  "autoclip": NormPercentile(cfg.SOLVER.CLIP_GRADIENTS.PERCENTILE)}
    loops = {name: _loop(cfg, model, itertools.repeat(batch), t, 0.0)
             for name, t in thresholds.items()}
    model.train()
    try:
        with EventStorage(0):
            timings = time_interleaved({k: loop.run_step for k, loop in loops.items()},
                                       repeats, warmup, device)
            memory = {}
            for name, loop in loops.items():
                loop.optimizer.zero_grad(set_to_none=True)
                memory[name] = with_peak_memory(loop.run_step, device)[1] / MIB
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
    return {
        "input_size": [height, width], "images": images, "threads": torch.get_num_threads(),
        "latency_ms": {k: t.as_dict() for k, t in timings.items()},
        "peak_memory_mb": memory,
        "time_ratio_vs_sum": {k: timings[k].median / timings["sum"].median for k in timings},
        "extra_memory_mb_vs_sum": {k: memory[k] - memory["sum"] for k in memory},
    }


def format_recipe_tables(result: dict[str, Any]) -> str:
    """Markdown tables of ``gradient_norms`` (per width: median, 10th-90th percentile) and
    ``recipe_cost`` (per recipe: median ms, ratio to sum, peak and extra memory)."""
    lines = []
    if "gradient_norms" in result:
        lines += ["| width | gradient norm: median | 10th-90th percentile |", "|---|---|---|"]
        for key, n in sorted(result["gradient_norms"].items(), reverse=True):
            lines.append(f"| {key} | {n['median']:.2f} | {n['p10']:.2f}-{n['p90']:.2f} |")
        lines.append("")
    if "cost" in result:
        cost = result["cost"]
        lines += ["| recipe | step (ms, median) | vs sum | peak memory (MiB) | extra vs sum |",
                  "|---|---|---|---|---|"]
        for name, t in cost["latency_ms"].items():
            lines.append(f"| {name} | {t['median']:.0f} | {cost['time_ratio_vs_sum'][name]:.3f}x "
                         f"| {cost['peak_memory_mb'][name]:.0f} | "
                         f"{cost['extra_memory_mb_vs_sum'][name]:+.0f} |")
    return "\n".join(lines)
