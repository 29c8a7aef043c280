"""Largest difference between two model outputs of any Detectron2 structure."""
from __future__ import annotations

import math
from typing import Any

import torch
from detectron2.export.flatten import flatten_to_tuple

__all__ = ["max_output_difference"]


def _tensors(outputs: Any) -> list[torch.Tensor]:
    flat = outputs if isinstance(outputs, tuple) else flatten_to_tuple(outputs)[0]
    return [t for t in flat if isinstance(t, torch.Tensor)]


def max_output_difference(a: Any, b: Any) -> float:
    """Max absolute difference over all tensors of ``a`` and ``b`` (``Instances``, dicts, lists
    or already flattened tuples, e.g. a traced model's outputs); masks count 1 per differing
    pixel. ``inf`` if the structures or shapes differ (e.g. another number of detections)."""
    ta, tb = _tensors(a), _tensors(b)
    if len(ta) != len(tb) or any(x.shape != y.shape for x, y in zip(ta, tb)):
        return math.inf
    return max(((x.double() - y.double()).abs().max().item() for x, y in zip(ta, tb) if x.numel()),
               default=0.0)
