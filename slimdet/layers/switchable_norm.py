"""Switchable normalization: one independent norm (parameters and statistics) per width.

Supported norms are those Detectron2 builds from ``NORM`` strings: FrozenBN, BN, SyncBN (and the
naive variant) and GN. GroupNorm rule: a GN layer with ``C`` channels uses ``gcd(G, C)`` groups,
where ``G`` is the group count asked for (32 in Detectron2). That is ``G`` whenever ``C`` is a
multiple of ``G`` (identical to stock Detectron2) and otherwise the largest group count dividing
both, e.g. 16 channels -> 16 groups, 48 -> 16. The rule holds at every width, the widest included.
(A universal model's GN keeps its group size instead: ``sliced_norm``.)
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from detectron2.layers import FrozenBatchNorm2d
from torch import nn

from .width import SlimmableModule

__all__ = ["SwitchableNorm", "norm_at_channels", "group_norm_groups", "group_norm_in_place_of",
           "NORM_TYPES"]

NORM_TYPES = (FrozenBatchNorm2d, nn.modules.batchnorm._BatchNorm, nn.GroupNorm)
DETECTRON2_GN_GROUPS = 32  # Detectron2's "GN" is GroupNorm(32, C)


def group_norm_groups(full_groups: int, channels: int) -> int:
    """GroupNorm group count used at a width with ``channels`` channels."""
    return math.gcd(full_groups, channels)


def group_norm_in_place_of(stand_in: nn.Module) -> nn.GroupNorm:
    """``GroupNorm(group_norm_groups(32, C), C)`` holding ``stand_in``'s own ``weight`` and
    ``bias`` parameters (``C`` of them): the GN layer a builder that cannot make one at ``C``
    channels made ``stand_in`` for."""
    channels = stand_in.weight.shape[0]
    with torch.device("meta"):  # no memory: its parameters are replaced
        norm = nn.GroupNorm(group_norm_groups(DETECTRON2_GN_GROUPS, channels), channels)
    norm.weight, norm.bias = stand_in.weight, stand_in.bias
    return norm


def norm_at_channels(norm: nn.Module, channels: int,
                     groups: Optional[int] = None) -> nn.Module:
    """A norm of the same kind as ``norm`` for ``channels`` channels, initialised from the
    leading ``channels`` entries of ``norm``'s parameters and statistics. A GroupNorm gets
    ``groups`` groups (default: ``group_norm_groups(norm.num_groups, channels)``)."""
    if isinstance(norm, FrozenBatchNorm2d):
        new = FrozenBatchNorm2d(channels, eps=norm.eps)
    elif isinstance(norm, nn.modules.batchnorm._BatchNorm):
        new = type(norm)(channels, eps=norm.eps, momentum=norm.momentum, affine=norm.affine,
                         track_running_stats=norm.track_running_stats)
        if hasattr(norm, "_stats_mode"):  # detectron2's NaiveSyncBatchNorm
            new._stats_mode = norm._stats_mode
    elif isinstance(norm, nn.GroupNorm):
        groups = groups or group_norm_groups(norm.num_groups, channels)
        new = nn.GroupNorm(groups, channels, eps=norm.eps, affine=norm.affine)
    else:
        raise TypeError(f"no switchable version of {type(norm).__name__}; "
                        f"supported: FrozenBN, BN, SyncBN, GN")
    new = new.to(device=_device_of(norm))
    with torch.no_grad():
        old_state, new_state = norm.state_dict(), new.state_dict()
        for key in new_state.keys() & old_state.keys():
            value = old_state[key]
            new_state[key] = value if value.dim() == 0 else value[:channels].clone()
        new.load_state_dict(new_state)
    new.train(norm.training)
    return new


def _device_of(module: nn.Module) -> torch.device:
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


class SwitchableNorm(SlimmableModule, nn.ModuleList):
    """A list of norms, one per width; the active width's norm normalizes the input.

    Keys in a state dict are ``<name>.<i>.<param>``, ``i`` indexing the width list. A stock
    norm's keys ``<name>.<param>`` load too, through any loader (``load_state_dict``,
    Detectron2's ``DetectionCheckpointer`` and ``DefaultPredictor``): every width gets the
    leading slice of the single norm.
    """

    def __init__(self, widths: Sequence[float], norms: Sequence[nn.Module]):
        nn.ModuleList.__init__(self, norms)
        self._init_widths(widths)
        if len(norms) != len(self.widths):
            raise ValueError(f"need one norm per width, got {len(norms)} for {len(self.widths)}")

    @classmethod
    def from_norm(cls, norm: nn.Module, widths: Sequence[float],
                  channels_list: Sequence[int]) -> SwitchableNorm:
        """Per-width copies of ``norm`` sliced to each width's channel count."""
        return cls(widths, [norm_at_channels(norm, c) for c in channels_list])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[self.width_index](x)

    def expand_stock_entries(self, state_dict: dict, prefix: str) -> None:
        """Replace a stock norm's entries ``<prefix><param>`` in ``state_dict`` by every
        width's ``<prefix><i>.<param>``, the leading slice for that width's channels (a slice
        that does not fit is left for the loader to report as a shape mismatch)."""
        for name in list(self[0].state_dict()):
            source = state_dict.pop(prefix + name, None)
            if source is None:
                continue
            for i, norm in enumerate(self):
                target = getattr(norm, name)
                fits = target.dim() and source.dim() and source.shape[0] >= target.shape[0]
                state_dict[f"{prefix}{i}.{name}"] = (source[: target.shape[0]] if fits
                                                     else source).clone()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # PyTorch's hook for converting old layouts: runs before the per-width norms load.
        self.expand_stock_entries(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"widths={self.widths}, active={self.widths[self.width_index]}"
