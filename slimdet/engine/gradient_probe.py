"""What each width adds to the summed gradient of a slimmable training step.

A slimmable step accumulates every width's gradient in ``.grad`` before one optimizer step.
Whether the widths pull the shared weights together or apart is invisible in the sum; the
probe reads ``.grad`` after each width's backward and keeps the increment: its L2 norm and its
cosine with the widest width's increment (the first width of a step). With inplace
distillation it also takes a student's loss terms apart (``term_stats``): the gradient of its
ground-truth losses and of each distillation loss, and each one's cosine with the ground truth's.
"""
from __future__ import annotations

from typing import Iterable

import torch

__all__ = ["GradientProbe"]


def _norm(x: torch.Tensor) -> float:
    """L2 norm summed in float64: over millions of float32 terms a float32 sum is off by 1e-4."""
    return float(torch.linalg.vector_norm(x, dtype=torch.float64))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    denominator = _norm(a) * _norm(b)
    return float(torch.dot(a.double(), b.double())) / denominator if denominator > 0 else 0.0


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
        stats = {"grad_norm": _norm(added)}
        if self._widest is None:
            self._widest = added
        else:
            stats["grad_cos_widest"] = _cosine(added, self._widest)
        return stats

    def _gradient_of(self, loss: torch.Tensor) -> torch.Tensor:
        grads = torch.autograd.grad(loss, self.params, retain_graph=True, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float()
                          for g, p in zip(grads, self.params)])

    def term_stats(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """For a loss dict with distillation terms (``distill_*``): ``grad_norm_gt``, the
        gradient norm of the other (ground-truth) losses together, and per term
        ``grad_norm_<term>`` and ``grad_cos_gt_<term>``, its cosine with the ground truth's;
        empty without distillation terms. The graph is kept for the step's own backward; each
        term costs one more backward pass."""
        terms = {k: v for k, v in losses.items() if k.startswith("distill_")}
        if not terms:
            return {}
        gt = self._gradient_of(sum(v for k, v in losses.items() if k not in terms))
        stats = {"grad_norm_gt": _norm(gt)}
        for name, loss in terms.items():
            grad = self._gradient_of(loss)
            stats[f"grad_norm_{name}"] = _norm(grad)
            stats[f"grad_cos_gt_{name}"] = _cosine(grad, gt)
        return stats

    def total_norm(self, scale: float = 1.0) -> float:
        """L2 norm of the whole accumulated gradient."""
        return _norm(self._flat_grad()) / scale
