"""The runs of an S-Net vs I-Nets study: tasks, training recipes, seeds and model families.

A study trains, for every seed and recipe, one individual network per width (I-Nets:
``MODEL.SLIMMABLE.WIDTHS [w]``) and the slimmable network (S-Net), optionally a distilled S-Net
and a universally slimmable network (US-Net), all from one config and schedule. An I-Net and
its S-Net always share the recipe and the seed (so the data stream); a recipe that trains a
network of one width as another recipe does (``mean`` as ``sum``, ``widthclip`` as ``clip``)
reuses that recipe's I-Nets.

With ``pretrained`` the study also follows the paper's protocol: a slimmable ResNet and one
ResNet per width are first pretrained for classification on the clutter classes
(``tools/pretrain_backbone.py``, once for all seeds), then the S-Net starts from the slimmable
one and each I-Net from its own, in the paper's setting (only the backbone slims, its norms
frozen: ``PAPER_SETTING``); these runs carry ``_pt`` in their names. The same S-Net and I-Nets
from scratch (the plain study, same schedule) are the runs the pretrained ones are paired with.
A distilled S-Net or a variant starts from the slimmable ResNet only (``snet_distill_pt``,
``snet_<name>_pt``) and is paired with the pretrained S-Net.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from ..layers import width_key
from ..utils.model_setup import load_slimmable_config

__all__ = ["Task", "TASKS", "Recipe", "recipes", "StudyRun", "plan_study", "run_name",
           "universal_test_widths", "DEFAULT_CLIP_VALUE", "DEFAULT_RECIPE",
           "PRETRAIN_CONFIG", "PAPER_SETTING"]

_REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "configs")
CONFIGS = os.path.join(_REPO_CONFIGS, "Synthetic")
PRETRAIN_CONFIG = os.path.join(_REPO_CONFIGS, "Pretrain", "clutter_classes_R18.yaml")
# The paper's detection setting: only the backbone slims, its norms frozen (BatchNorm from the
# pretraining, one per width).
PAPER_SETTING = ("MODEL.RESNETS.NORM", "FrozenBN", "MODEL.SLIMMABLE.SLIM_FPN", "False",
                 "MODEL.SLIMMABLE.SLIM_HEADS", "False")
# Cost of a pretraining iteration (32 images of 64 pixels) relative to a detection iteration
# of the same widths (4 images of 128 pixels): 0.49 s against 1.1 s for width 1.0, measured
# side by side on the 2-core CPU.
_PRETRAIN_COST = 0.45
# Words of run names that a study variant may not take.
_RESERVED = {"distill", "pt", "sum", "mean", "clip", "widthclip", "autoclip"}
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
# The recipe a study runs unless told otherwise: the clutter Mask R-CNN config's own, the best
# S-Net at every width and at or above the I-Nets (docs/recipe.md).
DEFAULT_RECIPE = "widthclip"


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
    (``opts``) and of the single-width runs (``individual_opts``), and the recipe whose I-Nets
    this one's are (``individuals``; its own if empty)."""

    name: str
    opts: tuple[str, ...]
    individual_opts: tuple[str, ...]
    individuals: str = ""

    def suffix(self, individual: bool = False) -> str:
        """What run names of this recipe carry (none for ``sum`` and for I-Nets that are
        ``sum``'s)."""
        name = (self.individuals or self.name) if individual else self.name
        return "" if name == "sum" else f"_{name}"


