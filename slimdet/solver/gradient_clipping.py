"""Gradient clipping of the whole model: one L2 norm over every parameter's gradient.

Detectron2's ``SOLVER.CLIP_GRADIENTS`` clips each parameter on its own ("value", "norm"). The
official slimmable detection code (mmdetection's ``grad_clip``) and DETR clip the norm of all
gradients together, which keeps their direction: ``CLIP_TYPE "full_model"``. In a slimmable
step it clips the gradient summed over the widths, once, before the optimizer steps.
``CLIP_TYPE "per_width"`` (``WidthGradientClipping``) clips what each width adds instead, before
the sum: every width is held to the step an individually trained network of that width would
get under ``"full_model"``, however many widths the step visits.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch

__all__ = ["full_model_clipping", "WidthGradientClipping"]


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


class WidthGradientClipping:
    """Clips the gradient one backward pass adds to the accumulated ``.grad`` at a joint L2
    norm of ``max_norm``, leaving what was there before untouched.

    Args:
        params: the parameters whose gradients accumulate (those that require grad).
        max_norm: the threshold of all those gradients' L2 norm together.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], max_norm: float):
        if max_norm <= 0:
            raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_VALUE must be positive, got {max_norm}")
        self.params = [p for p in params if p.requires_grad]
        self.max_norm = float(max_norm)

    def __call__(self, backward: Callable[[], None], scale: float = 1.0) -> float:
        """Run ``backward`` and clip its increment; returns the increment's norm before
        clipping. ``scale`` is what the gradients are multiplied by (a gradient scaler's):
        the threshold applies to the unscaled increment."""
        before = {p: p.grad.detach().clone() for p in self.params if p.grad is not None}
        backward()
        added = {p: p.grad.detach() - before.get(p, 0.0) for p in self.params
                 if p.grad is not None}
        if not added:
            return 0.0
        norm = float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in added.values()]))) / scale
        factor = self.max_norm / (norm + 1e-6)
        if factor < 1:
            for p, g in added.items():
                p.grad.copy_(before.get(p, 0.0) + g * factor)
        return norm
