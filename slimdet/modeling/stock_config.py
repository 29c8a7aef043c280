"""The stock Detectron2 config that a slimmable config equals at one width.

A slimmable model at width ``w`` is, by definition, the stock Detectron2 model built from
``stock_config(cfg, w)`` whose every weight is the leading slice of the slimmable weight.
"""
from __future__ import annotations

from detectron2.config import CfgNode

from ..config import remove_slimdet_keys, resolve_width, validate_slimmable_config, width_quantum

__all__ = ["stock_config", "stock_group_norm_groups", "register_stock_name", "stock_name",
           "slimmable_name"]

# Registered slimdet component name -> the stock Detectron2 component it slims.
_STOCK_NAMES: dict[str, str] = {}


def register_stock_name(slim_name: str, stock: str) -> None:
    """Declare that the registered component ``slim_name`` is the slimmable ``stock``."""
    _STOCK_NAMES[slim_name] = stock


def stock_name(name: str) -> str:
    """Stock Detectron2 name of a registered component (itself if it is not a slimdet one)."""
    return _STOCK_NAMES.get(name, name)


def slimmable_name(name: str) -> str | None:
    """The registered slimdet component that slims the stock component ``name`` (``name``
    itself if it is a slimdet one); None if slimdet has none."""
    if name in _STOCK_NAMES:
        return name
    return next((slim for slim, stock in _STOCK_NAMES.items() if stock == name), None)


def _map_names(node: CfgNode) -> None:
    for key, value in node.items():
        if isinstance(value, CfgNode):
            _map_names(value)
        elif isinstance(value, str) and value in _STOCK_NAMES:
            node[key] = _STOCK_NAMES[value]


def _scale(value: int, width: float) -> int:
    return int(value * width)


def stock_group_norm_groups(cfg: CfgNode, width: float) -> int | None:
    """Groups of every GroupNorm layer of the stock model at ``width`` for a universal model
    with GroupNorm (``32 * w`` for ``w`` the width rounded to a multiple of 1/32: the group size
    stays that of width 1); None where slimdet's GN rule, ``gcd(32, C)``, applies."""
    quantum = width_quantum(cfg)
    return round(resolve_width(cfg, width) * quantum) if quantum else None


def stock_config(cfg: CfgNode, width: float) -> CfgNode:
    """Stock Detectron2 config (no slimdet keys: ``remove_slimdet_keys``; stock component
    names) at ``width`` (a listed width, or for a universal model any width of its range, which
    a universal model with GroupNorm rounds down to a multiple of 1/32: ``resolve_width``).

    Scales ``RESNETS.STEM_OUT_CHANNELS``, ``RES2_OUT_CHANNELS`` and ``WIDTH_PER_GROUP`` by
    ``int(C * width)``; with ``SLIM_FPN`` also ``FPN.OUT_CHANNELS``; with ``SLIM_HEADS`` also
    the ROI heads' and the semantic segmentation head's hidden dims. ``NUM_GROUPS`` stays fixed.
    """
    validate_slimmable_config(cfg)
    width = resolve_width(cfg, width)
    out = cfg.clone()
    out.defrost()
    m = out.MODEL
    slim_fpn, slim_heads = m.SLIMMABLE.SLIM_FPN, m.SLIMMABLE.SLIM_HEADS
    remove_slimdet_keys(out)
    _map_names(m)
    m.RESNETS.STEM_OUT_CHANNELS = _scale(m.RESNETS.STEM_OUT_CHANNELS, width)
    m.RESNETS.RES2_OUT_CHANNELS = _scale(m.RESNETS.RES2_OUT_CHANNELS, width)
    m.RESNETS.WIDTH_PER_GROUP = _scale(m.RESNETS.WIDTH_PER_GROUP, width)
    if slim_fpn:
        m.FPN.OUT_CHANNELS = _scale(m.FPN.OUT_CHANNELS, width)
    if slim_heads:
        m.ROI_BOX_HEAD.FC_DIM = _scale(m.ROI_BOX_HEAD.FC_DIM, width)
        m.ROI_BOX_HEAD.CONV_DIM = _scale(m.ROI_BOX_HEAD.CONV_DIM, width)
        m.ROI_MASK_HEAD.CONV_DIM = _scale(m.ROI_MASK_HEAD.CONV_DIM, width)
        keypoint = m.ROI_KEYPOINT_HEAD
        keypoint.CONV_DIMS = tuple(_scale(c, width) for c in keypoint.CONV_DIMS)
        m.SEM_SEG_HEAD.CONVS_DIM = _scale(m.SEM_SEG_HEAD.CONVS_DIM, width)
    out.freeze()
    return out