def recipes(clip_value: float = DEFAULT_CLIP_VALUE,
            percentile: Optional[float] = None) -> dict[str, Recipe]:
    """The recipes a study can compare, each whatever the config's own clipping: ``sum`` (the
    widths' losses summed, as in the paper and the official code; no clipping), ``mean``
    (divided by the number of widths; a single width trains as under ``sum``), ``clip``
    (summed, all gradients clipped to a joint L2 norm of ``clip_value``, as the official
    code's ``grad_clip``; I-Nets clipped alike), ``widthclip`` (each width's gradient
    clipped at ``clip_value`` before the sum: a single width trains as under ``clip``) and
    ``autoclip`` (each width's gradient clipped at the ``percentile`` of its own norm history,
    a threshold without units; None: ``SOLVER.CLIP_GRADIENTS.PERCENTILE``'s default; I-Nets
    clipped alike)."""
    def clipping(kind: str) -> tuple[str, ...]:
        return ("SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", kind,
                "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", str(clip_value),
                "SOLVER.CLIP_GRADIENTS.NORM_TYPE", "2.0")
    clip = clipping("full_model")
    plain = ("SOLVER.CLIP_GRADIENTS.ENABLED", "False")  # whatever the config's default
    auto = ("SOLVER.CLIP_GRADIENTS.ENABLED", "True",
            "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "per_width_percentile",
            "SOLVER.CLIP_GRADIENTS.NORM_TYPE", "2.0",
            *(() if percentile is None else
              ("SOLVER.CLIP_GRADIENTS.PERCENTILE", str(float(percentile)))))
    return {"sum": Recipe("sum", plain, plain),
            "autoclip": Recipe("autoclip", auto, auto),
            "mean": Recipe("mean", (*plain, "MODEL.SLIMMABLE.LOSS_REDUCTION", "mean"), plain,
                           "sum"),
            "clip": Recipe("clip", clip, clip),
            "widthclip": Recipe("widthclip", clipping("per_width"), clip, "clip")}


@dataclass
class StudyRun:
    """One training run of the study: its folder name, config overrides, the widths each
    iteration visits (for the cost), the family and recipe it reports under, and how it runs
    (the tool, a config of its own, the runs it needs finished first)."""

    name: str
    opts: list[str]
    widths: list[float]
    max_iter: int
    family: str  # "inet", "snet", "snet_distill", "usnet", "usnet_distill", "inet_pt",
    # "snet_pt", "pretrain"
    recipe: str
    seed: int
    tool: str = "train_net"  # tools/<tool>.py
    config_file: Optional[str] = None  # None: the study's
    after: tuple[str, ...] = ()
    cost_scale: float = 1.0

    @property
    def cost(self) -> float:
        """Relative compute of the run (``_FIXED_COST + _WIDTH_COST w^2`` per width-step)."""
        return self.cost_scale * self.max_iter * sum(_FIXED_COST + _WIDTH_COST * w * w
                                                     for w in self.widths)


def run_name(family: str, recipe: Recipe, seed: int, individual: bool = False) -> str:
    """Folder name of a run: ``snet_s0``, ``snet_mean_s0``, ``inet_w0.5_clip_s1``, ..."""
    return f"{family}{recipe.suffix(individual)}_s{seed}"


def universal_test_widths(lowest: float, step: float = 1 / 16) -> list[float]:
    """Every ``step`` from ``lowest`` to 1."""
    count = int(round((1 - lowest) / step))
    return [round(lowest + i * step, 6) for i in range(count + 1)]


def _pretraining(widths: Sequence[float], pretrain_opts: Sequence[str]
                 ) -> tuple[list[StudyRun], dict[str, str]]:
    """The pretraining runs (the slimmable ResNet of ``widths``, in the detection config's
    order so that its norms line up, then one ResNet per width, seed 0) and the name of the run
    whose backbone each detection family starts from."""
    cfg = load_slimmable_config(PRETRAIN_CONFIG, ["MODEL.SLIMMABLE.WIDTHS", str(list(widths)),
                                                  *pretrain_opts])
    shared = [*pretrain_opts, "SEED", "0", "MODEL.SLIMMABLE.WIDTHS"]
    runs = [StudyRun("pretrain_snet", [*shared, str(list(widths))], list(widths),
                     cfg.SOLVER.MAX_ITER, "pretrain", "", 0, "pretrain_backbone",
                     PRETRAIN_CONFIG, (), _PRETRAIN_COST)]
    runs += [StudyRun(f"pretrain_inet_{width_key(w)}", [*shared, f"[{w}]"], [w],
                      cfg.SOLVER.MAX_ITER, "pretrain", "", 0, "pretrain_backbone",
                      PRETRAIN_CONFIG, (), _PRETRAIN_COST) for w in sorted(widths, reverse=True)]
    sources = {"snet": "pretrain_snet", **{f"inet_{width_key(w)}": f"pretrain_inet_{width_key(w)}"
                                           for w in widths}}
    return runs, sources


