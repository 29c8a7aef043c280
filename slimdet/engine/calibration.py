"""BatchNorm statistics of a universal model, computed after training for chosen widths.

A universal model's BatchNorm layers share one set of affine parameters across widths but
cannot share statistics: each width's activations have their own. As in US-Nets, they are
computed after training: at each width, the model runs forward in training mode over a few
training batches and every ``SlicedBatchNorm2d`` keeps the cumulative average of the batch means
and variances it saw (what PyTorch's BatchNorm keeps with ``momentum=None``).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from detectron2.utils.events import EventStorage
from torch import nn

from ..layers import width_scope
from ..layers.sliced_norm import SlicedBatchNorm2d
from ..utils.rng import preserved_rng

__all__ = ["calibrate_norms", "needs_calibration"]


def needs_calibration(model: nn.Module) -> bool:
    """Whether ``model`` has BatchNorm layers whose statistics come from ``calibrate_norms``."""
    return any(isinstance(m, SlicedBatchNorm2d) for m in model.modules())


def calibrate_norms(model: nn.Module, widths: Sequence[float], data_loader: Iterable,
                    num_batches: int) -> None:
    """Compute and store the BatchNorm statistics of ``model`` at each of ``widths`` from
    ``num_batches`` batches of ``data_loader`` (training batches: the model runs in training
    mode, without gradients). The statistics are saved with the model's state dict; earlier
    ones for the same width are replaced. The global random generators, the model's mode and
    its width are left as they were. A model without such layers is left alone."""
    norms = [m for m in model.modules() if isinstance(m, SlicedBatchNorm2d)]
    if not norms:
        return
    if num_batches < 1:
        raise ValueError(f"calibration needs at least one batch, got num_batches={num_batches}")
    was_training = model.training
    model.train()
    try:
        with preserved_rng(), torch.no_grad(), EventStorage():
            for width in widths:
                with width_scope(model, width):
                    for norm in norms:
                        norm.start_calibration()
                    batches = 0
                    for batch in data_loader:
                        model(batch)
                        batches += 1
                        if batches == num_batches:
                            break
                    for norm in norms:
                        norm.finish_calibration(width)
    finally:
        model.train(was_training)
