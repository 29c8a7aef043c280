"""Every plot of slimdet: AP against FLOPs per width, S-Net vs I-Net, cost per width, the
adaptive-width load test, training losses per width. Matplotlib is imported on first use,
with the file-only backend."""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..layers import parse_width_key, width_key

__all__ = ["plot_ap_vs_flops", "plot_comparison", "plot_widths", "plot_load_test",
           "plot_training_curves"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_ap_vs_flops(summary_json: str, png_path: str) -> None:
    """Read ``per_width_results.json`` (from ``evaluate_widths``) and save the AP-vs-GFLOPs plot."""
    plt = _pyplot()

    with open(summary_json) as f:
        rows = json.load(f)["rows"]
    fig, ax = plt.subplots(figsize=(5, 4))
    for column in ("box AP", "mask AP", "keypoint AP"):
        points = [(r["GFLOPs"], r[column], r["width"]) for r in rows if column in r]
        if not points:
            continue
        xs, ys, ws = zip(*points)
        ax.plot(xs, ys, "o-", label=column)
        for x, y, w in points:
            ax.annotate(f"{w:g}x", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xlabel("GFLOPs (inference, test image)")
    ax.set_ylabel("AP")
    ax.set_title("Slimmable model: AP vs FLOPs per width")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


def plot_comparison(table: list[dict], png_path: str, curve: Sequence[dict] = (),
                    against: Sequence[dict] = (), label: str = "S-Net") -> None:
    """AP against GFLOPs from ``compare_runs``: one line per family (I-Net, S-Net) and metric,
    error bars one standard deviation over seeds; ``curve`` (``universal_curve``) adds the
    US-Net at every width it evaluated. Where ``table``'s S-Net is a variant, ``label`` names
    it and ``against`` (``compare_variant``) draws the plain S-Net it is paired with."""
    plt = _pyplot()

    metrics = [m for m in ("box AP", "mask AP", "keypoint AP") if m in table[0]]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    gflops = [row["GFLOPs"] for row in table]
    for ax, metric in zip(axes[0], metrics):
        lines = [(gflops, [row[metric]["I-Net"] for row in table], "s--", "I-Net"),
                 (gflops, [row[metric]["S-Net"] for row in table], "o-", label)]
        if against:
            lines.append(([row["S-Net GFLOPs"] for row in against],
                          [row[metric]["S-Net"] for row in against], "^:", "S-Net"))
        for xs, stats, style, name in lines:
            ax.errorbar(xs, [s["mean"] for s in stats], yerr=[s["std"] for s in stats],
                        fmt=style, capsize=3, label=f"{name} (n={stats[0]['n']})")
        if curve:
            stats = [row[metric] for row in curve]
            ax.plot([row["GFLOPs"] for row in curve], [s["mean"] for s in stats], "-",
                    color="tab:green", alpha=0.8, label=f"US-Net, {len(curve)} widths "
                    f"(n={stats[0]['n']})")
        for row in table:
            ax.annotate(f"{row['width']:g}x", (row["GFLOPs"], row[metric]["S-Net"]["mean"]),
                        textcoords="offset points", xytext=(4, -10), fontsize=8)
        ax.set_xlabel("GFLOPs (inference, test image)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Slimmable network vs individually trained networks"
                 + (" and a universally slimmable one" if curve else ""))
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


def plot_widths(result: Mapping[str, Any], path: str,
                ap: Mapping[float, Mapping[str, float]] | None = None) -> None:
    """PNG of latency (slim, stock, exported; bars span the IQR) and GFLOPs per part against
    width, plus AP against width when ``ap`` is given."""
    plt = _pyplot()

    keys = sorted(result["widths"], key=parse_width_key)
    widths = [parse_width_key(k) for k in keys]
    fig, axes = plt.subplots(1, 3 if ap else 2, figsize=(15 if ap else 10, 4))
    for model in ("slim", "stock", "exported"):
        lat = [result["widths"][k]["latency_ms"][model] for k in keys]
        median = [t["median"] for t in lat]
        spread = [[m - t["q1"] for m, t in zip(median, lat)],
                  [t["q3"] - m for m, t in zip(median, lat)]]
        axes[0].errorbar(widths, median, yerr=spread, marker="o", capsize=3, label=model)
    axes[0].set(xlabel="width", ylabel="inference latency (ms, median)",
                title=f"Latency, {'x'.join(map(str, result['input_size']))} on {result['device']}")
    bottom = [0.0] * len(keys)
    for part in ("backbone", "fpn", "rpn", "roi_heads"):
        values = [result["widths"][k]["gflops"][part] for k in keys]
        axes[1].bar(widths, values, width=0.15, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, values)]
    axes[1].set(xlabel="width", ylabel="GFLOPs", title="Inference GFLOPs by part")
    if ap:
        for task in sorted({t for v in ap.values() for t in v}):
            points = sorted((w, v[task]) for w, v in ap.items() if task in v)
            if points:
                axes[2].plot(*zip(*points), marker="o", label=f"{task} AP")
        axes[2].set(xlabel="width", ylabel="AP", title="AP per width")
    for ax in axes:
        ax.set_xticks(widths)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_load_test(rows: list[dict], load_frame: int, budget: float, path: str) -> None:
    """Latency (log scale) and width per frame of the load test, budget and load start marked."""
    plt = _pyplot()
    import matplotlib.ticker

    frames = [int(r["frame"]) for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(frames, [float(r["latency_ms"]) for r in rows], lw=0.8, label="latency (ms)")
    ax.axhline(budget, color="red", ls="--", lw=1, label=f"budget {budget:g} ms")
    ax.axvline(load_frame, color="gray", ls=":", label="CPU load starts")
    ax.set_xlabel("frame")
    ax.set_ylabel("ms (log scale)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    twin = ax.twinx()
    twin.step(frames, [float(r["width"]) for r in rows], where="post", color="green", lw=1.5,
              label="width")
    twin.set_ylabel("width")
    twin.set_ylim(0, 1.1)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize=8)
    ax.set_title("Adaptive width under a latency budget")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _mean_curve(runs: Sequence[Mapping[str, list]], key: str) -> tuple[list, list]:
    """Iterations every run logged ``key`` at, and the mean over the runs there."""
    points = [dict((int(it), v) for it, v in run[key]) for run in runs if key in run]
    common = sorted(set.intersection(*(set(p) for p in points))) if points else []
    return common, [sum(p[it] for p in points) / len(points) for it in common]


def plot_training_curves(slimmable: Sequence[Mapping[str, list]],
                         individual: Mapping[float, Sequence[Mapping[str, list]]],
                         path: str, loss: str = "total_loss") -> None:
    """One panel per width: the S-Nets' ``w<width>/<loss>`` against iteration (mean over
    runs) beside the I-Nets' of that width, log scale; curves as ``read_training_curves``."""
    plt = _pyplot()
    widths = sorted(individual, reverse=True)
    fig, axes = plt.subplots(1, len(widths), figsize=(4 * len(widths), 3.5), squeeze=False,
                             sharey=True)
    for ax, width in zip(axes[0], widths):
        key = f"{width_key(width)}/{loss}"
        for label, runs, style in (("I-Net", individual[width], "--"),
                                   ("S-Net", slimmable, "-")):
            its, values = _mean_curve(runs, key)
            ax.plot(its, values, style, label=f"{label} (n={len(runs)})")
        ax.set(title=f"width {width:g}", xlabel="iteration", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel(f"training {loss} (log scale)")
    fig.suptitle(f"Training {loss} per width: slimmable vs individually trained")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
