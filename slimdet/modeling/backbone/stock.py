"""Stock Detectron2 ResNet/FPN backbones at any width.

Detectron2's ``build_resnet_backbone`` insists on ``RES2_OUT_CHANNELS == 64`` for R18/R34, so
narrow R18/R34 are assembled here from Detectron2's own ``ResNet``, ``BasicStem`` and
``BasicBlock``; every other case calls Detectron2's builder.
"""
from __future__ import annotations

from typing import Callable

from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, ResNet, build_resnet_backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool, LastLevelP6P7
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem

__all__ = ["build_stock_backbone", "build_stock_resnet", "build_stock_resnet_fpn",
           "build_stock_retinanet_resnet_fpn"]

_BASIC_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}


def build_stock_resnet(cfg: CfgNode, input_shape: ShapeSpec) -> ResNet:
    """Detectron2 ResNet of ``cfg``, also for R18/R34 with ``RES2_OUT_CHANNELS != 64``."""
    r = cfg.MODEL.RESNETS
    if r.DEPTH not in _BASIC_BLOCKS or r.RES2_OUT_CHANNELS == 64:
        return build_resnet_backbone(cfg, input_shape)
    stem = BasicStem(input_shape.channels, r.STEM_OUT_CHANNELS, norm=r.NORM)
    stages, in_channels, out_channels = [], r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS
    for i, num_blocks in enumerate(_BASIC_BLOCKS[r.DEPTH]):
        stages.append(ResNet.make_stage(
            BasicBlock, num_blocks, stride_per_block=[1 if i == 0 else 2] + [1] * (num_blocks - 1),
            in_channels=in_channels, out_channels=out_channels, norm=r.NORM))
        in_channels, out_channels = out_channels, out_channels * 2
    return ResNet(stem, stages, out_features=r.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)


def _resnet_fpn(cfg: CfgNode, input_shape: ShapeSpec, top_block: Callable[[ResNet], object]) -> FPN:
    bottom_up = build_stock_resnet(cfg, input_shape)
    return FPN(bottom_up=bottom_up, in_features=cfg.MODEL.FPN.IN_FEATURES,
               out_channels=cfg.MODEL.FPN.OUT_CHANNELS, norm=cfg.MODEL.FPN.NORM,
               top_block=top_block(bottom_up), fuse_type=cfg.MODEL.FPN.FUSE_TYPE)


def build_stock_resnet_fpn(cfg: CfgNode, input_shape: ShapeSpec) -> FPN:
    """As Detectron2's ``build_resnet_fpn_backbone`` (P6 by max-pool)."""
    return _resnet_fpn(cfg, input_shape, lambda _: LastLevelMaxPool())


def build_stock_retinanet_resnet_fpn(cfg: CfgNode, input_shape: ShapeSpec) -> FPN:
    """As Detectron2's ``build_retinanet_resnet_fpn_backbone`` (P6/P7 convs on res5)."""
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    return _resnet_fpn(cfg, input_shape, lambda bottom_up: LastLevelP6P7(
        bottom_up.output_shape()["res5"].channels, out_channels))


_BUILDERS = {
    "build_resnet_backbone": build_stock_resnet,
    "build_resnet_fpn_backbone": build_stock_resnet_fpn,
    "build_retinanet_resnet_fpn_backbone": build_stock_retinanet_resnet_fpn,
}


def build_stock_backbone(cfg: CfgNode, input_shape: ShapeSpec):
    """The backbone of a stock config (see ``stock_config``), at any width."""
    name = cfg.MODEL.BACKBONE.NAME
    builder = _BUILDERS.get(name) or BACKBONE_REGISTRY.get(name)
    return builder(cfg, input_shape)
