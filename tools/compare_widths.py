#!/usr/bin/env python
"""Compare a slimmable network (S-Net) with individually trained networks (I-Nets) per width.

    tools/compare_widths.py --slimmable output/snet_s0 output/snet_s1 \\
        --individual output/inet_w0.25_s0 ... --output output/comparison

Each DIR is the OUTPUT_DIR of a finished tools/train_net.py run; an I-Net run trains one width
(MODEL.SLIMMABLE.WIDTHS [w]); several runs of a family are seeds: averaged, and paired by SEED
into S - I differences with a 95% interval. Prints the table and writes
comparison.{json,csv,md,png}. ``--universal DIR...`` adds universally slimmable runs
(MODEL.SLIMMABLE.UNIVERSAL): a column at the S-Net's widths and, in the plot, a curve over every
width they evaluated. ``--baseline DIR...`` (S-Net runs) makes --slimmable a variant of that
S-Net (distilled, universal, ...) and adds the paired variant - S-Net per width.
``--bootstrap N`` adds, per width and AP metric, the standard deviation of
S - I over N paired resamplings of the validation images (from the runs' saved predictions).
Runs of different datasets, schedules or widths are an error.
"""
from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

from slimdet.evaluation.comparison_report import comparison_markdown, write_comparison


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slimmable", nargs="+", required=True, metavar="DIR")
    parser.add_argument("--individual", nargs="+", required=True, metavar="DIR")
    parser.add_argument("--universal", nargs="+", default=[], metavar="DIR")
    parser.add_argument("--baseline", nargs="+", default=[], metavar="DIR",
                        help="S-Net runs that --slimmable (a variant: distilled, universal, ...) "
                        "is also compared with, paired by seed")
    parser.add_argument("--label", default="", metavar="NAME",
                        help="the name of --slimmable in the plot (default: S-Net, or variant "
                        "with --baseline)")
    parser.add_argument("--output", required=True, metavar="DIR")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="also resample the validation images N times per seed (paired): "
                        "the evaluation's share of the noise of S - I")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    args = parse_args(argv)
    table = write_comparison(args.slimmable, args.individual, args.universal, args.output,
                             args.bootstrap, args.baseline, args.label)
    print(comparison_markdown(table))
    print(f"Wrote {os.path.join(args.output, 'comparison')}.{{md,json,csv,png}}")
    return table


if __name__ == "__main__":
    main()
