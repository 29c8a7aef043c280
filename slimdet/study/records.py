"""A study's results kept beside the code, so that one study can span machines and sessions.

A run's record is what the reports read: ``per_width_results.json`` and ``config.yaml``, and
where the run logged them its per-width training losses (``training_curves.json``), its
gradient probe (``gradient_probe.json``) and its wall time (``run_time.json``), up to 40 kB in
all (no checkpoints, no predictions).
``save_records`` copies the records of finished runs to a folder (e.g.
``docs/studies/clutter_mask``, committed with the documents that quote them), with the paths of
the machine that made them made portable (``OUTPUT_DIR`` the run's name, ``MODEL.WEIGHTS``
relative to the study, annotation files relative to their dataset's folder);
``restore_records`` puts them back into a study's output, where such a run counts as finished
(``runner.finished``) and is reported, not retrained, but only if the record's config is the
plan's: a record made with other settings (an older default, another recipe under the same
name) is an error that names the keys that differ (``config_differences``). The bootstrap over
validation images needs a run's predictions, so it covers only the seeds trained where the
report is written.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Mapping, Sequence

from detectron2.config import CfgNode, get_cfg

from ..config import add_slimmable_config
from ..evaluation.gradient_summary import GRADIENT_PROBE, write_probe
from ..evaluation.training_curves import TRAINING_CURVES, write_training_curves

__all__ = ["RECORD_FILES", "RESTORED_MARKER", "RUN_TIME", "save_records", "restore_records",
           "config_differences", "RecordMismatch", "make_portable"]

RECORD_FILES = ("per_width_results.json", "config.yaml")
RUN_TIME = "run_time.json"  # the run's wall time and the runs trained beside it
OPTIONAL_FILES = (TRAINING_CURVES, GRADIENT_PROBE, RUN_TIME)
RESTORED_MARKER = "restored_from.txt"  # in a run folder restored from records
# Keys that say where a run was made, not what it trained.
_PLACES = ("OUTPUT_DIR", "MODEL.WEIGHTS")


class RecordMismatch(ValueError):
    """A record's config is not the config the plan would train under the same name."""


def _has_record(folder: str) -> bool:
    return all(os.path.isfile(os.path.join(folder, f)) for f in RECORD_FILES)


def _plain(value: object) -> object:
    """Tuples as lists, all the way down (a dumped config reads its tuples back as lists)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _flat(cfg: Mapping, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in cfg.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = _plain(value)
    return out


def _inert(flat: dict[str, object]) -> set[str]:
    """Keys of ``flat`` that the run it configures does not read (clipping settings with
    clipping off, a universal model's keys on a model of listed widths, distillation settings
    without distillation)."""
    inert = set()
    if not flat.get("SOLVER.CLIP_GRADIENTS.ENABLED"):
        inert |= {k for k in flat if k.startswith("SOLVER.CLIP_GRADIENTS.") and
                  k != "SOLVER.CLIP_GRADIENTS.ENABLED"}
    elif flat.get("SOLVER.CLIP_GRADIENTS.CLIP_TYPE") == "per_width_percentile":
        inert.add("SOLVER.CLIP_GRADIENTS.CLIP_VALUE")
    else:
        inert.add("SOLVER.CLIP_GRADIENTS.PERCENTILE")
    if not flat.get("MODEL.SLIMMABLE.UNIVERSAL"):
        inert |= {"MODEL.SLIMMABLE.UNIVERSAL_AFFINE", "MODEL.SLIMMABLE.SANDWICH_WIDTHS"}
    if not flat.get("MODEL.SLIMMABLE.DISTILL.ENABLED"):
        inert |= {k for k in flat if k.startswith("MODEL.SLIMMABLE.DISTILL.") and
                  k != "MODEL.SLIMMABLE.DISTILL.ENABLED"}
    return inert


def _portable_weights(path: str, output: str) -> str:
    """``MODEL.WEIGHTS`` relative to the study's folder where it lies in it."""
    if path and os.path.abspath(path).startswith(os.path.abspath(output) + os.sep):
        return os.path.relpath(os.path.abspath(path), os.path.abspath(output))
    return path


def _portable_annotation(path: str) -> str:
    """An annotation file from its dataset's folder on (``clutter/annotations/x.json``)."""
    parts = os.path.normpath(path).split(os.sep)
    return os.path.join(*parts[-3:]) if os.path.isabs(path) else path


