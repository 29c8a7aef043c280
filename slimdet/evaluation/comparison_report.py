"""The S-Net vs I-Nets comparison as files: ``comparison.{md,json,csv,png}`` and, where the
runs kept their per-width losses, ``comparison_training.png``."""
from __future__ import annotations

import json
import os
from typing import Sequence

from ..config import train_widths
from ..utils.csv_rows import write_csv
from .comparison import (METRICS, Run, add_bootstrap, compare_runs, compare_variant, load_run,
                         universal_curve)
from .plot import plot_comparison, plot_training_curves
from .training_curves import compare_training, read_training_curves, training_markdown

__all__ = ["comparison_markdown", "variant_markdown", "write_comparison"]

FAMILIES = ("I-Net", "S-Net", "US-Net")


def _cell(stats: dict) -> str:
    return f"{stats['mean']:.1f}" + (f" ± {stats['std']:.1f}" if stats["n"] > 1 else "")


def _paired_cell(stats: dict) -> str:
    """``+1.2 [-0.3, +2.7]`` (mean and 95% interval of S - I over seeds); ``~`` marks an
    interval that spans zero (inside the noise); ``images ± 0.6``: the bootstrap standard
    deviation over validation images, where measured."""
    paired = stats["paired"]
    if paired is None:
        return "unpaired"
    if paired["ci95"] is None:
        cell = f"{paired['mean']:+.1f} (1 seed)"
    else:
        lo, hi = paired["ci95"]
        cell = f"{paired['mean']:+.1f} [{lo:+.1f}, {hi:+.1f}]" + (" ~" if paired["noise"] else "")
    if "bootstrap" in stats:
        boot = stats["bootstrap"]
        cell += f", images ± {boot['std']:.1f}"
        if len(boot["seeds"]) < paired["n"]:  # seeds restored from records kept no predictions
            cell += f" (seeds {', '.join(map(str, boot['seeds']))})"
    return cell


