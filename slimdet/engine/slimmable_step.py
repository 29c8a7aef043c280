"""One slimmable training step: every width's forward/backward on the same batch, one update.

Gradients of all widths accumulate locally; under DDP they are all-reduced once per iteration
(after the last width), not once per width. Per-width norms get gradients from one width only,
which DDP's own reducer cannot express (it expects the same parameters in every synced
backward), so the step runs every width under ``no_sync`` and averages gradients itself.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import TYPE_CHECKING, Callable, ContextManager, Optional, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..layers import set_width
from ..solver import average_gradients

if TYPE_CHECKING:
    from .distillation import InplaceDistillation

__all__ = ["forward_backward_widths", "all_reduce_gradients"]


def forward_backward_widths(
    model: nn.Module,
    data: list,
    widths: Sequence[float],
    backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
    autocast: Callable[[], ContextManager] = nullcontext,
    distillation: Optional[InplaceDistillation] = None,
    scope: Callable[[float], ContextManager] = lambda width: nullcontext(),
    loss_scale: float = 1.0,
    inspect: Optional[Callable[[dict[str, torch.Tensor]], None]] = None,
) -> dict[float, dict[str, torch.Tensor]]:
    """For each width, widest first: switch, forward, check the losses, backward.

    Only one width's graph is alive at a time. Gradients accumulate in ``.grad``; the caller
    zeroes them before and steps the optimizer after.

    Args:
        model, data: the (possibly DDP-wrapped) slimmable model and one batch.
        widths: the widths of this step.
        backward, autocast: how to back-propagate a loss (e.g. through a gradient scaler) and
            the precision context of the forward.
        distillation: the widest width's predictions are kept (detached) and every other width
            adds its distillation losses (and weighs its ground-truth classification losses).
        scope: a context per width around its forward and backward (e.g. Detectron2's
            ``EventStorage.name_scope``, so that what the model logs is logged per width).
        loss_scale: each width back-propagates ``loss_scale`` times its total loss.
        inspect: called, inside ``scope``, with each width's loss dict before its backward
            (e.g. the gradient probe taking the loss terms apart).

    Returns:
        Each width's detached, unscaled losses. Leaves the model at the widest width.
    """
    no_sync = model.no_sync if isinstance(model, DistributedDataParallel) else nullcontext
    capturing = distillation.capturing if distillation is not None else lambda _: nullcontext()
    losses_per_width = {}
    widest = max(widths)
    for width in sorted(widths, reverse=True):
        set_width(model, width)
        with scope(width), no_sync(), capturing(model):
            with autocast():
                loss_dict = model(data)
                if distillation is not None and width != widest:
                    loss_dict = distillation.weigh_ground_truth(loss_dict)
                    loss_dict.update(distillation.student_losses(model))
                total = sum(loss_dict.values())
            if not math.isfinite(total.item()):
                bad = {k: v.item() for k, v in loss_dict.items() if not math.isfinite(v.item())}
                raise FloatingPointError(f"non-finite loss at width {width}: {bad}")
            if inspect is not None:
                inspect(loss_dict)
            backward(total * loss_scale)
        if distillation is not None and width == widest:
            distillation.keep_teacher()
        losses_per_width[width] = {k: v.detach() for k, v in loss_dict.items()}
    set_width(model, widest)
    return losses_per_width


def all_reduce_gradients(model: nn.Module) -> None:
    """Average ``.grad`` over processes in one flat all-reduce per dtype
    (``slimdet.solver.average_gradients`` of the model's parameters)."""
    average_gradients(model.parameters())
