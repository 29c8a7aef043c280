"""Plot of AP against FLOPs, one point per width."""
from __future__ import annotations

import json
from typing import Sequence

__all__ = ["plot_ap_vs_flops", "plot_comparison"]


def plot_ap_vs_flops(summary_json: str, png_path: str) -> None:
    """Read ``per_width_results.json`` (from ``evaluate_widths``) and save the AP-vs-GFLOPs plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def plot_comparison(table: list[dict], png_path: str, curve: Sequence[dict] = ()) -> None:
    """AP against GFLOPs from ``compare_runs``: one line per family (I-Net, S-Net) and metric,
    error bars one standard deviation over seeds; ``curve`` (``universal_curve``) adds the
    US-Net at every width it evaluated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("box AP", "mask AP", "keypoint AP") if m in table[0]]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    gflops = [row["GFLOPs"] for row in table]
    for ax, metric in zip(axes[0], metrics):
        for family, style in (("I-Net", "s--"), ("S-Net", "o-")):
            stats = [row[metric][family] for row in table]
            ax.errorbar(gflops, [s["mean"] for s in stats], yerr=[s["std"] for s in stats],
                        fmt=style, capsize=3, label=f"{family} (n={stats[0]['n']})")
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
