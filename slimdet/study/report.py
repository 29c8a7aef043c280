"""The reports of a study: one S-Net vs I-Nets comparison per recipe and slimmable family
(plain, distilled, pretrained), and the pretraining's top-1 per width."""
from __future__ import annotations

import json
import os
from typing import Sequence

from ..evaluation.comparison_report import write_comparison
from ..layers import width_key
from .plan import Recipe, StudyRun, run_name

__all__ = ["write_reports", "report_families", "pretraining_markdown"]


def _top1(folder: str) -> dict[float, float]:
    with open(os.path.join(folder, "per_width_results.json")) as f:
        return {row["width"]: row["top-1"] for row in json.load(f)["rows"]}


def pretraining_markdown(runs: Sequence[StudyRun], output: str) -> str:
    """Markdown table of the pretraining runs' top-1 per width: the slimmable ResNet against
    the ResNet trained at that width alone."""
    slim = _top1(os.path.join(output, "pretrain_snet"))
    lines = ["| width | individual ResNet top-1 | slimmable ResNet top-1 |", "|---|---|---|"]
    for run in runs:
        if run.family == "pretrain" and run.name != "pretrain_snet":
            (width,) = run.widths
            alone = _top1(os.path.join(output, run.name))[width]
            lines.append(f"| {width:g} | {alone:.1f} | {slim[width]:.1f} |")
    return "\n".join(lines)


def report_families(runs: Sequence[StudyRun]) -> list[tuple[str, str, str, str]]:
    """Per slimmable family of ``runs``, the S-Net first: (family, family of its I-Nets, report
    folder suffix, family of the S-Net it is paired with or "").
    ``snet_pt`` pairs with ``snet`` (pretrained against from scratch), a pretrained variant
    (``snet_<name>_pt``) with ``snet_pt``, any other variant with ``snet``."""
    reports = []
    for family in sorted({run.family for run in runs if run.family.startswith("snet")},
                         key=lambda family: (family != "snet", family)):
        pretrained = family.endswith("_pt")
        base = family[:-len("_pt")] if pretrained else family
        baseline = ("" if family == "snet" else
                    "snet_pt" if pretrained and base != "snet" else "snet")
        reports.append((family, "inet_pt" if pretrained else "inet",
                        base[len("snet"):] + ("_pretrained" if pretrained else ""), baseline))
    return reports


def write_reports(runs: Sequence[StudyRun], recipe_list: Sequence[Recipe], output: str,
                  bootstrap: int = 0) -> list[str]:
    """For every recipe and slimmable family of ``runs`` (trained under ``output``), write
    ``output/report[_recipe][_distill|_<variant>][_pretrained]/comparison.*`` against the
    I-Nets of that recipe and family, with the US-Nets of the recipe as a curve and
    ``bootstrap`` paired resamplings of the validation images per seed; a distilled, variant or
    pretrained S-Net's report is also paired with the S-Net of the recipe it varies
    (``against_snet``, ``report_families``), a pretrained one's also gets ``pretraining.md``.
    Returns the report folders."""
    folders = []
    for recipe in recipe_list:
        mine = [run for run in runs if run.recipe == recipe.name]
        for family, inet_family, suffix, paired_with in report_families(runs):
            slimmable = [os.path.join(output, run.name) for run in mine if run.family == family]
            if not slimmable:
                continue
            tag = "_pt" if inet_family == "inet_pt" else ""
            individual = [os.path.join(output, run.name) for run in runs
                          if run.family == inet_family and run.name == run_name(
                              f"inet_{width_key(run.widths[0])}{tag}", recipe, run.seed, True)]
            universal = [os.path.join(output, run.name) for run in mine
                         if run.family == "u" + family]
            baseline = [os.path.join(output, run.name) for run in mine
                        if run.family == paired_with]
            folder = os.path.join(output, f"report{recipe.suffix()}{suffix}")
            write_comparison(slimmable, individual, universal, folder, bootstrap, baseline,
                             label=family if baseline else "")
            if inet_family == "inet_pt":
                with open(os.path.join(folder, "pretraining.md"), "w") as f:
                    f.write(pretraining_markdown(runs, output) + "\n")
            folders.append(folder)
    return folders
