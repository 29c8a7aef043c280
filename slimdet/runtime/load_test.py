"""The adaptive-width load test's numbers: frames read from ``tools/predict.py``'s CSV, and
their summary before and after a CPU load starts (share over budget, widths, reaction)."""
from __future__ import annotations

import csv
import os

__all__ = ["load_test_rows", "summarize_load_test"]


def load_test_rows(path: str) -> list[dict]:
    """The frames ``tools/predict.py`` has written to its CSV so far (none if no file yet)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [r for r in csv.DictReader(f) if r.get("detections")]


def summarize_load_test(rows: list[dict], load_frame: int, budget: float) -> dict:
    """Frames before and after the load started: share over budget, widths, reaction."""
    def part(rs: list[dict]) -> dict:
        widths = [float(r["width"]) for r in rs]
        return {"frames": len(rs),
                "over_budget_share": sum(int(r["over_budget"]) for r in rs) / max(1, len(rs)),
                "mean_latency_ms": sum(float(r["latency_ms"]) for r in rs) / max(1, len(rs)),
                "frames_per_width": {f"{w:g}": widths.count(w) for w in sorted(set(widths))},
                "switches": sum(a != b for a, b in zip(widths, widths[1:]))}

    before, after = rows[:load_frame], rows[load_frame:]
    start_width = float(before[-1]["width"]) if before else None
    reaction = next((i for i, r in enumerate(after) if float(r["width"]) < start_width), None)
    result = {"budget_ms": budget, "load_frame": load_frame, "before": part(before),
              "after": part(after), "reaction_frames": reaction}
    if reaction is not None:
        result["reaction_s"] = float(after[reaction]["time_s"]) - float(after[0]["time_s"])
        result["after_reaction"] = part(after[reaction:])
    return result
