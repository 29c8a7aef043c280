"""A study's results kept beside the code, so that one study can span machines and sessions.

A run's record is what the reports read: ``per_width_results.json`` and ``config.yaml``, and
where the run logged them its per-width training losses (``training_curves.json``) and its
gradient probe (``gradient_probe.json``), up to 40 kB in all (no checkpoints, no predictions).
``save_records`` copies the records of finished runs to a folder (e.g.
``docs/studies/clutter_mask``, committed with the documents that quote them);
``restore_records`` puts them back into a study's output, where such a run counts as finished
(``runner.finished``) and is reported, not retrained. The bootstrap over validation images needs
a run's predictions, so it covers only the seeds trained where the report is written.
"""
from __future__ import annotations

import os
import shutil
from typing import Sequence

from ..evaluation.gradient_summary import GRADIENT_PROBE, write_probe
from ..evaluation.training_curves import TRAINING_CURVES, write_training_curves

__all__ = ["RECORD_FILES", "RESTORED_MARKER", "save_records", "restore_records"]

RECORD_FILES = ("per_width_results.json", "config.yaml")
OPTIONAL_FILES = (TRAINING_CURVES, GRADIENT_PROBE)
RESTORED_MARKER = "restored_from.txt"  # in a run folder restored from records


def _has_record(folder: str) -> bool:
    return all(os.path.isfile(os.path.join(folder, f)) for f in RECORD_FILES)


def _copy(source: str, target: str) -> None:
    os.makedirs(target, exist_ok=True)
    for f in RECORD_FILES + OPTIONAL_FILES:
        if f in RECORD_FILES or os.path.isfile(os.path.join(source, f)):
            shutil.copyfile(os.path.join(source, f), os.path.join(target, f))


def save_records(output: str, records: str, names: Sequence[str]) -> list[str]:
    """Copy the records of the runs ``names`` under ``output`` that finished training (a
    ``model_final.pth`` and both record files; the training curves and the gradient probe too,
    from ``metrics.json``)
    to ``records/<name>/``; return their names."""
    saved = []
    for name in names:
        folder = os.path.join(output, name)
        if not (_has_record(folder) and os.path.isfile(os.path.join(folder, "model_final.pth"))):
            continue
        write_training_curves(folder)
        write_probe(folder)
        _copy(folder, os.path.join(records, name))
        saved.append(name)
    return saved


def restore_records(records: str, output: str, names: Sequence[str]) -> list[str]:
    """Copy the records of the runs ``names`` from ``records`` into ``output`` where the run
    has no result there yet, marking each with ``RESTORED_MARKER``; return their names."""
    restored = []
    for name in names:
        source, folder = os.path.join(records, name), os.path.join(output, name)
        if not _has_record(source) or os.path.isfile(os.path.join(folder, RECORD_FILES[0])):
            continue
        _copy(source, folder)
        with open(os.path.join(folder, RESTORED_MARKER), "w") as f:
            f.write(os.path.abspath(source) + "\n")
        restored.append(name)
    return restored
