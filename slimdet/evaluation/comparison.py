"""Compare finished runs: one slimmable network (S-Net) against individually trained networks
(I-Nets), width by width, each family averaged over its seeds; optionally a universally
slimmable network (US-Net) too, at the same widths and as a curve over every width it evaluated.

Differences are paired: an S-Net and the I-Net of a width trained with the same ``SEED`` (so
the same data stream) give one difference, and the differences over seeds get a mean, a
standard deviation and a 95% confidence interval (Student's t); a difference whose interval
spans zero is inside the noise.

A run is an ``OUTPUT_DIR`` holding ``per_width_results.json`` (``evaluate_widths``) and the
``config.yaml`` Detectron2 writes at start-up. An I-Net run trains one width: its
``TRAIN_WIDTHS`` (or ``WIDTHS``) has a single entry, and only that width's row is used.
"""
from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from typing import Sequence

from detectron2.config import CfgNode

from ..config import train_widths
from ..layers import width_key
from .bootstrap import paired_bootstrap, predictions_path, run_matches
from .width_evaluation import COLUMNS

__all__ = ["Run", "load_run", "compare_runs", "compare_variant", "universal_curve",
           "paired_stats", "add_bootstrap", "MATCHED_KEYS"]

# Settings that must agree between compared runs (a different dataset or schedule is no
# comparison of architectures).
MATCHED_KEYS = ("DATASETS.TRAIN", "DATASETS.TEST", "SOLVER.MAX_ITER", "SOLVER.IMS_PER_BATCH",
                "SOLVER.BASE_LR", "SOLVER.STEPS", "INPUT.MIN_SIZE_TRAIN", "INPUT.MIN_SIZE_TEST")
METRICS = [title for title, _, _ in COLUMNS]


@dataclass
class Run:
    """One finished run: its folder, config and per-width result rows."""

    path: str
    cfg: CfgNode
    rows: dict[float, dict]


def load_run(path: str) -> Run:
    """Read a run folder, or raise ``ValueError`` naming what is missing."""
    files = {name: os.path.join(path, name)
             for name in ("per_width_results.json", "config.yaml")}
    missing = [name for name, f in files.items() if not os.path.isfile(f)]
    if missing:
        raise ValueError(f"{path} is not a finished slimdet run: no {' or '.join(missing)} "
                         "(train and evaluate it with tools/train_net.py first)")
    with open(files["config.yaml"]) as f:
        cfg = CfgNode.load_cfg(f)
    with open(files["per_width_results.json"]) as f:
        rows = {float(r["width"]): r for r in json.load(f)["rows"]}
    return Run(path, cfg, rows)


def _setting(cfg: CfgNode, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return list(node) if isinstance(node, (list, tuple)) else node


def _check_matched(runs: list[Run]) -> None:
    for key in MATCHED_KEYS:
        values = {run.path: _setting(run.cfg, key) for run in runs}
        if len({json.dumps(v) for v in values.values()}) > 1:
            listing = "; ".join(f"{p}: {v}" for p, v in values.items())
            raise ValueError(f"runs differ in {key}, so they do not compare: {listing}")


def _individual_width(run: Run) -> float:
    if "SLIMMABLE" not in run.cfg.MODEL:
        raise ValueError(f"{run.path} is no slimdet run (its config has no MODEL.SLIMMABLE)")
    widths = train_widths(run.cfg)
    if len(widths) != 1:
        raise ValueError(f"{run.path} trained widths {widths}; an individual run trains one "
                         "(MODEL.SLIMMABLE.TRAIN_WIDTHS [w])")
    if widths[0] not in run.rows:
        raise ValueError(f"{run.path} has no evaluated row for its width {widths[0]}")
    return widths[0]


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}


# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (normal beyond).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def paired_stats(differences: Sequence[float]) -> dict:
    """Mean, standard deviation, ``n`` and the 95% confidence interval (``ci95``, Student's t;
    None for one value) of paired differences, and ``noise``: whether the interval spans 0."""
    stats = _stats(list(differences))
    if stats["n"] < 2:
        return {**stats, "ci95": None, "noise": True}
    t = _T95[stats["n"] - 2] if stats["n"] - 1 <= len(_T95) else 1.960
    half = t * stats["std"] / stats["n"] ** 0.5
    ci = [stats["mean"] - half, stats["mean"] + half]
    return {**stats, "ci95": ci, "noise": ci[0] <= 0 <= ci[1]}


def _by_seed(runs: list[Run], group) -> dict:
    """``{group(run): {SEED: run}}``; a group whose seeds are not distinct and >= 0 (a random
    seed, or a repeated one) pairs nothing and is left out."""
    grouped: dict = {}
    for run in runs:
        grouped.setdefault(group(run), []).append(run)
    out = {}
    for key, members in grouped.items():
        seeds = [int(run.cfg.SEED) for run in members]
        if min(seeds) >= 0 and len(set(seeds)) == len(seeds):
            out[key] = dict(zip(seeds, members))
    return out


def _same_widths(runs: list[Run], family: str) -> list[float]:
    widths = sorted(runs[0].rows)
    for run in runs[1:]:
        if sorted(run.rows) != widths:
            raise ValueError(f"{family} runs evaluated different widths: {runs[0].path} "
                             f"{widths}, {run.path} {sorted(run.rows)}")
    return widths


def _is_universal(run: Run) -> bool:
    return bool(run.cfg.MODEL.get("SLIMMABLE", {}).get("UNIVERSAL", False))


