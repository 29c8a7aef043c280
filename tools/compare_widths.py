#!/usr/bin/env python
"""Compare a slimmable network (S-Net) with individually trained networks (I-Nets) per width.

    tools/compare_widths.py --slimmable output/snet_seed0 output/snet_seed1 \\
        --individual output/inet_w0.25_seed0 ... --output output/comparison

Each DIR is the OUTPUT_DIR of a finished tools/train_net.py run; an I-Net run trains one width
(MODEL.SLIMMABLE.WIDTHS [w]); several runs of a family are seeds and are averaged. Prints
the table (I-Net -> S-Net mean +- std, difference) and writes comparison.{json,csv,md,png}.
``--universal DIR...`` adds universally slimmable runs (MODEL.SLIMMABLE.UNIVERSAL): a column at
the S-Net's widths and, in the plot, a curve over every width they evaluated. Runs of different
datasets, schedules or widths are an error.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
from typing import Optional, Sequence

from slimdet.evaluation import compare_runs, load_run, plot_comparison
from slimdet.evaluation.comparison import METRICS, universal_curve


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slimmable", nargs="+", required=True, metavar="DIR")
    parser.add_argument("--individual", nargs="+", required=True, metavar="DIR")
    parser.add_argument("--universal", nargs="+", default=[], metavar="DIR")
    parser.add_argument("--output", required=True, metavar="DIR")
    return parser.parse_args(argv)


def _cell(stats: dict) -> str:
    return f"{stats['mean']:.1f}" + (f" ± {stats['std']:.1f}" if stats["n"] > 1 else "")


def markdown(table: list[dict]) -> str:
    metrics = [m for m in METRICS if m in table[0]]
    universal = "US-Net" in table[0][metrics[0]]
    titles = [f"{m}: I-Net → S-Net (diff)" + (" | US-Net" if universal else "") for m in metrics]
    lines = ["| width | GFLOPs | " + " | ".join(titles) + " |",
             "|---" * (2 + len(metrics) * (1 + universal)) + "|"]
    for row in table:
        cells = [f"{_cell(row[m]['I-Net'])} → {_cell(row[m]['S-Net'])} ({row[m]['diff']:+.1f})"
                 + (f" | {_cell(row[m]['US-Net'])}" if universal else "") for m in metrics]
        lines.append(f"| {row['width']:g} | {row['GFLOPs']:.3g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def flat_rows(table: list[dict]) -> list[dict]:
    out = []
    for row in table:
        flat = {"width": row["width"], "GFLOPs": row["GFLOPs"]}
        for metric in (m for m in METRICS if m in row):
            for family in (f for f in ("I-Net", "S-Net", "US-Net") if f in row[metric]):
                for stat in ("mean", "std", "n"):
                    flat[f"{metric} {family} {stat}"] = row[metric][family][stat]
            flat[f"{metric} diff"] = row[metric]["diff"]
        out.append(flat)
    return out


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    args = parse_args(argv)
    universal = [load_run(d) for d in args.universal]
    table = compare_runs([load_run(d) for d in args.slimmable],
                         [load_run(d) for d in args.individual], universal)
    curve = universal_curve(universal) if universal else []
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "comparison")
    text = markdown(table)
    print(text)
    with open(path + ".md", "w") as f:
        f.write(text + "\n")
    with open(path + ".json", "w") as f:
        json.dump({"slimmable": args.slimmable, "individual": args.individual,
                   "universal": args.universal, "rows": table, "universal_curve": curve},
                  f, indent=2)
    rows = flat_rows(table)
    with open(path + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_comparison(table, path + ".png", curve)
    print(f"Wrote {path}.{{md,json,csv,png}}")
    return table


if __name__ == "__main__":
    main()
