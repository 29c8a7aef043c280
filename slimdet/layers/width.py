"""Width state of slimmable modules, owned by the modules themselves (no global flags)."""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

from torch import nn

__all__ = ["SlimmableModule", "set_width", "get_width", "get_widths", "width_scope", "width_key",
           "parse_width_key", "width_index"]


class SlimmableModule:
    """Mixin for every ``nn.Module`` whose computation depends on the active width.

    Each instance stores the model's width list and the index of the active width; the
    index selects the per-width channel counts (slimmable ops) or norm (switchable norms).
    A new module starts at the widest width.
    """

    widths: tuple[float, ...]
    width_index: int

    def _init_widths(self, widths: Sequence[float]) -> None:
        if not widths:
            raise ValueError("a slimmable module needs at least one width")
        self.widths = tuple(float(w) for w in widths)
        self.width_index = self.widths.index(max(self.widths))


def _slimmable_modules(model: nn.Module) -> list[SlimmableModule]:
    """Every slimmable module under ``model``. A plain walk over ``_modules`` (no names, no
    memo) keeps ``set_width`` at a fraction of a millisecond on a whole Mask R-CNN."""
    mods, stack = [], [model]
    while stack:
        module = stack.pop()
        if module is None:  # an optional submodule left out
            continue
        if isinstance(module, SlimmableModule):
            mods.append(module)
        stack.extend(module._modules.values())
    if not mods:
        raise ValueError(f"{type(model).__name__} has no slimmable layers; build it with a "
                         "slimdet config (see slimdet.add_slimmable_config)")
    return mods


def _common_widths(mods: list[SlimmableModule]) -> tuple[float, ...]:
    widths = mods[0].widths
    for m in mods:
        if m.widths != widths:
            raise ValueError(f"inconsistent width lists in model: {widths} vs {m.widths}")
    return widths


def get_widths(model: nn.Module) -> tuple[float, ...]:
    """The widths a slimmable model can run at."""
    return _common_widths(_slimmable_modules(model))


def width_index(widths: Sequence[float], width: float) -> int:
    """Position of ``width`` in ``widths``: the one rule by which slimdet matches a width
    (equal up to 1e-9, so 0.1 + 0.2 finds 0.3); ``ValueError`` listing ``widths`` if absent."""
    for i, w in enumerate(widths):
        if math.isclose(w, float(width), abs_tol=1e-9):
            return i
    raise ValueError(f"width {width} is not supported; allowed widths: {list(widths)}")


def set_width(model: nn.Module, width: float) -> None:
    """Switch every slimmable layer of ``model`` (any wrapper, e.g. DDP) to ``width``: one index
    per module changes, nothing is rebuilt or copied."""
    mods = _slimmable_modules(model)
    index = width_index(_common_widths(mods), width)
    for m in mods:
        # Not through nn.Module.__setattr__, whose checks for parameters, buffers and
        # submodules cost more than the rest of the switch; width_index is none of them.
        m.__dict__["width_index"] = index


def get_width(model: nn.Module) -> float:
    """The width ``model`` currently runs at."""
    mods = _slimmable_modules(model)
    indices = {m.width_index for m in mods}
    if len(indices) != 1:
        raise RuntimeError("slimmable layers are at different widths; call set_width(model, w)")
    return mods[0].widths[indices.pop()]


@contextmanager
def width_scope(model: nn.Module, width: float) -> Iterator[nn.Module]:
    """Run ``model`` at ``width`` inside the block, restoring the previous width afterwards."""
    previous = get_width(model)
    set_width(model, width)
    try:
        yield model
    finally:
        set_width(model, previous)


def width_key(width: float) -> str:
    """Name of a width in logs and results, e.g. ``w0.25``."""
    return f"w{width:g}"


def parse_width_key(key: str) -> float:
    """The width a ``width_key`` names (``w0.25`` -> 0.25; a bare ``0.25`` is read too)."""
    try:
        return float(key[1:] if key.startswith("w") else key)
    except ValueError:
        raise ValueError(f"{key!r} names no width (expected e.g. 'w0.25')") from None
