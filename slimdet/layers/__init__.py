"""Slimmable layers and the width state they own."""
from .sliced_norm import SlicedBatchNorm2d, SlicedFrozenBatchNorm2d, SlicedGroupNorm
from .slimmable_ops import SlimConv2d, SlimConvTranspose2d, SlimLinear
from .switchable_norm import SwitchableNorm, group_norm_groups, norm_at_channels
from .width import (ChannelRule, SlimmableModule, get_width, get_width_range, get_widths,
                    parse_width_key, set_width, width_in_range, width_index, width_key,
                    width_scope)

__all__ = [k for k in globals() if not k.startswith("_")]
