"""Tables and plots of a ``benchmark_widths`` result, and per-width AP from evaluation JSON."""
from __future__ import annotations

import json
from typing import Any, Mapping

from tabulate import tabulate

from ..layers import parse_width_key

__all__ = ["TARGETS", "load_eval_ap", "format_tables"]

_TASKS = ("bbox", "segm", "keypoints")
# slimdet's cost targets: the largest ratios a slimmable model may cost against the stock
# model of each width (the benchmark prints whether each is met).
TARGETS = {"slim/stock latency, worst width": 1.05, "exported/stock latency, worst width": 1.02,
           "training: all widths / sum of single widths": 1.10,
           "training peak memory: all widths / widest alone": 1.15}


def load_eval_ap(path: str) -> dict[float, dict[str, float]]:
    """Width -> {task: AP} from a JSON mapping width keys ("0.25" or "w0.25") to Detectron2
    results ({"bbox": {"AP": ...}, ...}); also reads slimdet's ``per_width_results.json``,
    which holds that mapping under "results"."""
    with open(path) as f:
        data = json.load(f)
    data = data.get("results", data)
    out = {}
    for key, results in data.items():
        if not isinstance(results, Mapping):
            continue
        aps = {t: float(results[t]["AP"]) for t in _TASKS
               if isinstance(results.get(t), Mapping) and "AP" in results[t]}
        if aps:
            out[parse_width_key(key)] = aps
    if not out:
        raise ValueError(f"{path}: no per-width AP found (expected {{'w0.25': {{'bbox': "
                         "{'AP': ...}}, ...}})")
    return out


def _ms(t: Mapping[str, float]) -> str:
    return f"{t['median']:.1f} [{t['q1']:.1f}-{t['q3']:.1f}]"


def format_tables(result: Mapping[str, Any]) -> str:
    """Inference table per width, training table and the summary, as text."""
    summary = result["summary"]
    rows = []
    for key, r in sorted(result["widths"].items(), key=lambda kv: parse_width_key(kv[0])):
        g, lat, mem, work = r["gflops"], r["latency_ms"], r["peak_memory_mb"], r["work"]
        rows.append([
            key, f"{r['params_m']:.1f}",
            "/".join(f"{g[p]:.2f}" for p in ("backbone", "fpn", "rpn", "roi_heads")),
            f"{g['total']:.2f}",
            f"{summary['backbone_fpn_gflops_ratio'][key]:.3f} ({summary['ideal_ratio'][key]:.3f})",
            _ms(lat["slim"]), _ms(lat["stock"]), _ms(lat["exported"]),
            f"{r['latency_ratio']['slim/stock']:.3f}",
            f"{r['latency_ratio']['exported/stock']:.3f}",
            "/".join(f"{summary[s][key]:.2f}x"
                     for s in ("speedup_vs_widest", "stock_speedup_vs_widest")),
            "/".join(f"{mem[k]:.0f}" for k in ("slim", "stock", "exported")),
            "/".join(f"{work[k]['proposals']},{work[k]['box_candidates']},{work[k]['detections']}"
                     for k in ("slim", "stock", "exported")),
        ])
    text = tabulate(rows, tablefmt="github", headers=[
        "width", "params M", "GFLOPs bb/fpn/rpn/roi", "GFLOPs", "bb+fpn vs widest (w^2)",
        "slim ms [IQR]", "stock ms [IQR]", "exported ms [IQR]", "slim/stock", "exp/stock",
        "speedup slim/stock", "peak MiB slim/stock/exp", "props,cands,dets slim/stock/exp"])
    train = result.get("train")
    if train:
        lat, mem = train["latency_ms"], train["peak_memory_mb"]
        train_rows = [[k, _ms(lat[k]), f"{mem[k]:.0f}"] for k in lat]
        train_rows.append(["sum of single widths", f"{train['sum_single_ms']:.1f}", ""])
        text += (f"\n\nTraining iteration (zero grads, forward/backward per width, step), "
                 f"{result['train_images']} image(s) with {train['roi_positives_per_image']} "
                 f"ROI positives each, {result['train_repeats']} repeats:\n")
        text += tabulate(train_rows, headers=["widths", "ms [IQR]", "peak MiB"], tablefmt="github")
    text += "\n\n" + "\n".join(_target_lines(result))
    load = ", ".join(f"{a:.2f}" for a in result["load_average_start"])
    text += (f"\n\n{result['device']}, {result['threads']} threads, input "
             f"{'x'.join(map(str, result['input_size']))}, {result['repeats']} repeats after "
             f"{result['warmup']} warm-up; load average at start {load}, at end "
             f"{', '.join(f'{a:.2f}' for a in result['load_average_end'])}")
    return text


def _target_lines(result: Mapping[str, Any]) -> list[str]:
    summary, train = result["summary"], result.get("train")
    checks = [(f"{ratio} latency, worst width", summary["max_latency_ratio"][ratio],
               f" (ratio of minima {summary['max_latency_ratio_of_minima'][ratio]:.3f})")
              for ratio in ("slim/stock", "exported/stock")]
    if train:
        checks += [("training: all widths / sum of single widths", train["time_ratio"], ""),
                   ("training peak memory: all widths / widest alone",
                    train["memory_ratio_vs_widest"], "")]
    return [f"{name}: {value:.3f}{note}, target <= {TARGETS[name]:.2f}: "
            f"{'met' if value <= TARGETS[name] else 'NOT met'}" for name, value, note in checks]
