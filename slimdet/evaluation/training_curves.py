"""Per-width training losses of finished runs, S-Net against I-Nets.

An S-Net that evaluates below its I-Net at a width either fits the training data less well
(the widths compete for the shared weights) or fits it as well and generalises worse. The
per-width scalars in ``metrics.json`` (``w0.25/loss_cls``, ...) tell the two apart: this
module reads them, keeps a compact copy with a run's records (``training_curves.json``) and
compares the losses of the schedule's tail, width by width, averaged over seeds.
"""
from __future__ import annotations

import json
import os
import statistics
from typing import Callable, Mapping, Sequence

from ..layers import parse_width_key

__all__ = ["TRAINING_CURVES", "read_curves", "write_curves", "read_training_curves",
           "write_training_curves", "compare_training", "training_markdown"]

TRAINING_CURVES = "training_curves.json"
Curves = dict[str, list[list[float]]]  # "w0.25/loss_cls" -> [[iteration, value], ...]


def _is_width_loss(key: str) -> bool:
    head, _, name = key.partition("/")
    return head.startswith("w") and (name == "total_loss" or name.startswith("loss_"))


def read_curves(folder: str, compact_file: str, keep: Callable[[str], bool]) -> Curves | None:
    """The scalars of the run in ``folder`` whose keys ``keep`` accepts, against iteration,
    from its compact copy ``compact_file`` or else its ``metrics.json``; None if it has
    neither."""
    compact = os.path.join(folder, compact_file)
    if os.path.isfile(compact):
        with open(compact) as f:
            return json.load(f)
    metrics = os.path.join(folder, "metrics.json")
    if not os.path.isfile(metrics):
        return None
    curves: Curves = {}
    with open(metrics) as f:
        for line in f:
            row = json.loads(line)
            for key, value in row.items():
                if keep(key):
                    curves.setdefault(key, []).append([row["iteration"], value])
    return curves


def write_curves(folder: str, compact_file: str, keep: Callable[[str], bool]) -> bool:
    """Write ``folder/compact_file`` from the run's ``metrics.json`` (the keys ``keep``
    accepts, 4 significant digits); return whether there were curves to write."""
    curves = read_curves(folder, compact_file, keep)
    if not curves:
        return False
    compact = {key: [[int(it), float(f"{value:.4g}")] for it, value in points]
               for key, points in curves.items()}
    with open(os.path.join(folder, compact_file), "w") as f:
        json.dump(compact, f, separators=(",", ":"))
    return True


def read_training_curves(folder: str) -> Curves | None:
    """The per-width losses of the run in ``folder`` (``w<width>/total_loss`` and
    ``w<width>/loss_*`` against iteration), from its ``training_curves.json`` or else its
    ``metrics.json``; None if it has neither."""
    return read_curves(folder, TRAINING_CURVES, _is_width_loss)


def write_training_curves(folder: str) -> bool:
    """Write ``folder/training_curves.json`` from the run's ``metrics.json`` (5-20 kB, kept
    with the run's records); return whether there were curves to write."""
    return write_curves(folder, TRAINING_CURVES, _is_width_loss)


def _tail_mean(points: Sequence[Sequence[float]], tail: float) -> float:
    last = max(it for it, _ in points)
    start = last - tail * last
    return statistics.fmean(v for it, v in points if it >= start)


def _losses(curves: Curves, tail: float) -> dict[float, dict[str, float]]:
    """``{width: {loss name: mean over the last ``tail`` of the iterations}}``."""
    out: dict[float, dict[str, float]] = {}
    for key, points in curves.items():
        head, _, name = key.partition("/")
        out.setdefault(parse_width_key(head), {})[name] = _tail_mean(points, tail)
    return out


def compare_training(slimmable: Sequence[Curves], individual: Mapping[float, Sequence[Curves]],
                     tail: float = 0.1) -> list[dict]:
    """Per width of the S-Nets: every loss's mean over the last ``tail`` of training, averaged
    over the S-Net runs and over the I-Net runs of that width (``individual``: width -> curves
    of its runs), as ``{"width", "losses": {name: {"I-Net", "S-Net"}}}``; widths without an
    I-Net are left out."""
    snet = [_losses(c, tail) for c in slimmable]
    table = []
    for width in sorted(snet[0], reverse=True):
        inet = [_losses(c, tail)[width] for c in individual.get(width, ())]
        if not inet:
            continue
        names = sorted(set(snet[0][width]) & set(inet[0]))
        table.append({"width": width, "losses": {
            name: {"I-Net": statistics.fmean(r[name] for r in inet),
                   "S-Net": statistics.fmean(s[width][name] for s in snet)} for name in names}})
    return table


def training_markdown(table: list[dict]) -> str:
    """Markdown of ``compare_training``: per width and loss, I-Net → S-Net."""
    names = sorted({n for row in table for n in row["losses"]},
                   key=lambda n: (n != "total_loss", n))
    lines = ["| width | " + " | ".join(f"{n}: I-Net → S-Net" for n in names) + " |",
             "|---" * (1 + len(names)) + "|"]
    for row in table:
        cells = [f"{row['losses'][n]['I-Net']:.3f} → {row['losses'][n]['S-Net']:.3f}"
                 if n in row["losses"] else "" for n in names]
        lines.append(f"| {row['width']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
