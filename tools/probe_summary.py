#!/usr/bin/env python
"""What the gradient probe measured in finished runs, per width: median and 10th-90th
percentile of every probe scalar (grad_norm, grad_cos_widest, clip_norm, the distillation
terms' grad_norm_* and grad_cos_gt_*).

    tools/probe_summary.py output/compare_mask/snet_s0 [RUN ...] [--from 100]

Each RUN is a training run's OUTPUT_DIR (its metrics.json) or a study record (its
gradient_probe.json).
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from slimdet.evaluation.gradient_summary import probe_markdown, read_probe, summarize_probe


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN")
    parser.add_argument("--from", dest="start", type=int, default=0, metavar="ITER",
                        help="summarise the iterations from ITER on (e.g. past the warmup)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict[str, dict]:
    args = parse_args(argv)
    summaries = {}
    for run in args.runs:
        curves = read_probe(run)
        if not curves:
            raise SystemExit(f"{run}: no gradient probe scalars (metrics.json or "
                             "gradient_probe.json); train with MODEL.SLIMMABLE.GRAD_PROBE_PERIOD")
        summaries[run] = summarize_probe(curves, args.start)
        print(f"## {run}, iterations {args.start} on\n\n{probe_markdown(summaries[run])}\n")
    return summaries


if __name__ == "__main__":
    main()
