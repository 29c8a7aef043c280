"""What the gradient probe measured over a run, in numbers to quote.

The probe (``MODEL.SLIMMABLE.GRAD_PROBE_PERIOD``) and per-width clipping log, per width, the
gradient each width adds (``w0.25/grad_norm``), its cosine with the widest width's
(``w0.25/grad_cos_widest``), with distillation each term's norm and cosine with the ground
truth's (``w0.25/grad_cos_gt_distill_roi_cls``), the norm before clipping (``w0.25/clip_norm``)
and the summed gradient's ``grad_norm``. A curve of 50 noisy points per key is hard to read;
this module keeps them with a run's records (``gradient_probe.json``) and summarises each key
by its median and 10th-90th percentiles from an iteration on.
"""
from __future__ import annotations

import statistics

from .training_curves import Curves, read_curves, write_curves

__all__ = ["GRADIENT_PROBE", "read_probe", "write_probe", "summarize_probe", "probe_markdown"]

GRADIENT_PROBE = "gradient_probe.json"


def _is_probe_key(key: str) -> bool:
    name = key.rpartition("/")[2]
    return name.startswith("grad_") or name == "clip_norm"


def read_probe(folder: str) -> Curves | None:
    """The probe's scalars of the run in ``folder`` against iteration (``gradient_probe.json``
    or else ``metrics.json``); None if it has neither."""
    return read_curves(folder, GRADIENT_PROBE, _is_probe_key)


def write_probe(folder: str) -> bool:
    """Write ``folder/gradient_probe.json`` from the run's ``metrics.json``; return whether
    the run logged probe scalars."""
    return write_curves(folder, GRADIENT_PROBE, _is_probe_key)


def summarize_probe(curves: Curves, start: int = 0) -> dict[str, dict[str, float]]:
    """Per key: ``median``, ``p10``, ``p90`` and ``count`` of its values from iteration
    ``start`` on; keys without values there are left out."""
    summary = {}
    for key in sorted(curves):
        values = sorted(v for it, v in curves[key] if it >= start)
        if not values:
            continue
        deciles = (statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1
                   else values * 9)
        summary[key] = {"median": statistics.median(values), "p10": deciles[0],
                        "p90": deciles[-1], "count": len(values)}
    return summary


def probe_markdown(summary: dict[str, dict[str, float]]) -> str:
    """Markdown of ``summarize_probe``: one row per key."""
    lines = ["| scalar | median | 10th-90th percentile | values |", "|---|---|---|---|"]
    lines += [f"| `{key}` | {s['median']:.3g} | {s['p10']:.3g} to {s['p90']:.3g} | "
              f"{s['count']} |" for key, s in summary.items()]
    return "\n".join(lines)
