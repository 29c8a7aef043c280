"""Slimmable layers and the width state they own."""
from .slimmable_ops import SlimConv2d, SlimConvTranspose2d, SlimLinear
from .switchable_norm import SwitchableNorm, group_norm_groups, norm_at_channels
from .width import (SlimmableModule, get_width, get_widths, parse_width_key, set_width,
                    width_index, width_key, width_scope)

__all__ = [k for k in globals() if not k.startswith("_")]
