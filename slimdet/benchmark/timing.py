"""Wall-clock timing of several callables, interleaved so they share the machine's load.

Why interleave: on a shared or thermally throttled machine, timing model A for a minute and then
model B for a minute compares two different machines. Running the candidates round-robin (in a
rotating order) exposes each of them to the same background load, so their ratios stay
meaningful even when the absolute numbers are noisy.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

import torch

__all__ = ["Timing", "time_interleaved"]


@dataclass(frozen=True)
class Timing:
    """Summary of repeated wall-clock times, in milliseconds."""

    median: float
    q1: float
    q3: float
    p90: float
    min: float
    max: float
    repeats: int

    @classmethod
    def of(cls, seconds: list[float]) -> Timing:
        ms = sorted(s * 1e3 for s in seconds)
        if len(ms) == 1:
            return cls(ms[0], ms[0], ms[0], ms[0], ms[0], ms[0], 1)
        q1, _, q3 = statistics.quantiles(ms, n=4)
        p90 = statistics.quantiles(ms, n=10)[8]
        return cls(statistics.median(ms), q1, q3, p90, ms[0], ms[-1], len(ms))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int, warmup: int,
                     device: torch.device) -> dict[str, Timing]:
    """Time every callable ``repeats`` times after ``warmup`` untimed calls each, round-robin in
    an order rotated every round; CUDA work is synchronized inside each measurement."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            _synchronize(device)
            start = time.perf_counter()
            fns[name]()
            _synchronize(device)
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: Timing.of(times[name]) for name in names}
