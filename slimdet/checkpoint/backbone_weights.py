"""A pretrained classifier's ResNet as the backbone weights of a detector."""
from __future__ import annotations

from typing import Any

from torch import nn

from ..layers import get_widths

__all__ = ["backbone_checkpoint", "FPN_BACKBONE_PREFIX"]

FPN_BACKBONE_PREFIX = "backbone.bottom_up."  # the ResNet inside Detectron2's FPN backbone


def backbone_checkpoint(classifier: nn.Module, prefix: str = FPN_BACKBONE_PREFIX) -> dict[str, Any]:
    """A checkpoint for ``MODEL.WEIGHTS`` of a detector: the ResNet weights of a
    ``SlimmableImageClassifier`` (its ``backbone``) under ``prefix`` (``"backbone."`` for a
    detector whose backbone is the ResNet itself), with its widths; without the classifier's
    linear layer and BatchNorm's ``num_batches_tracked`` counters (Detectron2's frozen
    BatchNorm has none)."""
    state = classifier.backbone.state_dict()
    model = {prefix + k: v.detach().clone() for k, v in state.items()
             if not k.startswith("linear.") and not k.endswith("num_batches_tracked")}
    return {"model": model, "widths": list(get_widths(classifier))}