def universal_curve(universal: list[Run]) -> list[dict]:
    """Every width the US-Net runs evaluated: GFLOPs and each metric's mean and standard
    deviation over the runs (seeds)."""
    if not all(_is_universal(run) for run in universal):
        raise ValueError("--universal takes runs of MODEL.SLIMMABLE.UNIVERSAL models: "
                         f"{[r.path for r in universal if not _is_universal(r)]}")
    curve = []
    for width in _same_widths(universal, "universal"):
        rows = [run.rows[width] for run in universal]
        curve.append({"width": width, "GFLOPs": rows[0]["GFLOPs"],
                      **{m: _stats([r[m] for r in rows]) for m in METRICS if m in rows[0]}})
    return curve


def compare_runs(slimmable: list[Run], individual: list[Run],
                 universal: Sequence[Run] = ()) -> list[dict]:
    """One row per width of the S-Net runs: GFLOPs and, for every metric present, the I-Net
    and S-Net mean and standard deviation over seeds, the difference of the means, the
    ``paired`` statistics of the same-seed differences S - I (``paired_stats``; None if no seed
    has both), and the US-Net's statistics where ``universal`` runs evaluated that width.

    Raises ``ValueError`` for runs of different settings (``MATCHED_KEYS``), S-Net runs of
    different widths, I-Net runs that train several widths, or a width without an I-Net."""
    if not slimmable or not individual:
        raise ValueError("need at least one slimmable and one individual run")
    _check_matched(slimmable + individual + list(universal))
    widths = _same_widths(slimmable, "slimmable")
    curve = {row["width"]: row for row in universal_curve(list(universal))} if universal else {}
    by_width: dict[float, list[dict]] = {}
    for run in individual:
        width = _individual_width(run)
        by_width.setdefault(width, []).append(run.rows[width])
    seeded = _by_seed(individual, _individual_width)
    lacking = [w for w in widths if w not in by_width]
    if lacking:
        raise ValueError(f"no individual run for widths {lacking}; have {sorted(by_width)}")
    snet_seeds = _by_seed(slimmable, lambda run: None).get(None, {})
    table = []
    for width in widths:
        snet = [run.rows[width] for run in slimmable]
        row = {"width": width, "GFLOPs": snet[0]["GFLOPs"]}
        for metric in METRICS:
            if metric in snet[0] and all(metric in r for r in by_width[width]):
                i_stats = _stats([r[metric] for r in by_width[width]])
                s_stats = _stats([r[metric] for r in snet])
                pairs = [(run.rows[width][metric], seeded[width][seed].rows[width][metric])
                         for seed, run in snet_seeds.items() if seed in seeded.get(width, {})]
                row[metric] = {"I-Net": i_stats, "S-Net": s_stats,
                               "diff": s_stats["mean"] - i_stats["mean"],
                               "paired": paired_stats([s - i for s, i in pairs]) if pairs
                               else None}
                if metric in curve.get(width, {}):
                    row[metric]["US-Net"] = curve[width][metric]
        table.append(row)
    return table


def compare_variant(variant: list[Run], baseline: list[Run]) -> list[dict]:
    """A variant of the S-Net (distilled, universal, ...) against the S-Net itself: one row per
    width both evaluated (with each family's GFLOPs), per metric both families' mean and
    standard deviation over seeds and the ``paired`` statistics of the same-seed differences
    variant - S-Net (None if no seed has both). Raises ``ValueError`` for runs of different
    settings (``MATCHED_KEYS``)."""
    if not variant or not baseline:
        raise ValueError("need at least one variant and one baseline S-Net run")
    _check_matched(variant + baseline)
    widths = [w for w in _same_widths(variant, "variant")
              if w in _same_widths(baseline, "baseline")]
    ours = _by_seed(variant, lambda run: None).get(None, {})
    theirs = _by_seed(baseline, lambda run: None).get(None, {})
    table = []
    for width in widths:
        row = {"width": width, "GFLOPs": variant[0].rows[width]["GFLOPs"],
               "S-Net GFLOPs": baseline[0].rows[width]["GFLOPs"]}
        for metric in (m for m in METRICS if m in variant[0].rows[width]
                       and m in baseline[0].rows[width]):
            differences = [run.rows[width][metric] - theirs[seed].rows[width][metric]
                           for seed, run in ours.items() if seed in theirs]
            row[metric] = {"S-Net": _stats([r.rows[width][metric] for r in baseline]),
                           "variant": _stats([r.rows[width][metric] for r in variant]),
                           "paired": paired_stats(differences) if differences else None}
        table.append(row)
    return table


def add_bootstrap(table: list[dict], slimmable: list[Run], individual: list[Run],
                  samples: int = 1000) -> None:
    """Add to each AP metric of ``table`` (``compare_runs``) the evaluation's share of the noise:
    per seed, the paired bootstrap over validation images of that seed's S - I difference
    (``bootstrap.paired_bootstrap`` on the runs' saved predictions), and their mean ``std``.
    Seeds whose runs kept no predictions (runs restored from a study's records) are left out;
    ``seeds`` lists those included."""
    snets = _by_seed(slimmable, lambda run: None).get(None, {})
    inets = _by_seed(individual, _individual_width)
    tasks = {title: task for title, task, metric in COLUMNS if metric == "AP"}
    for row in table:
        key = width_key(row["width"])
        for metric, task in tasks.items():
            if metric not in row:
                continue
            per_seed = {}
            for seed, snet in snets.items():
                inet = inets.get(row["width"], {}).get(seed)
                if inet is not None and all(os.path.isfile(predictions_path(r.path, r.cfg, key))
                                            for r in (snet, inet)):
                    per_seed[seed] = paired_bootstrap(
                        run_matches(snet.path, snet.cfg, key, task),
                        run_matches(inet.path, inet.cfg, key, task), samples, seed)
            if per_seed:
                row[metric]["bootstrap"] = {
                    "std": statistics.fmean(b["std"] for b in per_seed.values()),
                    "seeds": sorted(per_seed), "per_seed": per_seed}
