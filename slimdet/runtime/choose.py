"""Pick the widest width whose measured cost meets every given constraint."""
from __future__ import annotations

from typing import Optional

from .profile import WidthProfile

__all__ = ["choose_width"]


def choose_width(profile: WidthProfile, latency_ms: Optional[float] = None,
                 memory_mb: Optional[float] = None, gflops: Optional[float] = None, *,
                 latency_statistic: str = "p90") -> float:
    """Widest width of ``profile`` within every constraint given (``None``: no constraint).

    Latency is compared by ``latency_statistic`` of the profiled calls, by default their 90th
    percentile: the width then meets the budget on about nine calls in ten, not only on half.
    Raises ``ValueError`` with the narrowest width's figures when no width fits.
    """
    limits = {"latency_ms": latency_ms, "memory_mb": memory_mb, "gflops": gflops}
    for name, limit in limits.items():
        if limit is not None and not limit > 0:
            raise ValueError(f"{name} must be positive, got {limit}")

    def figures(width: float) -> dict[str, float]:
        row = profile.widths[width]
        return {"latency_ms": profile.latency_ms(width, latency_statistic),
                "memory_mb": row["peak_memory_mb"], "gflops": row["gflops"]}

    widths = sorted(profile.widths)
    for width in reversed(widths):
        cost = figures(width)
        if all(limit is None or cost[name] <= limit for name, limit in limits.items()):
            return width
    narrowest, cost = widths[0], figures(widths[0])
    missed = [f"{name} {cost[name]:.4g} > {limit:g}" + (f" ({latency_statistic})"
                                                        if name == "latency_ms" else "")
              for name, limit in limits.items() if limit is not None and cost[name] > limit]
    raise ValueError(f"no width meets the constraints: even the narrowest width {narrowest:g} "
                     f"has {', '.join(missed)}")
