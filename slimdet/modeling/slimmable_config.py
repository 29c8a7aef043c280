"""The slimmable copy of a stock Detectron2 config: the inverse of ``stock_config``.

Every component name in the config (meta-architecture, backbone, RPN head, ROI heads,
semantic segmentation head) is replaced by its registered slimmable version, using the same
table that ``stock_config`` maps back with (``register_stock_name``). A component slimdet has no
slimmable version of is an error that names it, so that no stock head ends up reading slimmed
features and failing with a shape error at run time.
"""
from __future__ import annotations

from typing import Optional, Sequence

from detectron2.config import CfgNode

from ..config import add_slimmable_config, validate_slimmable_config
from .stock_config import slimmable_name

__all__ = ["slimmable_config", "check_slimmable_components"]

# Meta-architectures whose own code runs unchanged on slimmable components.
_PLAIN_META_ARCHITECTURES = ("GeneralizedRCNN", "ProposalNetwork", "SemanticSegmentor",
                             "PanopticFPN")


def _components(cfg: CfgNode) -> list[str]:
    """Config keys (under MODEL) naming the components that ``cfg``'s model builds."""
    m = cfg.MODEL
    arch = m.META_ARCHITECTURE
    keys = ["BACKBONE.NAME"]
    if arch in ("GeneralizedRCNN", "PanopticFPN", "ProposalNetwork") and \
            m.PROPOSAL_GENERATOR.NAME == "RPN":
        keys.append("RPN.HEAD_NAME")
    if arch in ("GeneralizedRCNN", "PanopticFPN"):
        keys.append("ROI_HEADS.NAME")
    if arch in ("SemanticSegmentor", "PanopticFPN"):
        keys.append("SEM_SEG_HEAD.NAME")
    return keys


def _value(node: CfgNode, key: str) -> str:
    first, second = key.split(".")
    return node[first][second]


def check_slimmable_components(cfg: CfgNode) -> None:
    """Raise ``ValueError`` if the model of ``cfg`` would feed a slimmable backbone's narrowed
    features to a stock component (which fails with a shape error at the first narrow width),
    naming the config key and the slimmable name to use."""
    m = cfg.MODEL
    names = {"META_ARCHITECTURE": m.META_ARCHITECTURE}
    if m.META_ARCHITECTURE in _PLAIN_META_ARCHITECTURES:
        names = {key: _value(m, key) for key in _components(cfg)[1:]}
    for key, name in names.items():
        slim = slimmable_name(name)
        if slim != name:
            hint = f"use {slim!r}" if slim else "slimdet has no slimmable version of it"
            raise ValueError(f"MODEL.{key} {name!r} would read the slimmable backbone's features "
                             f"at full width; {hint} (slimdet.slimmable_config(cfg) sets every "
                             "name)")


def slimmable_config(cfg: CfgNode, widths: Optional[Sequence[float]] = None,
                     slim_heads: Optional[bool] = None,
                     slim_fpn: Optional[bool] = None) -> CfgNode:
    """A slimmable copy of the stock config ``cfg`` (a model-zoo config or one's own), which
    is left unchanged. ``widths``, ``slim_heads`` and ``slim_fpn`` set ``MODEL.SLIMMABLE``'s
    ``WIDTHS``, ``SLIM_HEADS`` and ``SLIM_FPN`` (default: slimdet's defaults, or what ``cfg``
    already has).

    Covers the ResNet/FPN families of Detectron2's model zoo: GeneralizedRCNN with FPN, C4
    and DC5 backbones and Standard, Cascade and Res5 ROI heads, RetinaNet, ProposalNetwork,
    SemanticSegmentor and PanopticFPN. Raises ``ValueError`` naming any other component.
    """
    out = cfg.clone()
    out.defrost()
    if "SLIMMABLE" not in out.MODEL:
        add_slimmable_config(out)
    if widths is not None:
        out.MODEL.SLIMMABLE.WIDTHS = [float(w) for w in widths]
    if slim_heads is not None:
        out.MODEL.SLIMMABLE.SLIM_HEADS = bool(slim_heads)
    if slim_fpn is not None:
        out.MODEL.SLIMMABLE.SLIM_FPN = bool(slim_fpn)
    m = out.MODEL
    if m.META_ARCHITECTURE not in _PLAIN_META_ARCHITECTURES:
        arch = slimmable_name(m.META_ARCHITECTURE)
        if arch is None:
            raise ValueError(f"MODEL.META_ARCHITECTURE {m.META_ARCHITECTURE!r} has no slimmable "
                             f"version; slimdet knows {list(_PLAIN_META_ARCHITECTURES)} and "
                             "RetinaNet")
        m.META_ARCHITECTURE = arch
    for key in _components(out):
        name = slimmable_name(_value(m, key))
        if name is None:
            raise ValueError(f"MODEL.{key} {_value(m, key)!r} has no slimmable version in slimdet "
                             "(register one with slimdet.modeling.register_stock_name)")
        node, leaf = key.split(".")
        m[node][leaf] = name
    validate_slimmable_config(out)
    if cfg.is_frozen():
        out.freeze()
    return out
