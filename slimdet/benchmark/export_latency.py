"""Latency per width of the three ways to run one width of a slimmable detector: eager slimdet
(``SlimmablePredictor``), the file holding every width, and a file holding that width alone
(same format and runtime), timed interleaved so that they share the machine's load."""
from __future__ import annotations

import os
from functools import partial
from typing import Callable, Optional

import numpy as np
import torch
from detectron2.config import CfgNode
from torch import nn

from slimdet_lite import ExportedModel

from ..export import export_all_widths
from ..layers import width_key
from .timing import Timing, time_interleaved

__all__ = ["EXPORT_RUNS", "export_latency"]

EXPORT_RUNS = ("eager", "all_widths_file", "single_width_file")


def export_latency(cfg: CfgNode, model: nn.Module, eager: Callable[[float, np.ndarray], object],
                   path: str, image_bgr: np.ndarray, repeats: int = 10,
                   threads: Optional[int] = None) -> dict[float, dict[str, Timing]]:
    """Per width of the all-widths file ``path``: ``EXPORT_RUNS`` timed on ``image_bgr`` (the files
    without their JSON formatting: prepare, run, arrays). The single-width files are exported
    next to ``path`` (``single_width/w<width>/``) with the same format.

    Args:
        cfg: the config the file was exported from.
        model: the slimmable model the file holds.
        eager: runs ``model`` on an image at a width (``SlimmablePredictor.predict_at``).
        path: the all-widths ``model.pt`` or ``model.onnx``.
        image_bgr: the image every run gets.
        repeats: timed calls of each run per width, after 2 untimed ones.
        threads: intra-op threads of the files' runtime (default: the runtime's).
    """
    every = ExportedModel(path, threads)
    fmt = every.description["format"]
    size = tuple(image_bgr.shape[:2])
    results = {}
    for w in every.widths:
        single_dir = os.path.join(os.path.dirname(path), "single_width", width_key(w))
        description = export_all_widths(cfg, model, [w], fmt, single_dir, size)
        single = ExportedModel(os.path.join(single_dir, description["file"]), threads)
        with torch.no_grad():
            runs = (partial(eager, w, image_bgr), partial(every.arrays, image_bgr, w),
                    partial(single.arrays, image_bgr, w))
            results[w] = time_interleaved(dict(zip(EXPORT_RUNS, runs)), repeats, 2,
                                          next(model.parameters()).device)
    return results
