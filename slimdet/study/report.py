"""The reports of a study: one S-Net vs I-Nets comparison per recipe and slimmable family
(plain, distilled, pretrained), and the pretraining's top-1 per width."""
from __future__ import annotations

import json
import os
from typing import Sequence

from ..evaluation.comparison_report import write_comparison
from ..layers import width_key
from .plan import Recipe, StudyRun, run_name

__all__ = ["write_reports", "pretraining_markdown"]

# (slimmable family, family of its I-Nets, report folder suffix)
_REPORTS = (("snet", "inet", ""), ("snet_distill", "inet", "_distill"),
            ("snet_pt", "inet_pt", "_pretrained"))


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


def write_reports(runs: Sequence[StudyRun], recipe_list: Sequence[Recipe], output: str,
                  bootstrap: int = 0) -> list[str]:
    """For every recipe and slimmable family of ``runs`` (trained under ``output``), write
    ``output/report[_recipe][_distill|_pretrained|_<variant>]/comparison.*`` against the
    I-Nets of that recipe and family, with the US-Nets of the recipe as a curve and
    ``bootstrap`` paired resamplings of the validation images per seed; a distilled, variant or
    pretrained S-Net's report is also paired with the plain S-Net (from scratch) of the recipe
    (``against_snet``), a pretrained study's also gets ``pretraining.md``. Returns the report
    folders."""
    folders = []
    variants = sorted({run.family for run in runs if run.family.startswith("snet_")}
                      - {family for family, _, _ in _REPORTS})
    reports = [*_REPORTS, *((family, "inet", family[len("snet"):]) for family in variants)]
    for recipe in recipe_list:
        mine = [run for run in runs if run.recipe == recipe.name]
        for family, inet_family, suffix in reports:
            slimmable = [os.path.join(output, run.name) for run in mine if run.family == family]
            if not slimmable:
                continue
            tag = "_pt" if inet_family == "inet_pt" else ""
            individual = [os.path.join(output, run.name) for run in runs
                          if run.family == inet_family and run.name == run_name(
                              f"inet_{width_key(run.widths[0])}{tag}", recipe, run.seed, True)]
            universal = [os.path.join(output, run.name) for run in mine
                         if run.family == "u" + family]
            baseline = ([os.path.join(output, run.name) for run in mine if run.family == "snet"]
                        if family != "snet" else [])
            folder = os.path.join(output, f"report{recipe.suffix()}{suffix}")
            write_comparison(slimmable, individual, universal, folder, bootstrap, baseline)
            if inet_family == "inet_pt":
                with open(os.path.join(folder, "pretraining.md"), "w") as f:
                    f.write(pretraining_markdown(runs, output) + "\n")
            folders.append(folder)
    return folders
