"""Width state of slimmable modules, owned by the modules themselves (no global flags)."""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

from torch import nn

__all__ = ["SlimmableModule", "ChannelRule", "set_width", "get_width", "get_widths",
           "get_width_range", "width_scope", "width_key", "parse_width_key", "width_index",
           "width_in_range"]


@dataclass(frozen=True)
class ChannelRule:
    """Channels of one layer dimension at width ``w``: ``multiplier * int(base * w)``.

    That is how ``stock_config`` makes every width: it scales a config value ``base`` to
    ``int(base * w)``, which Detectron2 multiplies into the layer (a stage's factor, the group
    count, a pooled area). ``base`` 0: the dimension keeps ``multiplier`` channels."""

    multiplier: int
    base: int = 0

    def at(self, width: float) -> int:
        return self.multiplier * int(self.base * width) if self.base else self.multiplier


class SlimmableModule:
    """Mixin for every ``nn.Module`` whose computation depends on the active width.

    Each instance stores the model's width list and the index of the active width; the
    index selects the per-width channel counts (slimmable ops) or norm (switchable norms).
    A new module starts at the widest width.

    A *universal* module (``width_range`` set) runs at any width of the range: ``set_width``
    stores the width as ``active_width`` (``width_index`` is its place in ``widths``, -1 off
    the list) and calls ``_switch``, which derives what the module needs there from its
    ``ChannelRule``s, in constant time and memory whatever the number of widths used.
    """

    widths: tuple[float, ...]
    width_index: int
    width_range: Optional[tuple[float, float]] = None
    active_width: float

    def _init_widths(self, widths: Sequence[float],
                     width_range: Optional[Sequence[float]] = None) -> None:
        if not widths:
            raise ValueError("a slimmable module needs at least one width")
        self.widths = tuple(float(w) for w in widths)
        self.width_index = self.widths.index(max(self.widths))
        if width_range is not None:
            self.width_range = (float(width_range[0]), float(width_range[1]))
            self.active_width = max(self.widths)
            self._switch(self.active_width)

    def _switch(self, width: float) -> None:
        """Universal modules: get ready to run at ``width``."""

    @property
    def current_width(self) -> float:
        """The width the module runs at."""
        return self.active_width if self.width_range else self.widths[self.width_index]


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


def _common_widths(mods: list[SlimmableModule]) -> tuple[tuple[float, ...],
                                                           Optional[tuple[float, float]]]:
    widths, width_range = mods[0].widths, mods[0].width_range
    for m in mods:
        if m.widths != widths or m.width_range != width_range:
            raise ValueError(f"inconsistent widths in model: {widths} (range {width_range}) vs "
                             f"{m.widths} (range {m.width_range})")
    return widths, width_range


def get_widths(model: nn.Module) -> tuple[float, ...]:
    """The widths a slimmable model lists (a universal model runs at any width between)."""
    return _common_widths(_slimmable_modules(model))[0]


def get_width_range(model: nn.Module) -> Optional[tuple[float, float]]:
    """(lowest, highest) width of a universal model; None for a model of listed widths."""
    return _common_widths(_slimmable_modules(model))[1]


def width_index(widths: Sequence[float], width: float) -> int:
    """Position of ``width`` in ``widths``: the one rule by which slimdet matches a width
    (equal up to 1e-9, so 0.1 + 0.2 finds 0.3); ``ValueError`` listing ``widths`` if absent."""
    for i, w in enumerate(widths):
        if math.isclose(w, float(width), abs_tol=1e-9):
            return i
    raise ValueError(f"width {width} is not supported; allowed widths: {list(widths)}")


def width_in_range(width_range: Sequence[float], width: float) -> float:
    """``width`` as a float if it lies in ``width_range`` (up to 1e-9), else ``ValueError``."""
    lowest, highest = width_range
    if not lowest - 1e-9 <= float(width) <= highest + 1e-9:
        raise ValueError(f"width {width} is outside the universal range [{lowest:g}, "
                         f"{highest:g}]")
    return min(max(float(width), lowest), highest)


def set_width(model: nn.Module, width: float) -> None:
    """Switch every slimmable layer of ``model`` (any wrapper, e.g. DDP) to ``width``: one index
    per module changes (a universal module also derives its channel counts), nothing is rebuilt
    or copied."""
    mods = _slimmable_modules(model)
    widths, width_range = _common_widths(mods)
    # Not through nn.Module.__setattr__, whose checks for parameters, buffers and submodules
    # cost more than the rest of the switch; these attributes are none of them.
    if width_range is None:
        index = width_index(widths, width)
        for m in mods:
            m.__dict__["width_index"] = index
        return
    width = width_in_range(width_range, width)
    index = next((i for i, w in enumerate(widths) if math.isclose(w, width, abs_tol=1e-9)), -1)
    for m in mods:
        m.__dict__["width_index"] = index
        m.__dict__["active_width"] = width
        m._switch(width)


def get_width(model: nn.Module) -> float:
    """The width ``model`` currently runs at."""
    current = {m.current_width for m in _slimmable_modules(model)}
    if len(current) != 1:
        raise RuntimeError("slimmable layers are at different widths; call set_width(model, w)")
    return current.pop()


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
