"""ImageNet-pretrained ResNets converted into slimdet backbone checkpoints.

Two source layouts map onto Detectron2's ResNet names under ``backbone.bottom_up``:

* ``slimmable``: the official Slimmable Networks S-ResNet (``module.features.{k}...``, one
  BatchNorm per width, ``bn.{i}`` indexing the width list). Each width's BatchNorm becomes that
  width's FrozenBN; the width list, read from the channel counts, is stored in the output so
  that ``SlimmableCheckpointer`` can require ``MODEL.SLIMMABLE.WIDTHS`` to equal it.
* ``torchvision``: ``torchvision.models.resnet*`` state dicts (one BatchNorm per layer). They stay
  in stock layout; ``SlimmableCheckpointer`` gives each width the leading slice, for any list.

The depth is the one whose layout the keys match (slimmable: 50/101/152, torchvision also
18/34); the ImageNet classifier is dropped. Unknown or missing keys, or channel counts that do
not fit slimdet's ResNet at the widths, raise ``ValueError``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional, Sequence

import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from torch import nn
from tqdm import tqdm

from ..config import add_slimmable_config
from ..modeling.backbone import build_slimmable_resnet_backbone
from .slimmable_checkpointer import reading_checkpoint
from .state_dict import (check_is_state_dict, check_state_dict_fits, check_widths_match,
                         key_listing, to_slimmable_state_dict)

__all__ = ["SOURCE_FORMATS", "ConvertedBackbone", "load_state_dict_file", "convert_pretrained",
           "convert_pretrained_file"]

AUTHOR = "slimdet convert_pretrained"
PREFIX = "backbone.bottom_up."

# depth -> (blocks per stage, bottleneck blocks)
_RESNETS = {18: ((2, 2, 2, 2), False), 34: ((3, 4, 6, 3), False), 50: ((3, 4, 6, 3), True),
            101: ((3, 4, 23, 3), True), 152: ((3, 8, 36, 3), True)}
_NORM_TENSORS = ("weight", "bias", "running_mean", "running_var")
# Kinds of source tensors, for the summary.
CONV, NORM = "conv weights", "norm tensors"
CLASSIFIER, BATCHES = "classifier", "num_batches_tracked"


@dataclass(frozen=True)
class _Layout:
    """Module paths of a ResNet's convs and norms in one source format. Norm paths with ``{w}``
    hold one norm per width (``w`` its index); ``block`` is formatted with ``k`` (blocks counted
    from 1 across stages), ``stage`` (1-4) and ``index`` (within the stage)."""

    stem: tuple[str, str]  # (conv, norm)
    block: str
    convs: tuple[tuple[str, str], ...]  # (conv, norm) of conv1, conv2, conv3 within a block
    shortcut: tuple[str, str]
    classifier: tuple[str, ...]
    depths: tuple[int, ...]

    @property
    def per_width_norms(self) -> bool:
        return "{w}" in self.stem[1]


_LAYOUTS = {
    "slimmable": _Layout(
        stem=("features.0.0", "features.0.1.bn.{w}"), block="features.{k}",
        convs=(("body.0", "body.1.bn.{w}"), ("body.3", "body.4.bn.{w}"),
               ("body.6", "body.7.bn.{w}")),
        shortcut=("shortcut.0", "shortcut.1.bn.{w}"),
        classifier=("classifier.0.weight", "classifier.0.bias"), depths=(50, 101, 152)),
    "torchvision": _Layout(
        stem=("conv1", "bn1"), block="layer{stage}.{index}",
        convs=(("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
        shortcut=("downsample.0", "downsample.1"),
        classifier=("fc.weight", "fc.bias"), depths=(18, 34, 50, 101, 152)),
}
SOURCE_FORMATS = tuple(_LAYOUTS)


@dataclass
class ConvertedBackbone:
    """Backbone weights in Detectron2 names and an account of the conversion."""

    weights: dict[str, torch.Tensor]  # "backbone.bottom_up...." -> tensor
    source_format: str
    depth: int
    widths: Optional[list[float]]  # of the per-width norms; None: one norm per layer
    mapped: dict[str, int]  # kind -> number of tensors
    dropped: dict[str, list[str]]  # kind -> source keys left out

    def checkpoint(self) -> dict:
        """What ``MODEL.WEIGHTS`` / ``SlimmableCheckpointer`` loads."""
        out = {"model": self.weights, "__author__": AUTHOR, "matching_heuristics": False}
        if self.widths is not None:
            out["widths"] = self.widths
        return out

    def summary(self) -> str:
        norms = (f"widths {self.widths}" if self.widths is not None else
                 "one norm per layer (each width takes its leading slice when loaded)")
        lines = [f"{self.source_format} ResNet-{self.depth}, {norms} -> "
                 f"{len(self.weights)} tensors under {PREFIX}*"]
        lines += [f"  mapped  {n:5d} {kind}" for kind, n in self.mapped.items()]
        for kind, keys in self.dropped.items():
            names = f": {', '.join(keys)}" if kind == CLASSIFIER else ""
            lines.append(f"  dropped {len(keys):5d} {kind}{names}")
        return "\n".join(lines)


def load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    """The state dict in a ``torch.save`` file: the file's object itself, or its ``"model"``
    entry (official slimmable files, Detectron2 checkpoints). ``ValueError`` if there is none."""
    with reading_checkpoint(path):
        obj = torch.load(path, map_location="cpu", weights_only=True)
    state_dict = obj.get("model", obj) if isinstance(obj, Mapping) else obj
    check_is_state_dict(state_dict, path)
    return dict(state_dict)


def _modules(layout: _Layout, depth: int) -> Iterator[tuple[str, str, bool]]:
    """(source module, Detectron2 module, is a norm) for every conv and norm of a ResNet."""
    blocks, bottleneck = _RESNETS[depth]
    yield layout.stem[0], "stem.conv1", False
    yield layout.stem[1], "stem.conv1.norm", True
    k = 0
    for stage, num_blocks in enumerate(blocks):
        for index in range(num_blocks):
            k += 1
            src = layout.block.format(k=k, stage=stage + 1, index=index)
            dst = f"res{stage + 2}.{index}"
            parts = [(conv, norm, f"conv{i}")
                     for i, (conv, norm) in enumerate(layout.convs[:3 if bottleneck else 2], 1)]
            if index == 0 and (bottleneck or stage > 0):  # channels or stride change
                parts.append((*layout.shortcut, "shortcut"))
            for conv, norm, name in parts:
                yield f"{src}.{conv}", f"{dst}.{name}", False
                yield f"{src}.{norm}", f"{dst}.{name}.norm", True


def _layout_keys(layout: _Layout, depth: int,
                 num_widths: int) -> dict[str, tuple[Optional[str], str]]:
    """Source key -> (Detectron2 key, or None where dropped; kind), in network order."""
    out: dict[str, tuple[Optional[str], str]] = {}
    for src, dst, is_norm in _modules(layout, depth):
        if not is_norm:
            out[f"{src}.weight"] = (f"{dst}.weight", CONV)
            continue
        for w in range(num_widths) if layout.per_width_norms else [None]:
            norm_src, norm_dst = src.format(w=w), dst if w is None else f"{dst}.{w}"
            for name in _NORM_TENSORS:
                out[f"{norm_src}.{name}"] = (f"{norm_dst}.{name}", NORM)
            out[f"{norm_src}.num_batches_tracked"] = (None, BATCHES)
    out.update((k, (None, CLASSIFIER)) for k in layout.classifier)
    return out


def _match_layout(layout: _Layout, source_format: str, state_dict: Mapping[str, torch.Tensor],
                  num_widths: int) -> tuple[int, dict[str, tuple[Optional[str], str]]]:
    """The depth whose layout ``state_dict`` has, and that layout's keys; ``ValueError`` listing
    unknown and missing keys against the closest depth if none matches exactly."""
    present = set(state_dict)
    layouts = {d: _layout_keys(layout, d, num_widths) for d in layout.depths}

    def required(keys: dict) -> list[str]:
        return [k for k, (target, _) in keys.items() if target is not None]

    depth = max(layouts, key=lambda d: (len(present & layouts[d].keys()),
                                        -len(set(required(layouts[d])) - present)))
    keys = layouts[depth]
    if not present & keys.keys():
        raise ValueError(f"not a {source_format} ResNet checkpoint: none of its keys fits that "
                         f"layout; its first keys:{key_listing(list(state_dict)[:10])}")
    unknown = [k for k in state_dict if k not in keys]
    missing = [k for k in required(keys) if k not in present]
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(f"{len(unknown)} unknown keys:{key_listing(unknown)}")
        if missing:
            problems.append(f"{len(missing)} missing keys:{key_listing(missing)}")
        raise ValueError(
            f"the checkpoint is no complete {source_format} ResNet of a supported depth "
            f"{list(layout.depths)} (truncated, another depth or architecture?); closest: "
            f"ResNet-{depth}, against which it has\n" + "\n".join(problems))
    return depth, keys


def _width(stem_channels: int, res2_channels: int) -> float:
    """The shortest decimal ``w`` with slimdet's channel counts ``int(64 * w)`` (stem) and
    ``int(256 * w)`` (res2 output), the counts of a width's norms."""
    low = max(stem_channels / 64, res2_channels / 256)
    for digits in range(1, 7):
        w = math.ceil(low * 10 ** digits - 1e-6) / 10 ** digits
        if int(64 * w) == stem_channels and int(256 * w) == res2_channels:
            return w
    raise ValueError(f"norms of {stem_channels} stem and {res2_channels} res2 channels fit no "
                     f"width w of slimdet's channel rule (int(64*w), int(256*w))")


