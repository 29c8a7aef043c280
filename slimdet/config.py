"""Config keys of slimdet, added to a Detectron2 ``CfgNode``."""
from __future__ import annotations

from detectron2.config import CfgNode as CN

__all__ = ["add_slimmable_config", "validate_slimmable_config"]


def add_slimmable_config(cfg: CN) -> None:
    """Add ``MODEL.SLIMMABLE`` (widths and whether heads slim too) to ``cfg`` in place."""
    cfg.MODEL.SLIMMABLE = CN()
    # Every width the model can run at; the widest is the full network.
    cfg.MODEL.SLIMMABLE.WIDTHS = [0.25, 0.5, 0.75, 1.0]
    # Widths visited on every training iteration (gradients summed before one optimizer step).
    # A single width trains an individual model with the same code path.
    cfg.MODEL.SLIMMABLE.TRAIN_WIDTHS = [0.25, 0.5, 0.75, 1.0]
    # Widths evaluated by the per-width evaluator.
    cfg.MODEL.SLIMMABLE.TEST_WIDTHS = [0.25, 0.5, 0.75, 1.0]
    # Also scale the ROI heads' hidden dims (box FC_DIM/CONV_DIM, mask CONV_DIM, keypoint
    # CONV_DIMS) with the width. Backbone, FPN and RPN head always slim.
    cfg.MODEL.SLIMMABLE.SLIM_HEADS = False


def validate_slimmable_config(cfg: CN) -> None:
    """Raise ``ValueError`` naming the problem if the width settings are inconsistent."""
    s = cfg.MODEL.SLIMMABLE
    widths = list(s.WIDTHS)
    if not widths or any(not 0 < w <= 1 for w in widths) or len(set(widths)) != len(widths):
        raise ValueError(f"MODEL.SLIMMABLE.WIDTHS must be distinct values in (0, 1], got {widths}")
    for key in ("TRAIN_WIDTHS", "TEST_WIDTHS"):
        unknown = [w for w in s.get(key) if w not in widths]
        if unknown:
            raise ValueError(f"MODEL.SLIMMABLE.{key} has widths {unknown} not in "
                             f"MODEL.SLIMMABLE.WIDTHS {widths}")
