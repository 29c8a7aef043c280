"""The runs of an S-Net vs I-Nets study: tasks, training recipes, seeds and model families.

A study trains, for every seed and recipe, one individual network per width (I-Nets:
``MODEL.SLIMMABLE.WIDTHS [w]``) and the slimmable network (S-Net), optionally a distilled S-Net
and a universally slimmable network (US-Net), all from one config and schedule. An I-Net and
its S-Net always share the recipe and the seed (so the data stream); a recipe that changes
nothing for a network of one width (``mean``) reuses the I-Nets of ``sum``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from ..layers import width_key
from ..utils.model_setup import load_slimmable_config

__all__ = ["Task", "TASKS", "Recipe", "recipes", "StudyRun", "plan_study", "run_name",
           "universal_test_widths", "DEFAULT_CLIP_VALUE"]

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "configs", "Synthetic")
# Relative cost of one training iteration at width w: 0.15 + 0.54 w^2, measured with the clutter
# Mask R-CNN on a 2-core CPU (0.18 s at 0.25, 0.69 s at 1.0). Only ratios matter: the ETA scales
# them by the speed observed in the study.
_FIXED_COST, _WIDTH_COST = 0.15, 0.54
# Threshold of the "clip" recipe, the joint L2 norm of all gradients, from the gradient probe
# of the clutter Mask R-CNN (docs/recipe.md): the summed 4-width gradient of the S-Net measures
# 4-6 from iteration 100 on (the widths' gradients are nearly orthogonal: cosines with width
# 1.0's 0.01-0.36), the I-Net of width 1.0 alone 1.8-2.8. At 3 the S-Net's step is capped near
# one width's for most of training while the I-Nets clip at their largest steps only.
DEFAULT_CLIP_VALUE = 3.0


@dataclass(frozen=True)
class Task:
    """A benchmark of the study: its config and the generator of its dataset."""

    name: str
    config_file: str
    generator: str  # module run as ``python -m GENERATOR --out ROOT``
    dataset: str  # folder under the datasets root


TASKS = {
    "mask": Task("mask", os.path.join(CONFIGS, "clutter_mask_rcnn_R18_FPN.yaml"),
                 "slimdet.data.clutter", "clutter"),
    "faster": Task("faster", os.path.join(CONFIGS, "clutter_faster_rcnn_R18_FPN.yaml"),
                   "slimdet.data.clutter", "clutter"),
    "keypoint": Task("keypoint", os.path.join(CONFIGS, "clutter_keypoint_rcnn_R18_FPN.yaml"),
                     "slimdet.data.clutter_people", "clutter_people"),
}


@dataclass(frozen=True)
class Recipe:
    """How the widths' gradients become one step: config overrides of every run
    (``opts``) and of the single-width runs (``individual_opts``)."""

    name: str
    opts: tuple[str, ...]
    individual_opts: tuple[str, ...]

    def suffix(self, individual: bool = False) -> str:
        """What run names of this recipe carry (none for ``sum`` and for I-Nets that equal
        ``sum``'s)."""
        shares_sum = individual and not self.individual_opts
        return "" if self.name == "sum" or shares_sum else f"_{self.name}"


def recipes(clip_value: float = DEFAULT_CLIP_VALUE) -> dict[str, Recipe]:
    """The recipes a study can compare: ``sum`` (the widths' losses summed, as in the paper and
    the official code), ``mean`` (divided by the number of widths; a single width trains as
    under ``sum``) and ``clip`` (summed, all gradients clipped to a joint L2 norm of
    ``clip_value``, as the official code's ``grad_clip``; I-Nets clipped alike)."""
    clip = ("SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE",
            "full_model", "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", str(clip_value),
            "SOLVER.CLIP_GRADIENTS.NORM_TYPE", "2.0")
    return {"sum": Recipe("sum", (), ()),
            "mean": Recipe("mean", ("MODEL.SLIMMABLE.LOSS_REDUCTION", "mean"), ()),
            "clip": Recipe("clip", clip, clip)}


@dataclass
class StudyRun:
    """One training run of the study: its folder name, config overrides, the widths each
    iteration visits (for the cost), and the family and recipe it reports under."""

    name: str
    opts: list[str]
    widths: list[float]
    max_iter: int
    family: str  # "inet", "snet", "snet_distill", "usnet", "usnet_distill"
    recipe: str
    seed: int

    @property
    def cost(self) -> float:
        """Relative compute of the run (``_FIXED_COST + _WIDTH_COST w^2`` per width-step)."""
        return self.max_iter * sum(_FIXED_COST + _WIDTH_COST * w * w for w in self.widths)


def run_name(family: str, recipe: Recipe, seed: int, individual: bool = False) -> str:
    """Folder name of a run: ``snet_s0``, ``snet_mean_s0``, ``inet_w0.5_clip_s1``, ..."""
    return f"{family}{recipe.suffix(individual)}_s{seed}"


def universal_test_widths(lowest: float, step: float = 1 / 16) -> list[float]:
    """Every ``step`` from ``lowest`` to 1."""
    count = int(round((1 - lowest) / step))
    return [round(lowest + i * step, 6) for i in range(count + 1)]


def plan_study(config_file: str, seeds: Sequence[int], opts: Sequence[str],
               recipe_list: Sequence[Recipe], universal: bool = False,
               distill: bool = False) -> list[StudyRun]:
    """Seed by seed and recipe by recipe: the S-Net first (its gradient probe shows early how
    the widths interact), the I-Nets widest first (the first shows early whether the benchmark
    suits the schedule), then the distilled S-Net and the US-Nets if asked. Runs that two
    recipes share are listed once.

    Args:
        config_file, opts: the config of every run and overrides for all of them.
        seeds: ``SEED`` of each repetition (initialisation and data stream).
        recipe_list: the training recipes (``recipes()``) to run.
        universal, distill: add US-Nets; add inplace-distilled S-Nets (and US-Nets).
    """
    cfg = load_slimmable_config(config_file, opts)
    widths = sorted((float(w) for w in cfg.MODEL.SLIMMABLE.WIDTHS), reverse=True)
    max_iter = cfg.SOLVER.MAX_ITER
    distilled = ["MODEL.SLIMMABLE.DISTILL.ENABLED", "True"]
    lowest, n = min(widths), cfg.MODEL.SLIMMABLE.SANDWICH_WIDTHS
    usnet = ["MODEL.SLIMMABLE.UNIVERSAL", "True",
             "MODEL.SLIMMABLE.TEST_WIDTHS", str(universal_test_widths(lowest))]
    sandwich = [1.0, lowest] + [(1 + lowest) / 2] * (n - 2)
    families: list[tuple[str, list[str], list[float], bool]] = [("snet", [], widths, False)]
    families += [(f"inet_{width_key(w)}", ["MODEL.SLIMMABLE.WIDTHS", f"[{w}]"], [w], True)
                 for w in widths]
    if distill:
        families.append(("snet_distill", distilled, widths, False))
    if universal:
        families.append(("usnet", usnet, sandwich, False))
        if distill:
            families.append(("usnet_distill", [*usnet, *distilled], sandwich, False))
    runs: dict[str, StudyRun] = {}
    for seed in seeds:
        for recipe in recipe_list:
            for family, extra, run_widths, individual in families:
                name = run_name(family, recipe, seed, individual)
                own = recipe.individual_opts if individual else recipe.opts
                runs.setdefault(name, StudyRun(
                    name, ["SEED", str(seed), *own, *extra], run_widths, max_iter,
                    "inet" if individual else family, recipe.name, seed))
    return list(runs.values())
