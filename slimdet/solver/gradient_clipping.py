"""Gradient clipping of the whole model: one L2 norm over every parameter's gradient.

Detectron2's ``SOLVER.CLIP_GRADIENTS`` clips each parameter on its own ("value", "norm"). The
official slimmable detection code (mmdetection's ``grad_clip``) and DETR clip the norm of all
gradients together, which keeps their direction: ``CLIP_TYPE "full_model"``. In a slimmable
step it clips the gradient summed over the widths, once, before the optimizer steps.
``CLIP_TYPE "per_width"`` (``WidthGradientClipping`` with a ``FixedNorm``) clips what each width
adds instead, before the sum: every width is held to the step an individually trained network of
that width would get under ``"full_model"``, however many widths the step visits.
``CLIP_TYPE "per_width_percentile"`` (a ``NormPercentile``) clips each width at a percentile of
that width's own norm history (AutoClip, Seetharaman et al. 2020): a threshold without units,
which means the same for any model, loss weights, image and batch size.

Per-width clipping reads each width's gradient averaged over the processes of a distributed run
(one all-reduce per width), so a run on N processes clips what one process of the same global
batch would.
"""
from __future__ import annotations

import bisect
import math
from typing import Callable, Iterable

import torch

from .gradient_averaging import average_gradients

__all__ = ["full_model_clipping", "WidthGradientClipping", "FixedNorm", "NormPercentile",
           "PER_WIDTH_CLIP_TYPES", "width_clip_threshold"]


class _FullModelClipping:
    """Optimizer mixin: ``step`` first scales all gradients to a joint norm of at most
    ``max_norm`` and keeps the norm before clipping in ``grad_norm``."""

    max_norm: float
    norm_type: float
    grad_norm: float = float("nan")

    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        self.grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.max_norm,
                                                              self.norm_type))
        return super().step(closure)


def full_model_clipping(optimizer: torch.optim.Optimizer, max_norm: float,
                        norm_type: float = 2.0) -> torch.optim.Optimizer:
    """A new optimizer of ``optimizer``'s type, parameter groups and defaults whose ``step``
    clips the joint ``norm_type`` norm of all gradients at ``max_norm``."""
    if max_norm <= 0:
        raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_VALUE must be positive, got {max_norm}")
    kind = type(f"FullModelClipping{type(optimizer).__name__}",
                (_FullModelClipping, type(optimizer)), {})
    clipped = kind(optimizer.param_groups, **optimizer.defaults)
    clipped.max_norm, clipped.norm_type = float(max_norm), float(norm_type)
    return clipped


class FixedNorm:
    """The threshold of ``CLIP_TYPE "per_width"``: ``max_norm`` for every width, always."""

    def __init__(self, max_norm: float):
        if max_norm <= 0:
            raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_VALUE must be positive, got {max_norm}")
        self.max_norm = float(max_norm)

    def __call__(self, key: str, norm: float) -> float:
        return self.max_norm

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class NormPercentile:
    """The threshold of ``CLIP_TYPE "per_width_percentile"``: the ``percentile`` of the norms
    one width (``key``) had so far, this step's included (AutoClip; linear interpolation, as
    ``numpy.percentile``). The history is the state a resumed run needs to clip as the
    uninterrupted one; non-finite norms (a gradient scaler's overflow, a step it skips) do not
    enter it. A sorted copy of each history keeps a step's cost independent of its length."""

    def __init__(self, percentile: float):
        if not 0 < percentile <= 100:
            raise ValueError("SOLVER.CLIP_GRADIENTS.PERCENTILE must be in (0, 100], got "
                             f"{percentile}")
        self.percentile = float(percentile)
        self.history: dict[str, list[float]] = {}
        self._sorted: dict[str, list[float]] = {}

    def __call__(self, key: str, norm: float) -> float:
        if not math.isfinite(norm):
            return math.inf
        self.history.setdefault(key, []).append(norm)
        ordered = self._sorted.setdefault(key, [])
        bisect.insort(ordered, norm)
        rank = self.percentile / 100 * (len(ordered) - 1)
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

    def state_dict(self) -> dict:
        return {"history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.history = {k: [float(x) for x in v] for k, v in state.get("history", {}).items()}
        self._sorted = {k: sorted(v) for k, v in self.history.items()}


class WidthGradientClipping:
    """Clips the gradient one backward pass adds to the accumulated ``.grad`` at a joint L2
    norm given by ``threshold``, leaving what was there before untouched.

    The increment is back-propagated into empty gradients (what was accumulated is put aside
    and added back after), so it costs one gradient copy, not a clone per width; under a
    process group it is averaged over the processes before its norm is taken.

    Args:
        params: the parameters whose gradients accumulate (those that require grad).
        threshold: a ``FixedNorm``, a ``NormPercentile`` or a number (a fixed norm).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter],
                 threshold: FixedNorm | NormPercentile | float):
        self.params = [p for p in params if p.requires_grad]
        self.threshold = (threshold if isinstance(threshold, (FixedNorm, NormPercentile))
                          else FixedNorm(threshold))

    def __call__(self, backward: Callable[[], None], key: str = "", scale: float = 1.0) -> float:
        """Run ``backward`` and clip its increment; returns the increment's norm before
        clipping. ``key`` names the width (its own history under ``NormPercentile``);
        ``scale`` is what the gradients are multiplied by (a gradient scaler's): the threshold
        applies to the unscaled increment."""
        kept = {p: p.grad for p in self.params if p.grad is not None}
        for p in kept:
            p.grad = None
        backward()
        average_gradients(self.params)
        added = [p.grad for p in self.params if p.grad is not None]
        norm = (float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g.detach().float()) for g in added]))) / scale
            if added else 0.0)
        limit = self.threshold(key, norm)
        if math.isfinite(norm) and norm > limit:
            factor = limit / (norm + 1e-6)
            for g in added:
                g.mul_(factor)
        for p, g in kept.items():
            p.grad = g if p.grad is None else g.add_(p.grad)
        return norm


# The CLIP_TYPEs that clip each width's gradient before the sum, in the training loop.
PER_WIDTH_CLIP_TYPES = ("per_width", "per_width_percentile")


def width_clip_threshold(cfg) -> FixedNorm | NormPercentile | None:
    """The per-width clipping threshold of ``cfg.SOLVER.CLIP_GRADIENTS`` (None unless it is
    enabled with a per-width ``CLIP_TYPE``); ``ValueError`` naming a bad value."""
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if not (clip.ENABLED and clip.CLIP_TYPE in PER_WIDTH_CLIP_TYPES):
        return None
    if clip.NORM_TYPE != 2.0:
        raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE {clip.CLIP_TYPE} clips the L2 norm: "
                         f"NORM_TYPE must be 2.0, got {clip.NORM_TYPE}")
    if clip.CLIP_TYPE == "per_width":
        return FixedNorm(clip.CLIP_VALUE)
    return NormPercentile(clip.PERCENTILE)