def comparison_markdown(table: list[dict]) -> str:
    """Markdown table of ``compare_runs``: per width and metric, I-Net → S-Net (mean ± std
    over seeds, difference of the means), the paired difference S - I with its 95% interval
    (``~``: the interval spans zero) and the US-Net's mean where present."""
    metrics = [m for m in METRICS if m in table[0]]
    universal = "US-Net" in table[0][metrics[0]]
    titles = [f"{m}: I-Net → S-Net (diff) | {m}: S − I paired, 95% CI"
              + (f" | {m}: US-Net" if universal else "") for m in metrics]
    lines = ["| width | GFLOPs | " + " | ".join(titles) + " |",
             "|---" * (2 + len(metrics) * (2 + universal)) + "|"]
    for row in table:
        cells = [f"{_cell(row[m]['I-Net'])} → {_cell(row[m]['S-Net'])} ({row[m]['diff']:+.1f})"
                 f" | {_paired_cell(row[m])}"
                 + (f" | {_cell(row[m]['US-Net'])}" if universal else "") for m in metrics]
        lines.append(f"| {row['width']:g} | {row['GFLOPs']:.3g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def variant_markdown(table: list[dict]) -> str:
    """Markdown table of ``compare_variant``: per width and metric, S-Net → variant (mean ±
    std over seeds) and the paired difference variant − S-Net with its 95% interval."""
    metrics = [m for m in METRICS if m in table[0]]
    titles = [f"{m}: S-Net → variant | {m}: variant − S-Net paired, 95% CI" for m in metrics]
    lines = ["| width | " + " | ".join(titles) + " |", "|---" * (1 + 2 * len(metrics)) + "|"]
    for row in table:
        cells = [f"{_cell(row[m]['S-Net'])} → {_cell(row[m]['variant'])} | {_paired_cell(row[m])}"
                 for m in metrics]
        lines.append(f"| {row['width']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _flat_rows(table: list[dict]) -> list[dict]:
    out = []
    for row in table:
        flat = {"width": row["width"], "GFLOPs": row["GFLOPs"]}
        for metric in (m for m in METRICS if m in row):
            for family in (f for f in FAMILIES if f in row[metric]):
                for stat in ("mean", "std", "n"):
                    flat[f"{metric} {family} {stat}"] = row[metric][family][stat]
            flat[f"{metric} diff"] = row[metric]["diff"]
            paired = row[metric]["paired"] or {}
            ci = paired.get("ci95") or [None, None]
            flat[f"{metric} bootstrap std"] = row[metric].get("bootstrap", {}).get("std")
            flat.update({f"{metric} paired mean": paired.get("mean"),
                         f"{metric} paired std": paired.get("std"),
                         f"{metric} paired ci95 low": ci[0], f"{metric} paired ci95 high": ci[1]})
        out.append(flat)
    return out


def _training(snets: Sequence[Run], inets: Sequence[Run], png_path: str) -> list[dict]:
    """``compare_training`` of the runs, and its plot; empty if a run kept no losses."""
    slimmable = [read_training_curves(run.path) for run in snets]
    individual: dict[float, list] = {}
    for run in inets:
        individual.setdefault(train_widths(run.cfg)[0], []).append(read_training_curves(run.path))
    if any(c is None for c in slimmable + [c for cs in individual.values() for c in cs]):
        return []
    plot_training_curves(slimmable, individual, png_path)
    return compare_training(slimmable, individual)


def write_comparison(slimmable: Sequence[str], individual: Sequence[str],
                     universal: Sequence[str], output: str, bootstrap: int = 0,
                     baseline: Sequence[str] = (), label: str = "") -> list[dict]:
    """Compare the run folders (``compare_runs``; with ``bootstrap`` resamplings of the
    validation images also ``add_bootstrap``) and write ``output/comparison.md`` (the table),
    ``.json`` (every statistic and the US-Net curve), ``.csv`` and ``.png`` (AP against
    GFLOPs); where every run kept its per-width losses also their tail means (in ``.md`` and
    ``.json``) and ``comparison_training.png``. With ``baseline`` S-Net runs, ``slimmable`` is
    a variant of that S-Net: ``.md`` and ``.json`` (``against_snet``) also hold the paired
    variant − S-Net (``compare_variant``) and the plot draws both. Returns the table.

    Args:
        slimmable, individual, universal: run folders of the S-Net (or a variant), the I-Nets
            and the US-Nets (may be empty).
        output: the report's folder.
        bootstrap: resamplings of the validation images per seed (0: none).
        baseline: run folders of the S-Net a variant is compared with (may be empty).
        label: the name of ``slimmable`` in the plot and ``.json`` (default: "S-Net", or
            "variant" with a ``baseline``).
    """
    universal_runs = [load_run(d) for d in universal]
    snets, inets = [load_run(d) for d in slimmable], [load_run(d) for d in individual]
    table = compare_runs(snets, inets, universal_runs)
    if bootstrap:
        add_bootstrap(table, snets, inets, bootstrap)
    curve = universal_curve(universal_runs) if universal_runs else []
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, "comparison")
    training = _training(snets, inets, path + "_training.png")
    against = compare_variant(snets, [load_run(d) for d in baseline]) if baseline else []
    label = label or ("variant" if against else "S-Net")
    with open(path + ".md", "w") as f:
        f.write(comparison_markdown(table) + "\n")
        if against:
            names = ", ".join(os.path.basename(os.path.normpath(run)) for run in baseline)
            f.write(f"\nAgainst the S-Net ({names}), paired by seed:\n\n"
                    + variant_markdown(against) + "\n")
        if training:
            f.write("\nTraining losses, mean over the last 10% of iterations:\n\n"
                    + training_markdown(training) + "\n")
    with open(path + ".json", "w") as f:
        json.dump({"slimmable": list(slimmable), "individual": list(individual),
                   "universal": list(universal), "baseline": list(baseline), "rows": table,
                   "universal_curve": curve, "label": label, "against_snet": against,
                   "training": training},
                  f, indent=2)
    write_csv(path + ".csv", _flat_rows(table))
    plot_comparison(table, path + ".png", curve, against, label)
    return table
