#!/usr/bin/env python
"""The paper's comparison, run here: one slimmable network (S-Net) against networks trained
individually at each width (I-Nets), same config, schedule and recipe, for every seed; then
the report.

    tools/compare_study.py [--task mask|keypoint|faster] [--seeds 0 1 2] \\
        [--recipes sum mean clip widthclip autoclip] [--clip-value 3] [--percentile P] \\
        [--universal] [--distill] [--jobs 2] \\
        [--output output/compare] [--records DIR] [KEY VALUE ...]

--task picks the benchmark (configs/Synthetic/clutter_{task}_rcnn_R18_FPN.yaml; --config-file
overrides it) and generates its dataset if it is missing. Per seed and recipe it trains the
S-Net (OUTPUT/snet[_recipe]_s<seed>) and one I-Net per width (OUTPUT/inet_w<w>[_recipe]_s<seed>,
MODEL.SLIMMABLE.WIDTHS [w]); --universal adds a universally slimmable model (usnet_s<seed>,
evaluated every 1/16 from the narrowest width to 1), --distill an S-Net (and US-Net) with
inplace distillation. Recipes: sum (the widths' losses summed: the paper's), mean (divided by
the number of widths), clip (summed, all gradients clipped to a joint L2 norm of --clip-value),
widthclip (each width's gradient clipped at --clip-value before the sum; the I-Nets of clip;
the default: docs/recipe.md), autoclip (each width's gradient clipped at the --percentile of
its own norm history before the sum; I-Nets clipped alike).
Then OUTPUT/report[_recipe][_distill]/comparison.{md,json,csv,png} per recipe, with paired
S - I differences and 95% intervals over seeds, and (--bootstrap) the spread of each seed's
difference over resampled validation images. Finished runs are kept and a killed run resumes
from its last checkpoint, so running it again continues the study. Progress and the ETA of the
whole study are printed every 30 s; each run's own log is OUTPUT/<run>/log.txt. --records DIR
keeps each finished run's results (per_width_results.json, config.yaml) in DIR, e.g.
docs/studies/clutter_mask, and reports the runs found there instead of training them: a study
can span sessions and machines (the bootstrap covers the seeds whose predictions are here).
--pretrained follows the paper's protocol: it pretrains (once, kept like any run) a slimmable
ResNet and one ResNet per width on the clutter classes (tools/pretrain_backbone.py,
configs/Pretrain/clutter_classes_R18.yaml, --pretrain-opts overrides), then trains the S-Net
(snet_pt_s<seed>) and the I-Nets (inet_w<w>_pt_s<seed>) from them with only the backbone slimmed
and its norms frozen, reported in OUTPUT/report[_recipe]_pretrained/ with the pretraining's
top-1 per width (pretraining.md) and paired with the same S-Net and I-Nets from scratch, which
it also trains (or restores from --records); --distill and --variant S-Nets start from the
slimmable ResNet too and are paired with the pretrained S-Net.
--variant NAME 'KEY VALUE ...' (repeatable) adds an S-Net snet_NAME_s<seed> with those
overrides per seed and recipe, compared with the same I-Nets in OUTPUT/report[_recipe]_NAME/,
e.g. --variant softcls 'MODEL.SLIMMABLE.DISTILL.ENABLED True
MODEL.SLIMMABLE.DISTILL.GT_CLS_WEIGHT 0'.
"""
from __future__ import annotations

import argparse
import shlex
from typing import Optional, Sequence

from slimdet.study import TASKS, recipes
from slimdet.study.pipeline import run_and_report
from slimdet.study.plan import DEFAULT_CLIP_VALUE, DEFAULT_RECIPE


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="mask")
    parser.add_argument("--config-file", help="instead of the task's config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--recipes", nargs="+", choices=sorted(recipes()),
                        default=[DEFAULT_RECIPE])
    parser.add_argument("--clip-value", type=float, default=DEFAULT_CLIP_VALUE)
    parser.add_argument("--percentile", type=float,
                        help="of the autoclip recipe (default: SOLVER.CLIP_GRADIENTS.PERCENTILE's)")
    parser.add_argument("--universal", action="store_true",
                        help="also train and compare a universally slimmable model per seed")
    parser.add_argument("--distill", action="store_true",
                        help="also train the S-Net (and US-Net) with inplace distillation per seed")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="N",
                        help="paired resamplings of the validation images per seed in the "
                        "reports (0: none)")
    parser.add_argument("--output", default="output/compare", metavar="DIR")
    parser.add_argument("--records", metavar="DIR",
                        help="keep each finished run's results (a few kB) in DIR and report the "
                        "runs found there instead of training them")
    parser.add_argument("--pretrained", action="store_true",
                        help="the paper's protocol: pretrain a slimmable ResNet and one ResNet "
                        "per width on the clutter classes, then fine-tune in the paper's setting")
    parser.add_argument("--pretrain-opts", default="", metavar="'KEY VALUE ...'",
                        help="config overrides of the pretraining runs, in one string")
    parser.add_argument("--variant", nargs=2, action="append", default=[],
                        metavar=("NAME", "'KEY VALUE ...'"),
                        help="also train an S-Net snet_NAME_s<seed> with these overrides, "
                        "compared with the same I-Nets in OUTPUT/report[_recipe]_NAME/")
    parser.add_argument("--only", nargs="+", default=[], metavar="GLOB",
                        help="train only the runs whose names match (e.g. 'inet_*_s2'), leave "
                        "the others for later; the reports cover the finished runs")
    parser.add_argument("--progress-every", type=float, default=30, metavar="SECONDS")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    chosen = [recipes(args.clip_value, args.percentile)[name] for name in args.recipes]
    return run_and_report(args.task, args.seeds, chosen, args.output, args.opts,
                          config_file=args.config_file, universal=args.universal,
                          distill=args.distill, jobs=args.jobs, bootstrap=args.bootstrap,
                          records=args.records, progress_every=args.progress_every,
                          pretrained=args.pretrained,
                          pretrain_opts=shlex.split(args.pretrain_opts),
                          variants={name: shlex.split(opts) for name, opts in args.variant},
                          only=args.only)


if __name__ == "__main__":
    main()
