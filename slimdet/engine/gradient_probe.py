"""What each width adds to the summed gradient of a slimmable training step.

A slimmable step accumulates every width's gradient in ``.grad`` before one optimizer step.
Whether the widths pull the shared weights together or apart is invisible in the sum; the
probe reads ``.grad`` after each width's backward and keeps the increment: its L2 norm and its
cosine with the widest width's increment (the first width of a step).
"""
from __future__ import annotations

from typing import Iterable

import torch

__all__ = ["GradientProbe"]


class GradientProbe:
    """Per-width gradient increments of one training step.

    Args:
        params: the parameters whose gradients are read (those that require grad).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter]):
        self.params = [p for p in params if p.requires_grad]
        self._seen: torch.Tensor | None = None
        self._widest: torch.Tensor | None = None

    def _flat_grad(self) -> torch.Tensor:
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p))
                          .detach().reshape(-1).float() for p in self.params])

    def start(self) -> None:
        """Begin a step: gradients are zero (or absent) from here on."""
        self._seen = self._widest = None

    def measure(self, scale: float = 1.0) -> dict[str, float]:
        """The increment since the last call (or ``start``) as ``grad_norm`` and, after the
        first (widest) width of the step, ``grad_cos_widest``. ``scale`` divides the gradients
        first (a gradient scaler's scale)."""
        grad = self._flat_grad() / scale
        added = grad if self._seen is None else grad - self._seen
        self._seen = grad
        stats = {"grad_norm": float(added.norm())}
        if self._widest is None:
            self._widest = added
        else:
            denominator = float(added.norm() * self._widest.norm())
            stats["grad_cos_widest"] = (float(added @ self._widest) / denominator
                                        if denominator > 0 else 0.0)
        return stats

    def total_norm(self, scale: float = 1.0) -> float:
        """L2 norm of the whole accumulated gradient."""
        return float(self._flat_grad().norm()) / scale
