"""Hold a latency budget with a slimmable model: ``slimdet_lite.LatencyController`` (the policy,
shared with exported models) switching the model's width."""
from __future__ import annotations

from typing import Any, Mapping

from slimdet_lite.controller import LatencyController, Step
from torch import nn

from ..layers import get_widths, set_width

__all__ = ["WidthController", "Step"]


class WidthController(LatencyController):
    """Runs ``model`` within ``latency_budget_ms`` per call by switching its width; the
    controller owns the model's width while in use. ``reference_ms`` holds the unloaded
    latency of every width; the keywords are ``LatencyController``'s."""

    def __init__(self, model: nn.Module, latency_budget_ms: float,
                 reference_ms: Mapping[float, float], **kwargs: Any):
        self.model = model
        super().__init__(get_widths(model), latency_budget_ms, reference_ms,
                         on_switch=lambda width: set_width(model, width), **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``model(*args, **kwargs)`` at the chosen width, timed and observed."""
        return self.run(lambda: self.model(*args, **kwargs))
