"""The reports of a study: one S-Net vs I-Nets comparison per recipe (and distilled family)."""
from __future__ import annotations

import os
from typing import Sequence

from ..evaluation.comparison_report import write_comparison
from ..layers import width_key
from .plan import Recipe, StudyRun, run_name

__all__ = ["write_reports"]


def write_reports(runs: Sequence[StudyRun], recipe_list: Sequence[Recipe], output: str,
                  bootstrap: int = 0) -> list[str]:
    """For every recipe and slimmable family of ``runs`` (trained under ``output``), write
    ``output/report[_recipe][_distill]/comparison.*`` against the I-Nets of that recipe, with
    the US-Nets of the recipe as a curve and ``bootstrap`` paired resamplings of the validation
    images per seed; returns the report folders."""
    folders = []
    for recipe in recipe_list:
        mine = [run for run in runs if run.recipe == recipe.name]
        individual = [os.path.join(output, run.name) for run in runs if run.family == "inet"
                      and run.name == run_name(f"inet_{width_key(run.widths[0])}", recipe,
                                               run.seed, True)]
        for family, suffix in (("snet", ""), ("snet_distill", "_distill")):
            slimmable = [os.path.join(output, run.name) for run in mine if run.family == family]
            if not slimmable:
                continue
            universal = [os.path.join(output, run.name) for run in mine
                         if run.family == "u" + family]
            folder = os.path.join(output, f"report{recipe.suffix()}{suffix}")
            write_comparison(slimmable, individual, universal, folder, bootstrap)
            folders.append(folder)
    return folders
