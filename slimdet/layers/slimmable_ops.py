"""Slimmable conv, transposed conv and linear layers.

Each layer keeps its full weights and, at the active width, uses the leading
``in_channels_list[i]`` input and ``out_channels_list[i]`` output channels (a universal layer:
the counts its two ``ChannelRule``s give at any width of its range). Groups are kept constant
across widths (as Detectron2's ``NUM_GROUPS``), so the per-group channel count shrinks.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d
from torch import nn

from .width import ChannelRule, SlimmableModule

__all__ = ["SlimConv2d", "SlimConvTranspose2d", "SlimLinear"]


class _SlicedWeights(SlimmableModule):
    """Per-width channel counts and leading-slice access to ``weight``/``bias``.

    In inference (autograd off) the sliced weight is cached as a dense tensor per listed width
    (a universal layer: for the active width only) and refreshed when the parameter changes (its
    version counter), so a narrow width runs on contiguous weights like a network built at that
    width.
    """

    weight: torch.Tensor
    bias: Optional[torch.Tensor]
    groups: int
    # Which weight dimension holds output channels (0 for conv/linear, 1 for transposed conv).
    _out_dim: int = 0
    channel_rules: Optional[tuple[ChannelRule, ChannelRule]] = None

    def _init_channels(self, widths: Sequence[float], in_channels_list: Sequence[int],
                       out_channels_list: Sequence[int], groups: int,
                       rules: Optional[tuple[ChannelRule, ChannelRule]] = None,
                       width_range: Optional[Sequence[float]] = None) -> None:
        if not (len(in_channels_list) == len(out_channels_list) == len(widths)):
            raise ValueError("need one input and one output channel count per width")
        for c_in, c_out in zip(in_channels_list, out_channels_list):
            if c_in % groups or c_out % groups:
                raise ValueError(
                    f"channels ({c_in} in, {c_out} out) not divisible by groups={groups}")
        if (rules is None) != (width_range is None):
            raise ValueError("a universal layer needs both channel rules and a width range")
        if rules is not None and any(r.multiplier % groups for r in rules):
            raise ValueError(f"channel rules {rules} give counts not divisible by "
                             f"groups={groups}")
        self.in_channels_list = tuple(int(c) for c in in_channels_list)
        self.out_channels_list = tuple(int(c) for c in out_channels_list)
        self.channel_rules = rules
        self._dense: dict[tuple[int, int], tuple[tuple[int, int], torch.Tensor,
                                                 Optional[torch.Tensor]]] = {}
        self._init_widths(widths, width_range)

    def _switch(self, width: float) -> None:
        rule_in, rule_out = self.channel_rules
        self.__dict__["_active"] = (rule_in.at(width), rule_out.at(width))

    def active_channels(self) -> tuple[int, int]:
        """(input, output) channels at the active width."""
        if self.width_range is not None:
            return self._active
        i = self.width_index
        return self.in_channels_list[i], self.out_channels_list[i]

    def _slices(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        c_in, c_out = self.active_channels()
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
        key = self.active_channels()
        hit = self._dense.get(key)
        if hit is None or hit[0] != version or hit[1].device != self.weight.device:
            weight, bias = self._slices()
            hit = (version, weight.contiguous(), None if bias is None else bias.contiguous())
            if self.width_range is not None:  # one width at a time, whatever the widths used
                self._dense.clear()
            self._dense[key] = hit
        return hit[1], hit[2]

    def _check_input(self, x: torch.Tensor) -> None:
        expected = self.active_channels()[0]
        if x.dim() > 1 and x.shape[1] != expected:
            raise ValueError(
                f"{type(self).__name__} at width {self.current_width} expects "
                f"{expected} input channels, got {x.shape[1]}; switch the whole model with "
                "slimdet.set_width"
            )

    def _apply(self, fn, *args, **kwargs):
        self._dense.clear()  # device/dtype moves invalidate the dense copies
        return super()._apply(fn, *args, **kwargs)

    def extra_repr(self) -> str:
        rules = f", rules={self.channel_rules}, range={self.width_range}" if self.width_range \
            else ""
        return (f"{super().extra_repr()}, in_channels_list={self.in_channels_list}, "
                f"out_channels_list={self.out_channels_list}, widths={self.widths}{rules}")


class SlimConv2d(_SlicedWeights, Conv2d):
    """Detectron2 ``Conv2d`` (conv, optional norm, optional activation) with slimmable channels."""

    def __init__(self, widths: Sequence[float], in_channels_list: Sequence[int],
                 out_channels_list: Sequence[int], kernel_size, *, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, norm: Optional[nn.Module] = None,
                 activation: Optional[Callable] = None,
                 rules: Optional[tuple[ChannelRule, ChannelRule]] = None,
                 width_range: Optional[Sequence[float]] = None):
        Conv2d.__init__(self, max(in_channels_list), max(out_channels_list), kernel_size,
                        stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias,
                        norm=norm, activation=activation)
        self._init_channels(widths, in_channels_list, out_channels_list, groups, rules,
                            width_range)

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
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 rules: Optional[tuple[ChannelRule, ChannelRule]] = None,
                 width_range: Optional[Sequence[float]] = None):
        nn.ConvTranspose2d.__init__(self, max(in_channels_list), max(out_channels_list),
                                    kernel_size, stride=stride, padding=padding,
                                    output_padding=output_padding, groups=groups, bias=bias,
                                    dilation=dilation)
        self._init_channels(widths, in_channels_list, out_channels_list, groups, rules,
                            width_range)

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
                 out_features_list: Sequence[int], *, bias: bool = True,
                 rules: Optional[tuple[ChannelRule, ChannelRule]] = None,
                 width_range: Optional[Sequence[float]] = None):
        nn.Linear.__init__(self, max(in_features_list), max(out_features_list), bias=bias)
        self._init_channels(widths, in_features_list, out_features_list, 1, rules, width_range)

    def _check_input(self, x: torch.Tensor) -> None:
        expected = self.active_channels()[0]
        if x.shape[-1] != expected:
            raise ValueError(
                f"SlimLinear at width {self.current_width} expects {expected} input "
                f"features, got {x.shape[-1]}; switch the whole model with slimdet.set_width"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        weight, bias = self.active_params()
        return F.linear(x, weight, bias)
