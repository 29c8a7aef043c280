"""Conversions between stock (single-norm) and slimmable (per-width norm) state dicts, and the
checks that a state dict (and its width list) fits a model.

A slimmable model stores each switchable norm as ``<prefix>.<i>.<name>``, ``i`` indexing the
width list; a stock Detectron2 model stores ``<prefix>.<name>``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from detectron2.layers import FrozenBatchNorm2d
from torch import nn

from ..layers import SwitchableNorm
from ..layers.sliced_norm import CALIBRATION_BUFFERS, WIDTH_OFFSETS

__all__ = ["switchable_norm_prefixes", "stock_state_dict", "to_slimmable_state_dict",
           "with_frozen_bn_statistics", "check_is_state_dict", "check_widths_match",
           "check_state_dict_fits", "key_listing"]


def switchable_norm_prefixes(model: nn.Module) -> dict[str, SwitchableNorm]:
    """Module path -> switchable norm, for every switchable norm of ``model``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, SwitchableNorm)}


def stock_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict in stock layout: every norm taken from the widest width."""
    norms = switchable_norm_prefixes(model)
    out = {}
    for key, value in model.state_dict().items():
        prefix, _, rest = key.rpartition(".")
        parent, _, index = prefix.rpartition(".")
        if parent in norms:
            if int(index) != norms[parent].widths.index(max(norms[parent].widths)):
                continue
            key = f"{parent}.{rest}"
        out[key] = value
    return out


def to_slimmable_state_dict(model: nn.Module,
                            state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Expand stock norm entries ``<prefix>.<name>`` into every width's ``<prefix>.<i>.<name>``
    (``SwitchableNorm.expand_stock_entries``). Other entries pass through."""
    out = dict(state_dict)
    for prefix, norm in switchable_norm_prefixes(model).items():
        norm.expand_stock_entries(out, prefix + ".")
    return out


def with_frozen_bn_statistics(model: nn.Module,
                              state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add ``running_mean`` 0 and ``running_var`` 1 to stock FrozenBN entries that have a weight
    but no statistics: Caffe2/Detectron files keep BN as an affine map (statistics folded in),
    which Detectron2's ``FrozenBatchNorm2d`` loads the same way."""
    out = dict(state_dict)
    for prefix, norm in switchable_norm_prefixes(model).items():
        weight = out.get(f"{prefix}.weight")
        if weight is not None and isinstance(norm[0], FrozenBatchNorm2d):
            out.setdefault(f"{prefix}.running_mean", torch.zeros_like(weight))
            out.setdefault(f"{prefix}.running_var", torch.ones_like(weight))
    return out


def key_listing(keys: Sequence[str], limit: int = 30) -> str:
    """Indented lines naming ``keys`` (the first ``limit``) for error messages."""
    more = f"\n  ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return "\n  " + "\n  ".join(keys[:limit]) + more


def check_is_state_dict(obj: Any, what: str) -> None:
    """Raise ``ValueError`` unless ``obj`` is a non-empty mapping of names to tensors/arrays."""
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) and isinstance(
            v, (torch.Tensor, np.ndarray)) for k, v in obj.items()):
        return
    found = f"a {type(obj).__name__}"
    if isinstance(obj, Mapping):
        found += f" with keys {list(obj)[:8]}"
    raise ValueError(f"{what} holds no model weights: expected a state dict (name -> tensor), "
                     f"alone or under 'model'; found {found}")


def check_widths_match(checkpoint_widths: Sequence[float], model_widths: Sequence[float]) -> None:
    """Raise ``ValueError`` unless a checkpoint's per-width norms are for the model's width list.

    Per-width norms are indexed by position in ``MODEL.SLIMMABLE.WIDTHS``: under another list
    each norm would land at the wrong width (or not fit), so the lists must be equal.
    """
    ours, theirs = [float(w) for w in model_widths], [float(w) for w in checkpoint_widths]
    if len(ours) != len(theirs) or not all(math.isclose(a, b, abs_tol=1e-6)
                                           for a, b in zip(ours, theirs)):
        raise ValueError(f"the checkpoint has per-width norms for widths {theirs}, but "
                         f"MODEL.SLIMMABLE.WIDTHS is {ours}; set MODEL.SLIMMABLE.WIDTHS to "
                         f"{theirs} (TRAIN_WIDTHS and TEST_WIDTHS may be any of them)")


def _group(key: str) -> str:
    return ".".join(key.split(".")[:2])


def check_state_dict_fits(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise ``ValueError`` listing every key of ``state_dict`` that does not fit ``model``.

    Not fitting: keys the model lacks, shapes that differ (but for calibrated BatchNorm
    statistics, which take the checkpoint's number of widths), and model keys missing from a part
    of the model (``backbone.bottom_up``, ``roi_heads.box_head``, ...) that the checkpoint
    otherwise covers (e.g. a checkpoint of another depth), but for a universal model's
    per-width norm offsets, which stay zero under a checkpoint without them. Parts the
    checkpoint does not touch at all (heads, for an ImageNet backbone) may stay at their
    initialisation.
    """
    model_sd = model.state_dict()
    calibrated = {k for k in model_sd if k.rpartition(".")[2] in CALIBRATION_BUFFERS}
    unexpected = sorted(k for k in state_dict if k not in model_sd)
    shapes = sorted(f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(model_sd[k].shape)}"
                    for k, v in state_dict.items()
                    if k in model_sd and k not in calibrated
                    and tuple(v.shape) != tuple(model_sd[k].shape))
    covered = {_group(k) for k in state_dict if k in model_sd}
    missing = sorted(k for k in model_sd if k not in state_dict and _group(k) in covered
                     and not k.endswith("num_batches_tracked") and k not in calibrated
                     and k.rpartition(".")[2] not in WIDTH_OFFSETS)
    problems = []
    if unexpected:
        problems.append(f"{len(unexpected)} checkpoint keys not in the model:"
                        f"{key_listing(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} keys with mismatched shapes:{key_listing(shapes)}")
    if missing:
        problems.append(f"{len(missing)} model keys missing from parts the checkpoint covers:"
                        f"{key_listing(missing)}")
    if problems:
        raise ValueError("checkpoint does not fit the model (different architecture or depth?):\n"
                         + "\n".join(problems))
