"""Slimmable RPN and ROI heads, registered in Detectron2's head registries.

They accept the slimmed features of a slimmable backbone: at width ``w`` each head equals the
stock head built from ``stock_config(cfg, w)`` on the stock backbone's features at that width.
The ROI heads slim every sub-head they contain (box head and predictor, mask head, keypoint
head, whichever ``ROI_*_HEAD.NAME`` selects); with ``SLIM_HEADS`` their hidden dims slim too.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY, SEM_SEG_HEADS_REGISTRY, StandardROIHeads
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead
from detectron2.modeling.proposal_generator.rpn import RPN_HEAD_REGISTRY, StandardRPNHead
from detectron2.modeling.roi_heads import CascadeROIHeads, Res5ROIHeads
from torch import nn

from ..conversion import build_slimmable, input_shapes_at
from ..stock_config import register_stock_name, stock_config

__all__ = ["build_slimmable_rpn_head", "build_slimmable_standard_roi_heads",
           "build_slimmable_res5_roi_heads", "build_slimmable_cascade_roi_heads",
           "build_slimmable_sem_seg_fpn_head"]


def _check_input(cfg: CfgNode, given: Mapping[str, ShapeSpec]) -> None:
    expected = input_shapes_at(stock_config(cfg, max(cfg.MODEL.SLIMMABLE.WIDTHS)))
    mismatched = {k: (v.channels, expected[k].channels) for k, v in given.items()
                  if k in expected and v.channels != expected[k].channels}
    if mismatched:
        raise ValueError("slimmable heads need the slimmable backbone of the same config; "
                         f"feature channels (given, expected): {mismatched}")


def _build_heads(cfg: CfgNode, input_shape: Mapping[str, ShapeSpec],
                 stock_heads: Callable[[CfgNode, dict[str, ShapeSpec]], nn.Module]) -> nn.Module:
    _check_input(cfg, input_shape)
    try:
        return build_slimmable(cfg, lambda c: stock_heads(c, input_shapes_at(c)))
    except TypeError as err:
        if not cfg.MODEL.SLIMMABLE.SLIM_HEADS:
            raise
        raise TypeError(f"{err}. MODEL.SLIMMABLE.SLIM_HEADS scales the ROI heads' dims with the "
                        "width, which this head cannot follow: set SLIM_HEADS False") from err


@RPN_HEAD_REGISTRY.register()
def build_slimmable_rpn_head(cfg: CfgNode, input_shape: Sequence[ShapeSpec]) -> nn.Module:
    """Slimmable ``StandardRPNHead`` (its conv width follows the FPN width)."""
    features = cfg.MODEL.RPN.IN_FEATURES
    return _build_heads(cfg, dict(zip(features, input_shape)),
                        lambda c, shapes: StandardRPNHead(c, [shapes[f] for f in features]))


@ROI_HEADS_REGISTRY.register()
def build_slimmable_standard_roi_heads(cfg: CfgNode,
                                       input_shape: dict[str, ShapeSpec]) -> nn.Module:
    """Slimmable ``StandardROIHeads`` (FPN models)."""
    return _build_heads(cfg, input_shape, StandardROIHeads)


@ROI_HEADS_REGISTRY.register()
def build_slimmable_res5_roi_heads(cfg: CfgNode, input_shape: dict[str, ShapeSpec]) -> nn.Module:
    """Slimmable ``Res5ROIHeads`` (C4 models; res5 runs in the head)."""
    return _build_heads(cfg, input_shape, Res5ROIHeads)


@ROI_HEADS_REGISTRY.register()
def build_slimmable_cascade_roi_heads(cfg: CfgNode,
                                      input_shape: dict[str, ShapeSpec]) -> nn.Module:
    """Slimmable ``CascadeROIHeads`` (every stage's box head and predictor)."""
    return _build_heads(cfg, input_shape, CascadeROIHeads)


@SEM_SEG_HEADS_REGISTRY.register()
def build_slimmable_sem_seg_fpn_head(cfg: CfgNode,
                                     input_shape: dict[str, ShapeSpec]) -> nn.Module:
    """Slimmable ``SemSegFPNHead`` (semantic FPN, Panoptic FPN)."""
    return _build_heads(cfg, input_shape, SemSegFPNHead)


register_stock_name("build_slimmable_rpn_head", "StandardRPNHead")
register_stock_name("build_slimmable_standard_roi_heads", "StandardROIHeads")
register_stock_name("build_slimmable_res5_roi_heads", "Res5ROIHeads")
register_stock_name("build_slimmable_cascade_roi_heads", "CascadeROIHeads")
register_stock_name("build_slimmable_sem_seg_fpn_head", "SemSegFPNHead")
