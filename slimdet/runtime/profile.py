"""On-device profile of a slimmable model: latency, peak memory and GFLOPs of every width.

A profile answers "which width fits this device?" only for the situation it was measured in,
so it is saved with the facts its numbers depend on (its *key*: device, threads, input size,
config, widths) and refused, with a message naming what changed, where any of them differ.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import platform
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Callable, Optional

import torch
from detectron2.config import CfgNode
from tabulate import tabulate

from ..benchmark import MIB, time_interleaved, with_peak_memory
from ..modeling.flops import model_gflops
from ..layers import (SlimmableModule, get_width, get_widths, parse_width_key, set_width,
                      width_key, width_scope)

__all__ = ["WidthProfile", "profile_key", "profile_widths", "device_name", "time_set_width"]

# Config parts that change what a width costs (data paths, solver and output do not).
_COST_KEYS = ("MODEL", "INPUT", "TEST")


def device_name(device: str) -> str:
    """Human-readable name of the processor or GPU that ``device`` (``cpu``/``cuda[:i]``) is."""
    if device.startswith("cuda"):
        return "cuda: " + torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"cpu: {model}"


def _config_digest(cfg: CfgNode) -> str:
    """Digest of the config parts that set the network and its input, except the weights file
    and the confidence thresholds that a user changes per run (they change only how many
    detections the heads post-process)."""
    parts = cfg.clone()
    parts.defrost()
    parts.MODEL.WEIGHTS = ""
    parts.MODEL.ROI_HEADS.SCORE_THRESH_TEST = parts.MODEL.RETINANET.SCORE_THRESH_TEST = 0.0
    text = "\n".join(CfgNode({k: parts[k]}).dump() for k in _COST_KEYS)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def profile_key(cfg: CfgNode, height: int, width: int) -> dict[str, Any]:
    """What a profile's numbers depend on, for a model built from ``cfg`` running on
    ``height`` x ``width`` input images in this process."""
    return {
        "device": device_name(cfg.MODEL.DEVICE),
        "threads": torch.get_num_threads(),
        "input_size": [int(height), int(width)],
        "config": _config_digest(cfg),
        "widths": [float(w) for w in cfg.MODEL.SLIMMABLE.WIDTHS],
    }


@dataclass
class WidthProfile:
    """Measured cost of every width. ``widths`` maps each width to ``latency_ms`` (median, p90,
    ... over ``repeats`` calls after ``warmup``), ``peak_memory_mb`` and ``gflops``."""

    key: dict[str, Any]
    widths: dict[float, dict[str, Any]]
    repeats: int
    warmup: int
    set_width_ms: float
    notes: dict[str, Any] = field(default_factory=dict)

    def latency_ms(self, width: float, statistic: str = "median") -> float:
        """One latency statistic (``median``, ``p90``, ``min``, ...) of ``width``."""
        return float(self.widths[width]["latency_ms"][statistic])

    def table(self) -> str:
        """Median and p90 latency, peak memory and GFLOPs per width, and the situation
        measured, as text."""
        rows = [[width_key(w), v["latency_ms"]["median"], v["latency_ms"]["p90"],
                 v["peak_memory_mb"], v["gflops"]] for w, v in sorted(self.widths.items())]
        table = tabulate(rows, headers=["width", "median ms", "p90 ms", "peak MiB", "GFLOPs"],
                         tablefmt="pipe", floatfmt=".2f")
        key = self.key
        return (f"{table}\n{key['device']}, {key['threads']} threads, input {key['input_size']}, "
                f"{self.repeats} calls per width; set_width {self.set_width_ms * 1e3:.0f} us "
                f"over {self.notes['slimmable_modules']} slimmable modules")

    def save(self, path: str) -> None:
        data = asdict(self)
        data["widths"] = {width_key(w): v for w, v in self.widths.items()}
        with open(path, "w") as f:
            json.dump(data, f, indent=2)

    @classmethod
    def load(cls, path: str, expected_key: Optional[dict[str, Any]] = None) -> WidthProfile:
        """Read a saved profile; with ``expected_key`` (see ``profile_key``), raise
        ``ValueError`` naming every field that differs, since its numbers would not apply."""
        try:
            with open(path) as f:
                data = json.load(f)
            data["widths"] = {parse_width_key(w): v for w, v in data["widths"].items()}
            profile = cls(**data)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path} is not a readable width profile ({type(err).__name__}: "
                             f"{err}); write one with tools/profile_widths.py") from err
        if expected_key is not None:
            profile.check(expected_key, path)
        return profile

    def check(self, expected_key: dict[str, Any], source: str = "the profile") -> None:
        """Raise ``ValueError`` if this profile was measured for another situation."""
        changed = [f"{k}: profiled {self.key.get(k)!r}, now {v!r}" for k, v in expected_key.items()
                   if self.key.get(k) != v]
        if changed:
            raise ValueError(f"{source} is stale for this run; " + "; ".join(changed) +
                             ". Measure again with tools/profile_widths.py")


def time_set_width(model: torch.nn.Module, repeats: int = 200) -> float:
    """Median milliseconds of one ``set_width`` call on ``model``, cycling through its widths."""
    widths = itertools.cycle(get_widths(model))
    with width_scope(model, get_width(model)):
        timing = time_interleaved({"switch": lambda: set_width(model, next(widths))}, repeats,
                                  10, torch.device("cpu"))
    return timing["switch"].median


def profile_widths(model: torch.nn.Module, key: dict[str, Any],
                   run: Callable[[], Any], inputs: Callable[[], list[dict]], *,
                   repeats: int, warmup: int) -> WidthProfile:
    """Profile every width of ``model``.

    Args:
        model: the slimmable model; its width is switched and restored.
        key: ``profile_key`` of the situation being measured.
        run: one call as the application makes it (e.g. a predictor on an image).
        inputs: the model inputs of that call, for counting FLOPs.
        repeats: timed calls per width, after ``warmup`` untimed ones; widths are interleaved
            so that they share the machine's load (see ``slimdet.benchmark.timing``).
    Returns:
        The profile, with latency median and p90, peak memory (MiB) and GFLOPs per width.
    """
    device = next(model.parameters()).device
    widths = get_widths(model)

    def at(width: float) -> Any:
        set_width(model, width)
        return run()

    with width_scope(model, max(widths)):
        timings = time_interleaved({w: partial(at, w) for w in widths}, repeats, warmup, device)
        # Memory of every width before any FLOP count: tracing drops the cached dense weight
        # slices, whose rebuilding would be counted as the next width's peak.
        peaks = {w: with_peak_memory(partial(at, w), device)[1] / MIB for w in widths}
        per_width = {}
        for w in widths:
            set_width(model, w)
            per_width[w] = {"latency_ms": timings[w].as_dict(), "peak_memory_mb": peaks[w],
                            "gflops": model_gflops(model, inputs())}
    return WidthProfile(key=key, widths=per_width, repeats=repeats, warmup=warmup,
                        set_width_ms=time_set_width(model),
                        notes={"slimmable_modules": sum(isinstance(m, SlimmableModule)
                                                        for m in model.modules()),
                               "torch": torch.__version__})
