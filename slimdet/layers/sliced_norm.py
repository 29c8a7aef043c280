"""Norms shared by every width and sliced to it, for universally slimmable models.

A universal model runs at any width in a range, so it cannot keep one norm per width. As in
US-Nets (Yu & Huang, ICCV 2019), one full-width norm holds the parameters and a width whose layer
has ``C`` channels uses their leading ``C`` entries:

* GroupNorm: groups of the full width's size, ``C / (C_full / G)`` of them; the model's widths
  are multiples of ``1 / G`` so that ``C`` is a whole number of groups (``width_quantum``);
* FrozenBN: its frozen statistics are sliced too;
* BatchNorm: batch statistics in training; in evaluation, statistics *calibrated* for that width
  after training (``slimdet.calibrate_norms``), which the norm stores (and checkpoints) per
  width. A width without them is an error that says to calibrate.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from detectron2.layers import FrozenBatchNorm2d
from torch import nn

from .switchable_norm import _device_of
from .width import ChannelRule, SlimmableModule

__all__ = ["SlicedGroupNorm", "SlicedFrozenBatchNorm2d", "SlicedBatchNorm2d", "sliced_norm",
           "add_width_offsets", "CALIBRATION_BUFFERS", "WIDTH_OFFSETS"]

CALIBRATION_BUFFERS = ("calibrated_widths", "calibrated_mean", "calibrated_var")
WIDTH_OFFSETS = ("weight_offset", "bias_offset")  # (listed widths, channels) each


def _interpolation(widths: Sequence[float], width: float) -> list[tuple[int, float]]:
    """(index in ``widths``, weight) of the listed widths that interpolate ``width`` linearly:
    the width itself if listed, the nearest end outside the list, else the two around it."""
    for i, w in enumerate(widths):
        if math.isclose(w, width, abs_tol=1e-9):
            return [(i, 1.0)]
    below = [i for i, w in enumerate(widths) if w < width]
    above = [i for i, w in enumerate(widths) if w > width]
    if not below or not above:
        return [(min(above, key=widths.__getitem__) if above else
                 max(below, key=widths.__getitem__), 1.0)]
    lo, hi = max(below, key=widths.__getitem__), min(above, key=widths.__getitem__)
    t = (width - widths[lo]) / (widths[hi] - widths[lo])
    return [(lo, 1.0 - t), (hi, t)]


class _SlicedNorm(SlimmableModule):
    """Channel bookkeeping shared by the sliced norms."""

    channel_rule: ChannelRule
    active_channels: int

    def _switch(self, width: float) -> None:
        self.__dict__["active_channels"] = self.channel_rule.at(width)

    def affine_at(self, width: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-width weight and bias at ``width``: the shared ones, plus the width offsets
        interpolated at ``width`` where the norm has them."""
        if "weight_offset" not in self._parameters:
            return self.weight, self.bias
        mix = _interpolation(self.widths, width)
        return tuple(base + sum(t * offset[i] for i, t in mix) for base, offset in
                     ((self.weight, self.weight_offset), (self.bias, self.bias_offset)))

    def _affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.active_channels
        weight, bias = self.affine_at(self.active_width)
        return weight[:c], bias[:c]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, channels={self.channel_rule}, range={self.width_range}"


class SlicedGroupNorm(_SlicedNorm, nn.GroupNorm):
    """``nn.GroupNorm`` of the full width, applied to the leading channels of the width in
    groups of the full width's size: a group normalises the same channels at every width."""

    def _switch(self, width: float) -> None:
        super()._switch(width)
        group_size = self.num_channels // self.num_groups
        if self.active_channels % group_size:
            raise ValueError(f"GroupNorm of {self.num_channels} channels in groups of "
                             f"{group_size}: {self.active_channels} channels at width {width} "
                             "are no whole number of groups")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.active_channels
        groups = c * self.num_groups // self.num_channels
        return F.group_norm(x, groups, *self._affine(), self.eps)


