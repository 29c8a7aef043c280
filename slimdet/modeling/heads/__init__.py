"""Slimmable heads (registered at import)."""
from .slimmable_heads import (build_slimmable_res5_roi_heads, build_slimmable_rpn_head,
                              build_slimmable_standard_roi_heads)

__all__ = [k for k in globals() if not k.startswith("_")]
