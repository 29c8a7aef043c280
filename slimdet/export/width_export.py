"""Export one width of a slimmable model as a plain Detectron2 config and model.

Why: a model deployed at one width needs nothing of slimdet (no full weights, no slicing, no
per-width norms) and then works with every Detectron2 tool. The exported model is
``build_model(stock_config(cfg, w))`` holding contiguous copies of the leading weight slices and of
width ``w``'s own norms, i.e. exactly the network the slimmable model runs at ``w``.
"""
from __future__ import annotations

from typing import Iterator, Mapping

import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model
from torch import nn

from ..checkpoint.state_dict import switchable_norm_prefixes
from ..layers import (SlicedBatchNorm2d, SlicedGroupNorm, SwitchableNorm, get_widths,
                      group_norm_groups, width_index)
from ..layers.switchable_norm import DETECTRON2_GN_GROUPS
from ..modeling.stock_config import stock_config, stock_group_norm_groups

__all__ = ["export_at_width", "width_state_dict"]


def export_at_width(cfg: CfgNode, model: nn.Module, width: float) -> tuple[CfgNode, nn.Module]:
    """Stock Detectron2 config and model equal to the slimmable ``model`` (built from ``cfg``) at
    ``width``. ``model``'s active width is left unchanged; the copy is in ``model``'s train/eval
    mode, on ``cfg.MODEL.DEVICE``.

    Raises ``ValueError`` for a width ``cfg`` does not list (a universal model: outside its
    range), and for widths plain Detectron2 cannot build (narrow R18/R34, GroupNorm layers whose
    channels are not a multiple of 32 or, in a universal model, with fewer than 32 groups).
    """
    cfg_w = stock_config(cfg, width)
    if tuple(float(w) for w in cfg.MODEL.SLIMMABLE.WIDTHS) != get_widths(model):
        raise ValueError(f"model has widths {list(get_widths(model))} but cfg lists "
                         f"{list(cfg.MODEL.SLIMMABLE.WIDTHS)}; pass the config it was built from")
    _check_detectron2_can_build(cfg, cfg_w, model, width)
    model_w = build_model(cfg_w)
    model_w.load_state_dict(width_state_dict(model, width, model_w.state_dict()))
    return cfg_w, model_w.train(model.training)


def _check_detectron2_can_build(cfg: CfgNode, cfg_w: CfgNode, model: nn.Module,
                                width: float) -> None:
    resnets = cfg_w.MODEL.RESNETS
    if resnets.DEPTH in (18, 34) and resnets.RES2_OUT_CHANNELS != 64:
        raise ValueError(
            f"cannot export width {width}: plain Detectron2 builds R{resnets.DEPTH} only with "
            f"MODEL.RESNETS.RES2_OUT_CHANNELS = 64, but this width has {resnets.RES2_OUT_CHANNELS} "
            "(slimdet assembles narrow R18/R34 itself, which Detectron2's build_model cannot)")
    groups = stock_group_norm_groups(cfg, width)
    if groups not in (None, DETECTRON2_GN_GROUPS):
        raise ValueError(
            f"cannot export width {width}: this universal model's GroupNorm layers keep their "
            f"group size, so they have {groups} groups at this width, but plain Detectron2 "
            f"builds GroupNorm with {DETECTRON2_GN_GROUPS} (only width 1 exports)")
    for name, channels in _group_norm_channels(model, width):
        if channels % DETECTRON2_GN_GROUPS:
            raise ValueError(
                f"cannot export width {width}: layer {name} has {channels} channels, not a "
                f"multiple of the {DETECTRON2_GN_GROUPS} GroupNorm groups plain Detectron2 uses "
                f"(slimdet uses gcd({DETECTRON2_GN_GROUPS}, {channels}) = "
                f"{group_norm_groups(DETECTRON2_GN_GROUPS, channels)})")


def _group_norm_channels(model: nn.Module, width: float) -> Iterator[tuple[str, int]]:
    """(name, channels at ``width``) of every GroupNorm layer of ``model``."""
    for name, module in model.named_modules():
        if isinstance(module, SlicedGroupNorm):
            yield name, module.channel_rule.at(width)
        elif isinstance(module, SwitchableNorm):
            norm = module[width_index(module.widths, width)]
            if isinstance(norm, nn.GroupNorm):
                yield name, norm.num_channels


def width_state_dict(model: nn.Module, width: float,
                     targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The slimmable ``model``'s state at ``width`` in stock layout, one entry per key of
    ``targets`` (a stock model's state dict): the leading slice of the shared tensor shaped like
    the target, or of the width's own norm for switchable norms (a universal model's norms:
    their affine at ``width``, per-width offsets included, and BatchNorm's statistics
    calibrated for ``width``)."""
    norms = switchable_norm_prefixes(model)
    index = width_index(get_widths(model), width) if norms else None
    sliced = {n: m for n, m in model.named_modules()
              if isinstance(m, (SlicedBatchNorm2d, SlicedGroupNorm))}
    source = model.state_dict()
    out = {}
    for key, target in targets.items():
        prefix, _, name = key.rpartition(".")
        if prefix in sliced and name in ("running_mean", "running_var"):
            out[key] = sliced[prefix].statistics(width)[name == "running_var"]
            continue
        source_key = f"{prefix}.{index}.{name}" if prefix in norms else key
        if source_key not in source:
            raise ValueError(f"stock key {key} has no slimmable counterpart {source_key}; was the "
                             "model built from this config?")
        value = source[source_key]
        if prefix in sliced and name in ("weight", "bias"):
            value = sliced[prefix].affine_at(width)[name == "bias"].detach()
        if value.dim():
            value = value[tuple(slice(0, s) for s in target.shape)]
        if value.shape != target.shape:
            raise ValueError(f"{key}: slimmable tensor {tuple(source[source_key].shape)} has no "
                             f"leading slice of the stock shape {tuple(target.shape)}")
        out[key] = value
    return out
