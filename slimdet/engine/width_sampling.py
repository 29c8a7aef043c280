"""Which widths a training iteration visits: every listed width, or the sandwich rule.

The sandwich rule (Yu & Huang, "Universally Slimmable Networks", ICCV 2019) trains the widest
and the narrowest width and ``n - 2`` widths drawn uniformly between them on every iteration.
The draw is a pure function of (seed, iteration), so a resumed run draws what the uninterrupted
one drew and every DDP process draws the same widths without communicating.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from detectron2.config import CfgNode

from ..config import train_widths, universal_range

__all__ = ["WidthSchedule", "FixedWidths", "SandwichWidths", "width_schedule"]


class WidthSchedule:
    """The widths of training iteration ``iteration``, widest first."""

    def __call__(self, iteration: int) -> list[float]:
        raise NotImplementedError


class FixedWidths(WidthSchedule):
    """The same widths on every iteration (slimmable training over a width list)."""

    def __init__(self, widths: Sequence[float]):
        self.widths = sorted((float(w) for w in widths), reverse=True)

    def __call__(self, iteration: int) -> list[float]:
        return list(self.widths)


class SandwichWidths(WidthSchedule):
    """Widest, narrowest and ``num_widths - 2`` widths uniform in between, per iteration."""

    def __init__(self, lowest: float, highest: float, num_widths: int, seed: int):
        if num_widths < 2 or not 0 < lowest < highest:
            raise ValueError(f"the sandwich rule needs 0 < lowest < highest and at least 2 "
                             f"widths, got [{lowest}, {highest}] and {num_widths}")
        self.lowest, self.highest, self.num_widths, self.seed = lowest, highest, num_widths, seed

    def __call__(self, iteration: int) -> list[float]:
        rng = np.random.default_rng([self.seed, iteration])
        sampled = rng.uniform(self.lowest, self.highest, self.num_widths - 2)
        return [self.highest, *sorted(sampled.tolist(), reverse=True), self.lowest]


def width_schedule(cfg: CfgNode, seed: int) -> WidthSchedule:
    """``TRAIN_WIDTHS`` on every iteration, or for a universal model without ``TRAIN_WIDTHS``
    the sandwich rule over its range with ``SANDWICH_WIDTHS`` widths, drawn from ``seed`` (with
    ``TRAIN_WIDTHS``, a universal model trains those widths only: its shared norms without the
    sampling)."""
    width_range = universal_range(cfg)
    if width_range is None or cfg.MODEL.SLIMMABLE.TRAIN_WIDTHS:
        return FixedWidths(train_widths(cfg))
    return SandwichWidths(*width_range, cfg.MODEL.SLIMMABLE.SANDWICH_WIDTHS, seed)
