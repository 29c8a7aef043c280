"""Slimmable ResNet and ResNet-FPN backbones, registered in Detectron2's ``BACKBONE_REGISTRY``.

They keep Detectron2's module and parameter names (``bottom_up.res2.0.conv1``, ...); norms
become switchable (``...conv1.norm.<i>.weight`` for width index ``i``).
"""
from __future__ import annotations

from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from ..conversion import build_slimmable
from ..slimmable_config import check_slimmable_components
from ..stock_config import register_stock_name
from . import stock

__all__ = ["build_slimmable_resnet_backbone", "build_slimmable_resnet_fpn_backbone",
           "build_slimmable_retinanet_resnet_fpn_backbone"]


@BACKBONE_REGISTRY.register()
def build_slimmable_resnet_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """Slimmable ResNet (depth 18/34/50/101), e.g. for C4 models."""
    check_slimmable_components(cfg)
    return build_slimmable(cfg, lambda c: stock.build_stock_resnet(c, input_shape))


@BACKBONE_REGISTRY.register()
def build_slimmable_resnet_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """Slimmable ResNet-FPN with LastLevelMaxPool (Faster/Mask/Keypoint R-CNN)."""
    check_slimmable_components(cfg)
    return build_slimmable(cfg, lambda c: stock.build_stock_resnet_fpn(c, input_shape))


@BACKBONE_REGISTRY.register()
def build_slimmable_retinanet_resnet_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """Slimmable ResNet-FPN with P6/P7 (RetinaNet-style)."""
    check_slimmable_components(cfg)
    return build_slimmable(cfg, lambda c: stock.build_stock_retinanet_resnet_fpn(c, input_shape))


register_stock_name("build_slimmable_resnet_backbone", "build_resnet_backbone")
register_stock_name("build_slimmable_resnet_fpn_backbone", "build_resnet_fpn_backbone")
register_stock_name("build_slimmable_retinanet_resnet_fpn_backbone",
                    "build_retinanet_resnet_fpn_backbone")