def _slimdet_resnet(depth: int, widths: Sequence[float]) -> nn.Module:
    """slimdet's slimmable ResNet (as in ``configs/COCO``) on the meta device: shapes only."""
    cfg = get_cfg()
    add_slimmable_config(cfg)
    cfg.merge_from_list([
        "MODEL.RESNETS.DEPTH", depth, "MODEL.RESNETS.RES2_OUT_CHANNELS", 256 if depth >= 50 else 64,
        "MODEL.RESNETS.STRIDE_IN_1X1", False, "MODEL.RESNETS.NORM", "FrozenBN",
        "MODEL.RESNETS.OUT_FEATURES", ["res2", "res3", "res4", "res5"],
        "MODEL.RPN.HEAD_NAME", "build_slimmable_rpn_head",
        "MODEL.ROI_HEADS.NAME", "build_slimmable_res5_roi_heads",
        "MODEL.SLIMMABLE.WIDTHS", list(widths)])
    with torch.device("meta"):
        return build_slimmable_resnet_backbone(cfg, ShapeSpec(channels=3))


def convert_pretrained(state_dict: Mapping[str, torch.Tensor], source_format: str,
                       widths: Optional[Sequence[float]] = None,
                       progress: bool = False) -> ConvertedBackbone:
    """Convert an ImageNet ResNet state dict of ``source_format`` (see ``SOURCE_FORMATS``).

    ``widths`` (``MODEL.SLIMMABLE.WIDTHS``), if given, must equal a slimmable file's width list;
    a torchvision file is checked to fit slimdet's ResNet at those widths.
    """
    if source_format not in _LAYOUTS:
        raise ValueError(f"unknown source format {source_format!r}; supported: {SOURCE_FORMATS}")
    layout = _LAYOUTS[source_format]
    if state_dict and all(k.startswith("module.") for k in state_dict):  # DataParallel
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    num_widths = 1  # per-width norms: as many as the stem has (at least one, else it is missing)
    while layout.per_width_norms and f"{layout.stem[1].format(w=num_widths)}.weight" in state_dict:
        num_widths += 1
    depth, keys = _match_layout(layout, source_format, state_dict, num_widths)

    weights: dict[str, torch.Tensor] = {}
    mapped: dict[str, int] = {}
    dropped: dict[str, list[str]] = {}
    for src, (dst, kind) in tqdm(keys.items(), desc="converting", unit="tensor",
                                 disable=not progress):
        if src not in state_dict:
            continue  # optional: classifier, num_batches_tracked
        if dst is None:
            dropped.setdefault(kind, []).append(src)
        else:
            weights[dst] = state_dict[src]
            mapped[kind] = mapped.get(kind, 0) + 1

    file_widths = None
    if layout.per_width_norms:
        file_widths = [_width(len(weights[f"stem.conv1.norm.{i}.weight"]),
                              len(weights[f"res2.0.conv3.norm.{i}.weight"]))
                       for i in range(num_widths)]
        if widths is not None:
            check_widths_match(file_widths, widths)
    fit_widths = file_widths or list(widths or [1.0])
    resnet = _slimdet_resnet(depth, fit_widths)
    try:
        check_state_dict_fits(resnet, to_slimmable_state_dict(resnet, weights))
    except ValueError as err:
        raise ValueError(f"the {source_format} ResNet-{depth} does not fit slimdet's "
                         f"ResNet-{depth} at widths {fit_widths} (channels: stem int(64*w), "
                         f"blocks int(64*w)*2^s inside and int(256*w)*2^s out): {err}") from err
    return ConvertedBackbone({PREFIX + k: v for k, v in weights.items()}, source_format, depth,
                             file_widths, mapped, dropped)


def convert_pretrained_file(src: str, dst: str, source_format: str,
                            widths: Optional[Sequence[float]] = None,
                            progress: bool = False) -> ConvertedBackbone:
    """Convert the ImageNet checkpoint file ``src`` and ``torch.save`` the result to ``dst``."""
    converted = convert_pretrained(load_state_dict_file(src), source_format, widths, progress)
    torch.save(converted.checkpoint(), dst)
    return converted