def plan_study(config_file: str, seeds: Sequence[int], opts: Sequence[str],
               recipe_list: Sequence[Recipe], universal: bool = False,
               distill: bool = False, pretrained: bool = False, output: str = "",
               pretrain_opts: Sequence[str] = (),
               variants: Optional[Mapping[str, Sequence[str]]] = None) -> list[StudyRun]:
    """Seed by seed and recipe by recipe: the S-Net first (its gradient probe shows early how
    the widths interact), the I-Nets widest first (the first shows early whether the benchmark
    suits the schedule), then the distilled S-Net and the US-Nets if asked. Runs that two
    recipes share are listed once. With ``pretrained``, the pretraining runs come first and each
    S-Net and I-Net is trained from them in the paper's setting, then from scratch (see the
    module docstring).

    Args:
        config_file, opts: the config of every run and overrides for all of them.
        seeds: ``SEED`` of each repetition (initialisation and data stream).
        recipe_list: the training recipes (``recipes()``) to run.
        universal, distill: add US-Nets; add inplace-distilled S-Nets (and US-Nets).
        pretrained, output, pretrain_opts: the paper's protocol; the study's folder, where the
            detection runs find the pretrained backbones; overrides of the pretraining runs.
        variants: more slimmable runs, ``snet_<name>_s<seed>``, each with its own overrides
            (e.g. a distillation setting), compared with the same I-Nets.
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
    if pretrained and universal:
        raise ValueError("a pretrained study (the paper's protocol) has no universally "
                         "slimmable backbone to start a US-Net from: leave out the universal model")
    if distill:
        families.append(("snet_distill", distilled, widths, False))
    for name, extra in (variants or {}).items():
        if not name.isidentifier() or name in _RESERVED or name.startswith("w"):
            raise ValueError(f"variant name {name!r}: use a short identifier other than "
                             f"{sorted(_RESERVED)} and not starting with 'w'")
        families.append((f"snet_{name}", list(extra), widths, False))
    if universal:
        families.append(("usnet", usnet, sandwich, False))
        if distill:
            families.append(("usnet_distill", [*usnet, *distilled], sandwich, False))
    runs: dict[str, StudyRun] = {}
    # the pretraining run each family starts from, None: from scratch
    starts: dict[str, tuple[Optional[str], ...]] = {family: (None,) for family, *_ in families}
    if pretrained:
        pretraining, sources = _pretraining([float(w) for w in cfg.MODEL.SLIMMABLE.WIDTHS],
                                            pretrain_opts)
        runs.update((run.name, run) for run in pretraining)
        # the S-Net and the I-Nets from their backbones, then from scratch (to pair with);
        # the S-Net's variants (distilled, ...) from the slimmable backbone only
        starts = {family: (sources[family], None) if family in sources
                  else (sources["snet"],) for family in starts}
    for seed in seeds:
        for recipe in recipe_list:
            for family, extra, run_widths, individual in families:
                for source in starts[family]:
                    start = [] if source is None else [
                        "MODEL.WEIGHTS", os.path.join(output, source, "backbone.pth"),
                        *PAPER_SETTING]
                    pt = "" if source is None else "_pt"
                    name = run_name(family + pt, recipe, seed, individual)
                    own = recipe.individual_opts if individual else recipe.opts
                    runs.setdefault(name, StudyRun(
                        name, ["SEED", str(seed), *own, *extra, *start], run_widths, max_iter,
                        ("inet" if individual else family) + pt, recipe.name, seed,
                        after=() if source is None else (source,)))
    return list(runs.values())
