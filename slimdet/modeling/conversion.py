"""Turn a stock Detectron2 module into a slimmable one.

``build_slimmable`` builds a component with its stock builder at the widest width (real
weights and init) and once more per width on the ``meta`` device (shapes only). Every conv,
transposed conv and linear layer whose shape differs across widths becomes a slimmable layer
with the per-width channel counts read from those references, and every norm becomes a
switchable norm. The forward code stays Detectron2's own, so the slimmable model at width ``w``
is the stock model of ``stock_config(cfg, w)`` by construction.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from torch import nn

from ..layers import SlimConv2d, SlimConvTranspose2d, SlimLinear, SwitchableNorm
from ..layers.switchable_norm import NORM_TYPES
from .stock_config import stock_config

__all__ = ["build_slimmable", "slimmify"]


def _shapes_only(cfg: CfgNode) -> CfgNode:
    """Reference config for reading channel counts: GN becomes BN, since stock GN needs channels
    divisible by 32, which narrow widths may not have (slimdet's own GN rule handles them)."""
    out = cfg.clone()
    out.defrost()

    def visit(node: CfgNode) -> None:
        for key, value in node.items():
            if isinstance(value, CfgNode):
                visit(value)
            elif key == "NORM" and value == "GN":
                node[key] = "BN"

    visit(out)
    return out


def build_slimmable(cfg: CfgNode, build_stock: Callable[[CfgNode], nn.Module]) -> nn.Module:
    """Build the slimmable version of the component that ``build_stock(stock_cfg)`` builds."""
    widths = list(cfg.MODEL.SLIMMABLE.WIDTHS)
    module = build_stock(stock_config(cfg, max(widths)))
    with torch.device("meta"):
        references = [build_stock(_shapes_only(stock_config(cfg, w))) for w in widths]
    return slimmify(module, references, widths)


def _channels(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return module.in_channels, module.out_channels


def _slim_layer(module: nn.Module, widths: Sequence[float], ins: list[int],
                outs: list[int]) -> nn.Module:
    if isinstance(module, nn.Linear):
        new = SlimLinear(widths, ins, outs, bias=module.bias is not None)
    elif isinstance(module, nn.ConvTranspose2d):
        new = SlimConvTranspose2d(widths, ins, outs, module.kernel_size, stride=module.stride,
                                  padding=module.padding, output_padding=module.output_padding,
                                  groups=module.groups, bias=module.bias is not None,
                                  dilation=module.dilation)
    else:
        if module.padding_mode != "zeros":
            raise TypeError(f"cannot slim a conv with padding_mode={module.padding_mode!r}")
        new = SlimConv2d(widths, ins, outs, module.kernel_size, stride=module.stride,
                         padding=module.padding, dilation=module.dilation, groups=module.groups,
                         bias=module.bias is not None, norm=getattr(module, "norm", None),
                         activation=getattr(module, "activation", None))
    new.weight, new.bias = module.weight, module.bias  # share the full weights, no copy
    return new.train(module.training)


def slimmify(module: nn.Module, references: Sequence[nn.Module],
             widths: Sequence[float]) -> nn.Module:
    """Slimmable version of ``module``, given the same module built at each of ``widths``.

    Submodules are replaced in place (also where a module keeps them in plain lists, as FPN
    does); the result is ``module`` itself unless ``module`` is a leaf layer that was replaced.
    """
    replaced: dict[int, nn.Module] = {}
    new = _slimmify(module, references, widths, replaced)
    for m in new.modules():  # re-point plain list/tuple attributes at the replacements
        for key, value in vars(m).items():
            if isinstance(value, (list, tuple)) and any(id(v) in replaced for v in value):
                setattr(m, key, type(value)(replaced.get(id(v), v) for v in value))
    return new


def _slimmify(module: nn.Module, references: Sequence[nn.Module], widths: Sequence[float],
              replaced: dict[int, nn.Module]) -> nn.Module:
    for name, child in list(module.named_children()):
        new = _slimmify(child, [ref.get_submodule(name) for ref in references], widths, replaced)
        if new is not child:
            replaced[id(child)] = new
            setattr(module, name, new)

    if isinstance(module, NORM_TYPES):
        sizes = [getattr(r, "num_features", None) or r.num_channels for r in references]
        return SwitchableNorm.from_norm(module, widths, sizes)
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        ins, outs = zip(*(_channels(r) for r in references))
        if set(ins) == {_channels(module)[0]} and set(outs) == {_channels(module)[1]}:
            return module  # same shape at every width: stays a stock layer
        with torch.device("meta"):  # parameters are replaced by the module's own below
            return _slim_layer(module, widths, list(ins), list(outs))
    for pname, _param in module.named_parameters(recurse=False):
        shapes = {tuple(ref.get_parameter(pname).shape) for ref in references}
        if len(shapes) > 1:
            raise TypeError(f"cannot slim {type(module).__name__}: parameter {pname!r} changes "
                            f"shape with the width {sorted(shapes)}")
    return module


def input_shapes_at(cfg: CfgNode) -> dict[str, ShapeSpec]:
    """Output shapes of the (stock) backbone of ``cfg``, built on the meta device."""
    from .backbone.stock import build_stock_backbone

    with torch.device("meta"):
        backbone = build_stock_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
    return backbone.output_shape()