def config_differences(record: CfgNode | Mapping, expected: CfgNode, output: str = "") -> list[str]:
    """The keys a record's config and the plan's ``expected`` config disagree on, as
    ``KEY: record V, plan W`` lines; empty if the record stands for the planned run.

    Where the run was made is no difference (``OUTPUT_DIR``; ``MODEL.WEIGHTS`` counts as the
    same when one ends with the other's path relative to the study folder ``output``), nor are
    keys the run does not read (``_inert``); a key the record lacks (added to slimdet after
    the run) is a difference only where the plan sets it to other than its default.
    """
    defaults = get_cfg()
    add_slimmable_config(defaults)
    flat_default, flat_record, flat_plan = _flat(defaults), _flat(record), _flat(expected)
    ignored = _inert(flat_plan) | {"OUTPUT_DIR"}
    lines = []
    for key, planned in flat_plan.items():
        if key in ignored:
            continue
        if key not in flat_record:
            if planned != flat_default.get(key, planned):
                lines.append(f"{key}: record (none, made before the key), plan {planned!r}")
            continue
        kept = flat_record[key]
        if key == "MODEL.WEIGHTS":
            planned = _portable_weights(str(planned), output)
            if kept == planned or (planned and str(kept).endswith(os.sep + planned)):
                continue
        if kept != planned:
            lines.append(f"{key}: record {kept!r}, plan {planned!r}")
    return lines


def _load_config(path: str) -> CfgNode:
    with open(path) as f:
        return CfgNode.load_cfg(f)


def _copy(source: str, target: str) -> None:
    os.makedirs(target, exist_ok=True)
    for f in RECORD_FILES + OPTIONAL_FILES:
        if f in RECORD_FILES or os.path.isfile(os.path.join(source, f)):
            shutil.copyfile(os.path.join(source, f), os.path.join(target, f))


def make_portable(target: str, output: str) -> None:
    """Rewrite the record in ``target`` of a run of the study folder ``output`` without the
    paths of the machine that made it: ``OUTPUT_DIR`` the run's name, ``MODEL.WEIGHTS``
    relative to ``output`` where it lies there, the annotation files of
    ``per_width_results.json`` from their dataset's folder on."""
    cfg = _load_config(os.path.join(target, "config.yaml"))
    cfg.OUTPUT_DIR = os.path.basename(os.path.normpath(target))
    cfg.MODEL.WEIGHTS = _portable_weights(cfg.MODEL.WEIGHTS, output)
    with open(os.path.join(target, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    results_file = os.path.join(target, RECORD_FILES[0])
    with open(results_file) as f:
        results = json.load(f)
    if "ground_truth" in results:
        results["ground_truth"] = {name: _portable_annotation(path)
                                   for name, path in results["ground_truth"].items()}
        with open(results_file, "w") as f:
            json.dump(results, f, indent=2)


def save_records(output: str, records: str, names: Sequence[str]) -> list[str]:
    """Copy the records of the runs ``names`` under ``output`` that finished training (a
    ``model_final.pth`` and both record files; the training curves and the gradient probe too,
    from ``metrics.json``) to ``records/<name>/``, their paths made portable; return their
    names."""
    saved = []
    for name in names:
        folder = os.path.join(output, name)
        if not (_has_record(folder) and os.path.isfile(os.path.join(folder, "model_final.pth"))):
            continue
        write_training_curves(folder)
        write_probe(folder)
        _copy(folder, os.path.join(records, name))
        make_portable(os.path.join(records, name), output)
        saved.append(name)
    return saved


def restore_records(records: str, output: str, expected: Mapping[str, CfgNode]) -> list[str]:
    """Copy the records of the runs named in ``expected`` (run name: the config the plan
    trains it with) from ``records`` into ``output`` where the run has no result there yet,
    marking each with ``RESTORED_MARKER``; return their names. A record whose config differs
    from the plan's raises ``RecordMismatch`` naming the run and the keys, before anything is
    copied."""
    chosen = []
    for name, cfg in expected.items():
        source, folder = os.path.join(records, name), os.path.join(output, name)
        if not _has_record(source) or os.path.isfile(os.path.join(folder, RECORD_FILES[0])):
            continue
        differences = config_differences(_load_config(os.path.join(source, "config.yaml")), cfg,
                                         output)
        if differences:
            raise RecordMismatch(
                f"the record {source} was made with other settings than the plan's run {name}: "
                + "; ".join(differences) + ". Train it under another name (a variant), or move "
                "the record away to train it again")
        chosen.append(name)
    for name in chosen:
        source, folder = os.path.join(records, name), os.path.join(output, name)
        _copy(source, folder)
        with open(os.path.join(folder, RESTORED_MARKER), "w") as f:
            f.write(os.path.relpath(os.path.abspath(source), os.path.abspath(output)) + "\n")
    return chosen
