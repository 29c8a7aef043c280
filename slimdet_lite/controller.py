"""Hold a latency budget while running: switch the width as the load changes.

Model: each width has a reference latency (from a profile or a first measurement) and the
machine has a *slowdown*, the ratio of measured to reference latency, which the controller
follows with an exponential moving average. Another process taking the cores raises the
slowdown of every width alike, so one measurement at the current width predicts them all.

Hysteresis: the controller steps down as soon as ``patience_down`` calls in a row miss the
budget and the smoothed prediction does too, straight to the widest width predicted to fit; it
steps up one width only after ``patience_up`` calls in a row in which that wider width is
predicted to take at most ``headroom`` times the budget. A latency that hovers at the budget
therefore leaves the controller on the narrower width instead of switching back and forth.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, TypeVar

__all__ = ["LatencyController", "Step"]

T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    """One observed call: the width it ran at, its latency, and the width chosen next."""

    width: float
    latency_ms: float
    slowdown: float
    next_width: float


class LatencyController:
    """Chooses, call by call, the width that keeps each call within ``latency_budget_ms``.

    Args:
        widths: the widths to choose from.
        latency_budget_ms: the latency each call should stay within.
        reference_ms: unloaded latency of every width (e.g. a profile's medians).
        start_width: the first call's width (default: the widest whose reference fits).
        on_switch: called with the new width whenever the controller changes it (and once
            with the first width), e.g. to set a model's width.
        clock: seconds, monotonic (``time.perf_counter``; tests inject a fake one).
        smoothing: weight of the newest measurement in the slowdown's moving average.
        headroom: a wider width is taken only if predicted within this fraction of the budget.
        patience_down, patience_up: consecutive calls needed before stepping down / up.
    """

    def __init__(self, widths: Sequence[float], latency_budget_ms: float,
                 reference_ms: Mapping[float, float], *, start_width: Optional[float] = None,
                 on_switch: Callable[[float], None] = lambda width: None,
                 clock: Callable[[], float] = time.perf_counter, smoothing: float = 0.3,
                 headroom: float = 0.9, patience_down: int = 2, patience_up: int = 8):
        if not latency_budget_ms > 0:
            raise ValueError(f"latency budget must be positive, got {latency_budget_ms}")
        if not 0 < smoothing <= 1 or not 0 < headroom <= 1:
            raise ValueError(f"smoothing and headroom must be in (0, 1], got {smoothing}, "
                             f"{headroom}")
        self.widths = sorted(widths)
        missing = [w for w in self.widths if w not in reference_ms]
        if missing:
            raise ValueError(f"reference latencies miss widths {missing} of the model "
                             f"{self.widths}")
        self.on_switch = on_switch
        self.budget_ms = float(latency_budget_ms)
        self.reference_ms = {w: float(reference_ms[w]) for w in self.widths}
        self.clock = clock
        self.smoothing, self.headroom = smoothing, headroom
        self.patience_down, self.patience_up = patience_down, patience_up
        self.slowdown = 1.0
        self.history: list[Step] = []
        self._misses = self._fits = 0
        self._switch(self._widest_fitting(self.budget_ms) if start_width is None else start_width)

    @property
    def width(self) -> float:
        """The width the next call runs at."""
        return self._width

    def predicted_ms(self, width: float) -> float:
        """Latency of ``width`` expected under the current slowdown."""
        return self.slowdown * self.reference_ms[width]

    def run(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` (work that runs the model) at the chosen width, time it, observe it."""
        start = self.clock()
        out = fn()
        self.observe((self.clock() - start) * 1e3)
        return out

    def observe(self, latency_ms: float) -> float:
        """Account one call at the current width that took ``latency_ms``; return the width
        for the next call."""
        width = self._width
        a = self.smoothing
        self.slowdown = (1 - a) * self.slowdown + a * latency_ms / self.reference_ms[width]
        self._misses = self._misses + 1 if latency_ms > self.budget_ms else 0
        wider = self._next_wider(width)
        fits = wider is not None and self.predicted_ms(wider) <= self.headroom * self.budget_ms
        self._fits = self._fits + 1 if fits else 0
        if self._misses >= self.patience_down and self.predicted_ms(width) > self.budget_ms:
            self._switch(self._widest_fitting(self.budget_ms / self.slowdown, below=width))
        elif wider is not None and self._fits >= self.patience_up:
            self._switch(wider)
        self.history.append(Step(width, latency_ms, self.slowdown, self._width))
        return self._width

    def _next_wider(self, width: float) -> Optional[float]:
        i = self.widths.index(width)
        return self.widths[i + 1] if i + 1 < len(self.widths) else None

    def _widest_fitting(self, reference_budget_ms: float, below: Optional[float] = None) -> float:
        """Widest width (narrower than ``below``) whose reference latency is within the budget;
        the narrowest width when none is."""
        candidates = [w for w in self.widths if below is None or w < below] or self.widths[:1]
        fitting = [w for w in candidates if self.reference_ms[w] <= reference_budget_ms]
        return max(fitting) if fitting else min(candidates)

    def _switch(self, width: float) -> None:
        self.on_switch(width)
        self._width = width
        self._misses = self._fits = 0
