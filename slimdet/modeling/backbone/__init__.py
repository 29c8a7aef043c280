"""Slimmable backbones (registered at import)."""
from .slimmable_backbones import (build_slimmable_resnet_backbone,
                                  build_slimmable_resnet_fpn_backbone,
                                  build_slimmable_retinanet_resnet_fpn_backbone)
from .stock import build_stock_backbone

__all__ = [k for k in globals() if not k.startswith("_")]
