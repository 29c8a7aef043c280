"""The training console: one line a person reads, every scalar kept in the files.

Detectron2's ``CommonMetricPrinter`` prints every scalar with "loss" in its name; a slimmable
step logs six losses per width (``w0.25/loss_cls``, ...), so its line runs to hundreds of
characters. ``WidthProgressPrinter`` prints instead the ETA, the iteration, the step's
``total_loss``, each width's own total, the iteration time and the learning rate. Every scalar
(each width's losses, the model's own, the gradient probe) stays in ``metrics.json`` and
tensorboard, which Detectron2's other writers keep.
"""
from __future__ import annotations

import datetime
import logging
import time

import torch
from detectron2.utils.events import EventWriter, get_event_storage

from ..layers import parse_width_key

__all__ = ["WidthProgressPrinter"]

logger = logging.getLogger(__name__)


def _width_order(label: str) -> tuple[int, float]:
    """Widest first, the sandwich rule's drawn widths (``sampled``) last."""
    return (1, 0.0) if label == "sampled" else (0, -parse_width_key(label))


class WidthProgressPrinter(EventWriter):
    """One line per ``write``: ``eta``, ``iter``, ``total_loss`` and each width's total loss
    (medians over ``window`` iterations), the mean iteration ``time``, ``lr`` and, on CUDA,
    ``max_mem``; it also stores ``eta_seconds`` as Detectron2's printer does. ``iter`` counts
    the iterations done.

    Args:
        max_iter: the schedule's length (for the ETA).
        window: iterations the medians and the iteration time are taken over.
    """

    def __init__(self, max_iter: int, window: int = 20):
        self.max_iter = max_iter
        self.window = window
        self._last: tuple[int, float] | None = None  # (iteration, time) of the last write

    def write(self) -> None:
        storage = get_event_storage()
        iteration = storage.iter
        if iteration >= self.max_iter:  # the write after training: nothing new
            return
        histories = storage.histories()
        parts = []
        now = time.perf_counter()
        if "time" in histories:  # Detectron2's IterationTimer skips the first iterations
            per_iter = histories["time"].median(1000)
        elif self._last is not None and iteration > self._last[0]:
            per_iter = (now - self._last[1]) / (iteration - self._last[0])
        else:
            per_iter = None
        self._last = (iteration, now)
        if per_iter is not None:
            eta = per_iter * (self.max_iter - iteration - 1)
            storage.put_scalar("eta_seconds", eta, smoothing_hint=False)
            parts.append(f"eta: {datetime.timedelta(seconds=int(eta))}")
        parts.append(f"iter: {iteration + 1}/{self.max_iter}")

        def median(key: str) -> str:
            return f"{histories[key].median(self.window):.4g}"

        if "total_loss" in histories:
            parts.append(f"total_loss: {median('total_loss')}")
        widths = sorted((k.split("/")[0] for k in histories
                         if k.endswith("/total_loss") and k.count("/") == 1), key=_width_order)
        if widths:
            parts.append("(" + "  ".join(f"{w}: {median(w + '/total_loss')}" for w in widths)
                         + ")")
        if "time" in histories:
            parts.append(f"time: {histories['time'].avg(self.window):.3f} s")
        if "lr" in histories:
            parts.append(f"lr: {histories['lr'].latest():.4g}")
        if torch.cuda.is_available():
            parts.append(f"max_mem: {torch.cuda.max_memory_allocated() / 2 ** 20:.0f}M")
        logger.info("  ".join(parts))
