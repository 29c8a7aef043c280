"""Turn a stock Detectron2 module into a slimmable one.

``build_slimmable`` builds a component with its stock builder at the widest width (real
weights and init) and once more per width on the ``meta`` device (shapes only). Every conv,
transposed conv and linear layer whose shape differs across widths becomes a slimmable layer
with the per-width channel counts read from those references, and every norm becomes a
switchable norm. The forward code stays Detectron2's own, so the slimmable model at width ``w``
is the stock model of ``stock_config(cfg, w)`` by construction.

In universal mode (``MODEL.SLIMMABLE.UNIVERSAL``) one more reference is built at
``PROBE_WIDTH``, just under 1, where every scaled config value ``V`` becomes ``V - 1``: a layer
dimension of ``C`` channels at width 1 and ``P`` at the probe is ``C - P`` times a value ``V``,
hence ``(C - P) * int(V * w)`` at any width ``w`` (its ``ChannelRule``), checked against every
listed width. Norms become one shared norm sliced to the width (``sliced_norm``).
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence

import torch
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.layers.batch_norm import LayerNorm
from torch import nn

from ..config import universal_range, width_quantum
from ..layers import ChannelRule, SlimConv2d, SlimConvTranspose2d, SlimLinear, SwitchableNorm
from ..layers.sliced_norm import add_width_offsets, sliced_norm
from ..layers.switchable_norm import NORM_TYPES, group_norm_in_place_of, norm_at_channels
from .stock_config import stock_config

__all__ = ["build_slimmable", "build_with_gn_rule", "slimmify", "PROBE_WIDTH"]

# Every config value V up to 4096 scales to int(V * PROBE_WIDTH) = V - 1.
PROBE_WIDTH = 1 - 2 ** -12


def build_slimmable(cfg: CfgNode, build_stock: Callable[[CfgNode], nn.Module]) -> nn.Module:
    """Build the slimmable version of the component that ``build_stock(stock_cfg)`` builds.

    GroupNorm layers follow slimdet's rule (``build_with_gn_rule``) at every width, so a model
    whose widest width has e.g. 48 GN channels (an individual model of width 0.75) builds too.
    A universal model with ``UNIVERSAL_AFFINE per_width`` gets per-width norm offsets
    (``add_width_offsets``)."""
    widths = list(cfg.MODEL.SLIMMABLE.WIDTHS)
    width_range = universal_range(cfg)
    module = build_with_gn_rule(build_stock, stock_config(cfg, max(widths)))
    if width_range and not width_quantum(cfg) and any(
            isinstance(m, nn.GroupNorm) for m in module.modules()):
        raise ValueError(f"{type(module).__name__} has GroupNorm layers, but none of the "
                         "MODEL.*.NORM slimdet reads (RESNETS, FPN, ROI_BOX_HEAD, ROI_MASK_HEAD, "
                         "SEM_SEG_HEAD, RETINANET) is GN, so this universal model cannot round "
                         "its widths to the multiples of 1/32 its GroupNorm needs")
    with torch.device("meta"):
        references = [build_with_gn_rule(build_stock, stock_config(cfg, w)) for w in widths]
        probe = (build_with_gn_rule(build_stock, stock_config(cfg, PROBE_WIDTH))
                 if width_range else None)
    module = slimmify(module, references, widths, probe, width_range)
    if width_range and cfg.MODEL.SLIMMABLE.UNIVERSAL_AFFINE == "per_width":
        add_width_offsets(module)
    return module


# Detectron2's norm that stands in for GN while building: slimdet has no switchable LayerNorm,
# and freezing (FrozenBatchNorm2d.convert_frozen_batchnorm) leaves it alone, as it does GN.
_GN_STAND_IN = "LN"


def _norm_nodes(node: CfgNode) -> Iterator[CfgNode]:
    """Every node under ``node`` (itself included) that has a ``NORM`` key."""
    if "NORM" in node:
        yield node
    for value in node.values():
        if isinstance(value, CfgNode):
            yield from _norm_nodes(value)


def build_with_gn_rule(build_stock: Callable[[CfgNode], nn.Module], cfg: CfgNode) -> nn.Module:
    """``build_stock(cfg)`` with every ``"GN"`` layer ``GroupNorm(gcd(32, C), C)``
    (``group_norm_groups``) instead of Detectron2's ``GroupNorm(32, C)``, which cannot be built
    at e.g. 16 or 48 channels. The builder makes Detectron2's LayerNorm in GN's place, swapped
    for the GroupNorm afterwards; both start at weight 1, bias 0, so the weights are those of
    a stock build wherever stock can build."""
    cfg = cfg.clone()
    cfg.defrost()
    nodes = list(_norm_nodes(cfg.MODEL))
    if any(node.NORM == _GN_STAND_IN for node in nodes):
        raise ValueError(f"slimdet has no switchable version of {_GN_STAND_IN} (LayerNorm); "
                         "supported MODEL.*.NORM: FrozenBN, BN, SyncBN, GN")
    for node in nodes:
        if node.NORM == "GN":
            node.NORM = _GN_STAND_IN
    module = build_stock(cfg)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is LayerNorm:
                setattr(parent, name, group_norm_in_place_of(child))
    return module


def _channels(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return module.in_channels, module.out_channels


def _num_channels(norm: nn.Module) -> int:
    return getattr(norm, "num_features", None) or norm.num_channels


def _rule(name: str, full: int, probe: int, listed: Sequence[int],
          widths: Sequence[float]) -> ChannelRule:
    """The ``ChannelRule`` of a dimension with ``full`` channels at width 1 and ``probe`` at
    ``PROBE_WIDTH``; ``TypeError`` if it does not give the ``listed`` counts at ``widths``."""
    step = full - probe
    rule = ChannelRule(step, full // step) if step else ChannelRule(full)
    if (step and full % step) or [rule.at(w) for w in widths] != list(listed):
        raise TypeError(f"cannot tell how {name} scales with the width: {full} channels at 1, "
                        f"{probe} at {PROBE_WIDTH}, {list(listed)} at {list(widths)}; universal "
                        "mode needs each to be a multiple of one scaled config value")
    return rule


def _slim_layer(module: nn.Module, widths: Sequence[float], ins: list[int], outs: list[int],
                rules=None, width_range=None) -> nn.Module:
    universal = {"rules": rules, "width_range": width_range}
    if isinstance(module, nn.Linear):
        new = SlimLinear(widths, ins, outs, bias=module.bias is not None, **universal)
    elif isinstance(module, nn.ConvTranspose2d):
        new = SlimConvTranspose2d(widths, ins, outs, module.kernel_size, stride=module.stride,
                                  padding=module.padding, output_padding=module.output_padding,
                                  groups=module.groups, bias=module.bias is not None,
                                  dilation=module.dilation, **universal)
    else:
        if module.padding_mode != "zeros":
            raise TypeError(f"cannot slim a conv with padding_mode={module.padding_mode!r}")
        new = SlimConv2d(widths, ins, outs, module.kernel_size, stride=module.stride,
                         padding=module.padding, dilation=module.dilation, groups=module.groups,
                         bias=module.bias is not None, norm=getattr(module, "norm", None),
                         activation=getattr(module, "activation", None), **universal)
    new.weight, new.bias = module.weight, module.bias  # share the full weights, no copy
    return new.train(module.training)


def slimmify(module: nn.Module, references: Sequence[nn.Module], widths: Sequence[float],
             probe: Optional[nn.Module] = None,
             width_range: Optional[Sequence[float]] = None) -> nn.Module:
    """Slimmable version of ``module``, given the same module built at each of ``widths``
    (universal version, running at any width of ``width_range``: also given it built at
    ``PROBE_WIDTH``; ``module`` is then the one of width 1).

    Submodules are replaced in place (also where a module keeps them in plain lists, as FPN
    does); the result is ``module`` itself unless ``module`` is a leaf layer that was replaced.
    """
    # id of a replaced module -> (that module, its replacement); holding the old module keeps
    # its id from being reused by another object while the lists are re-pointed below.
    replaced: dict[int, tuple[nn.Module, nn.Module]] = {}
    new = _slimmify(module, references, widths, replaced, probe, width_range, "")
    for m in new.modules():  # re-point plain list/tuple attributes at the replacements
        for key, value in vars(m).items():
            if isinstance(value, (list, tuple)) and any(id(v) in replaced for v in value):
                setattr(m, key, type(value)(replaced[id(v)][1] if id(v) in replaced else v
                                            for v in value))
    return new


def _slimmify(module: nn.Module, references: Sequence[nn.Module], widths: Sequence[float],
              replaced: dict[int, tuple[nn.Module, nn.Module]], probe: Optional[nn.Module],
              width_range: Optional[Sequence[float]], path: str) -> nn.Module:
    for name, child in list(module.named_children()):
        child_probe = None if probe is None else probe.get_submodule(name)
        new = _slimmify(child, [ref.get_submodule(name) for ref in references], widths, replaced,
                        child_probe, width_range, f"{path}{name}.")
        if new is not child:
            replaced[id(child)] = (child, new)
            setattr(module, name, new)

    name = path.rstrip(".") or type(module).__name__
    if isinstance(module, NORM_TYPES) and probe is not None:
        rule = _rule(name, _num_channels(module), _num_channels(probe),
                     [_num_channels(r) for r in references], widths)
        return sliced_norm(module, widths, width_range, rule)
    if isinstance(module, NORM_TYPES):  # each width's norm as its reference (GN groups too)
        return SwitchableNorm(widths, [
            norm_at_channels(module, _num_channels(r), getattr(r, "num_groups", None))
            for r in references])
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        ins, outs = zip(*(_channels(r) for r in references))
        rules = None
        if probe is not None:
            rules = tuple(_rule(f"{name} ({side})", full, at_probe, listed, widths)
                          for side, full, at_probe, listed in zip(
                              ("in", "out"), _channels(module), _channels(probe), (ins, outs)))
            if not any(r.base for r in rules):
                return module  # the same shape at every width: stays a stock layer
        elif set(ins) == {_channels(module)[0]} and set(outs) == {_channels(module)[1]}:
            return module  # same shape at every width: stays a stock layer
        with torch.device("meta"):  # parameters are replaced by the module's own below
            return _slim_layer(module, widths, list(ins), list(outs), rules, width_range)
    for pname, _param in module.named_parameters(recurse=False):
        shapes = {tuple(ref.get_parameter(pname).shape)
                  for ref in [*references, probe] if ref is not None}
        if len(shapes) > 1:
            raise TypeError(f"cannot slim {type(module).__name__}: parameter {pname!r} changes "
                            f"shape with the width {sorted(shapes)}")
    return module


def input_shapes_at(cfg: CfgNode) -> dict[str, ShapeSpec]:
    """Output shapes of the (stock) backbone of ``cfg``, built on the meta device."""
    from .backbone.stock import build_stock_backbone

    cfg = cfg.clone()
    cfg.defrost()
    for node in _norm_nodes(cfg.MODEL):
        node.NORM = ""  # norms do not change shapes: any norm string builds here
    with torch.device("meta"):
        backbone = build_stock_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
    return backbone.output_shape()
