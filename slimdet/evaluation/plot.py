"""Plot of AP against FLOPs, one point per width."""
from __future__ import annotations

import json

__all__ = ["plot_ap_vs_flops"]


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