class SlicedFrozenBatchNorm2d(_SlicedNorm, FrozenBatchNorm2d):
    """Detectron2's ``FrozenBatchNorm2d`` of the full width, statistics and affine sliced."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.active_channels
        weight, bias = self.weight[:c], self.bias[:c]
        mean, var = self.running_mean[:c], self.running_var[:c]
        if not x.requires_grad:  # the same fused op as Detectron2's FrozenBatchNorm2d
            return F.batch_norm(x, mean, var, weight, bias, False, 0.0, self.eps)
        scale = weight * (var + self.eps).rsqrt()
        shift = bias - mean * scale
        return x * scale.reshape(1, -1, 1, 1).to(x.dtype) + shift.reshape(1, -1, 1, 1).to(x.dtype)


class SlicedBatchNorm2d(_SlicedNorm, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` of the full width whose affine parameters are sliced to the width.

    Training normalises with the batch's statistics. Evaluation uses the statistics calibrated
    for the active width, kept in the buffers ``calibrated_widths`` (K,), ``calibrated_mean``
    and ``calibrated_var`` (K, C): they travel with the state dict, and loading resizes them.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(num_features, eps, momentum)
        channels = num_features
        self.register_buffer("calibrated_widths", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("calibrated_mean", torch.zeros(0, channels))
        self.register_buffer("calibrated_var", torch.zeros(0, channels))
        self._sums: list[torch.Tensor] | None = None  # (sum of means, sum of vars, batches)

    def calibrated_index(self, width: float) -> int | None:
        """Row of ``width`` in the calibrated statistics, or None."""
        for i, w in enumerate(self.calibrated_widths.tolist()):
            if math.isclose(w, width, abs_tol=1e-7):  # float32 if the model was cast
                return i
        return None

    def start_calibration(self) -> None:
        """Accumulate the batch statistics of the following training-mode forwards."""
        self._sums = [torch.zeros(0)] * 2 + [0]

    def finish_calibration(self, width: float) -> None:
        """Store the cumulative averages of the accumulated batch means and (unbiased)
        variances as ``width``'s statistics (replacing earlier ones), padded to full width."""
        mean_sum, var_sum, batches = self._sums
        self._sums = None
        if not batches:
            raise RuntimeError("no batch reached this BatchNorm during calibration")
        rows = torch.zeros(2, self.num_features, device=self.weight.device)
        rows[0, : mean_sum.numel()] = mean_sum / batches
        rows[1, : var_sum.numel()] = var_sum / batches
        i = self.calibrated_index(width)
        if i is None:
            self.calibrated_widths = torch.cat([self.calibrated_widths,
                                                self.calibrated_widths.new_tensor([width])])
            self.calibrated_mean = torch.cat([self.calibrated_mean, rows[:1]])
            self.calibrated_var = torch.cat([self.calibrated_var, rows[1:]])
        else:
            self.calibrated_mean[i], self.calibrated_var[i] = rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self._affine()
        if self.training:
            if self._sums is not None:
                with torch.no_grad():
                    dims = [0, 2, 3]
                    mean_sum, var_sum, batches = self._sums
                    mean, var = x.mean(dims), x.var(dims, unbiased=True)
                    self._sums = [mean + (mean_sum if batches else 0),
                                  var + (var_sum if batches else 0), batches + 1]
            return F.batch_norm(x, None, None, weight, bias, True, 0.0, self.eps)
        mean, var = self.statistics(self.active_width)
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, self.eps)

    def statistics(self, width: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated (mean, variance) at ``width``; ``RuntimeError`` saying to calibrate if
        there are none."""
        i = self.calibrated_index(width)
        if i is None:
            raise RuntimeError(
                f"BatchNorm has no statistics for width {width:g} (calibrated: "
                f"{self.calibrated_widths.tolist()}); run slimdet.calibrate_norms(model, "
                f"[{width:g}], data_loader, num_batches) after training")
        c = self.channel_rule.at(width)
        return self.calibrated_mean[i, :c], self.calibrated_var[i, :c]

    def fit_calibration_to(self, state_dict: dict, prefix: str) -> None:
        """Resize the calibrated statistics to those in ``state_dict`` (as many widths as it
        has), so that loading it neither fails nor drops them."""
        for name in CALIBRATION_BUFFERS:
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name],
                                                     device=self.weight.device))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self.fit_calibration_to(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def sliced_norm(norm: nn.Module, widths: Sequence[float], width_range: Sequence[float],
                rule: ChannelRule) -> nn.Module:
    """The sliced version of the full-width ``norm``, with a copy of its parameters and
    statistics, whose channels at each width follow ``rule``."""
    if type(norm) is nn.GroupNorm:
        new = SlicedGroupNorm(norm.num_groups, norm.num_channels, norm.eps, norm.affine)
    elif type(norm) is FrozenBatchNorm2d:
        new = SlicedFrozenBatchNorm2d(norm.num_features, norm.eps)
    elif type(norm) is nn.BatchNorm2d:
        new = SlicedBatchNorm2d(norm.num_features, norm.eps, norm.momentum)
    else:
        raise TypeError(f"universal mode has no sliced version of {type(norm).__name__}; use "
                        "BN, FrozenBN or GN (MODEL.*.NORM)")
    new.load_state_dict(norm.state_dict(), strict=False)  # calibrated statistics start empty
    new.channel_rule = rule
    new._init_widths(widths, width_range)
    return new.to(_device_of(norm)).train(norm.training)


def add_width_offsets(model: nn.Module) -> int:
    """Give every sliced GroupNorm and BatchNorm of ``model`` per-width affine offsets
    (``WIDTH_OFFSETS``, zero, one row per listed width); return how many norms got them.
    FrozenBN keeps its frozen affine map."""
    count = 0
    for module in model.modules():
        if isinstance(module, (SlicedGroupNorm, SlicedBatchNorm2d)) and module.affine:
            for name, base in zip(WIDTH_OFFSETS, (module.weight, module.bias)):
                module.register_parameter(name, nn.Parameter(
                    base.new_zeros(len(module.widths), base.numel())))
            count += 1
    return count
