"""Slimmable conv, transposed conv and linear layers.

Each layer keeps its full weights and, at the active width, uses the leading
``in_channels_list[i]`` input and ``out_channels_list[i]`` output channels. Groups are kept
constant across widths (as Detectron2's ``NUM_GROUPS``), so the per-group channel count shrinks.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d
from torch import nn

from .width import SlimmableModule

__all__ = ["SlimConv2d", "SlimConvTranspose2d", "SlimLinear"]


class _SlicedWeights(SlimmableModule):
    """Per-width channel counts and leading-slice access to ``weight``/``bias``.

    In inference (autograd off) the sliced weight is cached as a dense tensor per width and
    refreshed when the parameter changes (its version counter), so a narrow width runs on
    contiguous weights like a network built at that width.
    """

    weight: torch.Tensor
    bias: Optional[torch.Tensor]
    groups: int
    # Which weight dimension holds output channels (0 for conv/linear, 1 for transposed conv).
    _out_dim: int = 0

    def _init_channels(self, widths: Sequence[float], in_channels_list: Sequence[int],
                       out_channels_list: Sequence[int], groups: int) -> None:
        self._init_widths(widths)
        if not (len(in_channels_list) == len(out_channels_list) == len(self.widths)):
            raise ValueError("need one input and one output channel count per width")
        for c_in, c_out in zip(in_channels_list, out_channels_list):
            if c_in % groups or c_out % groups:
                raise ValueError(
                    f"channels ({c_in} in, {c_out} out) not divisible by groups={groups}")
        self.in_channels_list = tuple(int(c) for c in in_channels_list)
        self.out_channels_list = tuple(int(c) for c in out_channels_list)
        self._dense: dict[int, tuple[tuple[int, int], torch.Tensor, Optional[torch.Tensor]]] = {}

    def _slices(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        i = self.width_index
        c_in, c_out = self.in_channels_list[i], self.out_channels_list[i]
        if self._out_dim == 0:
            weight = self.weight[:c_out, : c_in // self.groups]
        else:
            weight = self.weight[:c_in, : c_out // self.groups]
        return weight, None if self.bias is None else self.bias[:c_out]

    def active_params(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Weight and bias restricted to the active width."""
        if torch.is_grad_enabled() or torch.jit.is_tracing() or torch.jit.is_scripting():
            self._dense.clear()
            return self._slices()
        version = (self.weight._version, -1 if self.bias is None else self.bias._version)
        hit = self._dense.get(self.width_index)
        if hit is None or hit[0] != version or hit[1].device != self.weight.device:
            weight, bias = self._slices()
            hit = (version, weight.contiguous(), None if bias is None else bias.contiguous())
            self._dense[self.width_index] = hit
        return hit[1], hit[2]

    def _check_input(self, x: torch.Tensor) -> None:
        expected = self.in_channels_list[self.width_index]
        if x.dim() > 1 and x.shape[1] != expected:
            raise ValueError(
                f"{type(self).__name__} at width {self.widths[self.width_index]} expects "
                f"{expected} input channels, got {x.shape[1]}; switch the whole model with "
                "slimdet.set_width"
            )

    def _apply(self, fn, *args, **kwargs):
        self._dense.clear()  # device/dtype moves invalidate the dense copies
        return super()._apply(fn, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, in_channels_list={self.in_channels_list}, "
                f"out_channels_list={self.out_channels_list}, widths={self.widths}")


class SlimConv2d(_SlicedWeights, Conv2d):
    """Detectron2 ``Conv2d`` (conv, optional norm, optional activation) with slimmable channels."""

    def __init__(self, widths: Sequence[float], in_channels_list: Sequence[int],
                 out_channels_list: Sequence[int], kernel_size, *, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, norm: Optional[nn.Module] = None,
                 activation: Optional[Callable] = None):
        Conv2d.__init__(self, max(in_channels_list), max(out_channels_list), kernel_size,
                        stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias,
                        norm=norm, activation=activation)
        self._init_channels(widths, in_channels_list, out_channels_list, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        weight, bias = self.active_params()
        x = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


class SlimConvTranspose2d(_SlicedWeights, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with slimmable channels (weight layout: in, out/groups, kH, kW)."""

    _out_dim = 1

    def __init__(self, widths: Sequence[float], in_channels_list: Sequence[int],
                 out_channels_list: Sequence[int], kernel_size, *, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1):
        nn.ConvTranspose2d.__init__(self, max(in_channels_list), max(out_channels_list),
                                    kernel_size, stride=stride, padding=padding,
                                    output_padding=output_padding, groups=groups, bias=bias,
                                    dilation=dilation)
        self._init_channels(widths, in_channels_list, out_channels_list, groups)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if output_size is not None:
            raise NotImplementedError("SlimConvTranspose2d does not take output_size")
        self._check_input(x)
        weight, bias = self.active_params()
        return F.conv_transpose2d(x, weight, bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


class SlimLinear(_SlicedWeights, nn.Linear):
    """``nn.Linear`` with slimmable input/output features.

    Inputs flattened from (C, H, W) keep channel-major order, so the leading ``C_w * H * W``
    input features are exactly the leading ``C_w`` channels.
    """

    groups = 1

    def __init__(self, widths: Sequence[float], in_features_list: Sequence[int],
                 out_features_list: Sequence[int], *, bias: bool = True):
        nn.Linear.__init__(self, max(in_features_list), max(out_features_list), bias=bias)
        self._init_channels(widths, in_features_list, out_features_list, 1)

    def _check_input(self, x: torch.Tensor) -> None:
        expected = self.in_channels_list[self.width_index]
        if x.shape[-1] != expected:
            raise ValueError(
                f"SlimLinear at width {self.widths[self.width_index]} expects {expected} input "
                f"features, got {x.shape[-1]}; switch the whole model with slimdet.set_width"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        weight, bias = self.active_params()
        return F.linear(x, weight, bias)
