"""Per-width latency of an exported model on this device: measured, saved, loaded and checked,
so that a latency budget can start at the right width without measuring again."""
from __future__ import annotations

import json
import statistics
import time
from typing import Callable, Optional

import numpy as np

from .exported import ExportedModel

__all__ = ["measure_widths", "save_profile", "load_profile"]


def measure_widths(model: ExportedModel, image_bgr: np.ndarray, repeats: int = 5,
                   warmup: int = 1,
                   clock: Callable[[], float] = time.perf_counter) -> dict[float, float]:
    """Median latency in ms of a whole call (prepare, run, results) per width on
    ``image_bgr``; the widths take turns, so that a change of load hits them alike."""
    for _ in range(warmup):
        for w in model.widths:
            model(image_bgr, w)
    times: dict[float, list[float]] = {w: [] for w in model.widths}
    for _ in range(repeats):
        for w in model.widths:
            start = clock()
            model(image_bgr, w)
            times[w].append((clock() - start) * 1e3)
    return {w: statistics.median(t) for w, t in times.items()}


def save_profile(path: str, model: ExportedModel, image_shape: tuple[int, ...],
                 latency_ms: dict[float, float], threads: Optional[int]) -> None:
    """Write the latencies with what they were measured for (file, widths, image size,
    threads)."""
    with open(path, "w") as f:
        json.dump({"model": model.path, "widths": model.widths,
                   "image_size": list(image_shape[:2]), "threads": threads,
                   "latency_ms": {f"{w:g}": ms for w, ms in latency_ms.items()}}, f, indent=2)


def load_profile(path: str, model: ExportedModel) -> dict[float, float]:
    """The latency per width of a profile written by ``save_profile`` for ``model``'s widths;
    ``ValueError`` if it was measured for other widths."""
    with open(path) as f:
        profile = json.load(f)
    if [float(w) for w in profile.get("widths", [])] != model.widths:
        raise ValueError(f"{path} was measured for widths {profile.get('widths')}, the model "
                         f"holds {model.widths}")
    return {float(w): float(ms) for w, ms in profile["latency_ms"].items()}
