"""Gradient clipping of the whole model: one L2 norm over every parameter's gradient.

Detectron2's ``SOLVER.CLIP_GRADIENTS`` clips each parameter on its own ("value", "norm"). The
official slimmable detection code (mmdetection's ``grad_clip``) and DETR clip the norm of all
gradients together, which keeps their direction: ``CLIP_TYPE "full_model"``. In a slimmable
step it clips the gradient summed over the widths, once, before the optimizer steps.
"""
from __future__ import annotations

import torch

__all__ = ["full_model_clipping"]


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
