"""Config keys of slimdet, added to a Detectron2 ``CfgNode``."""
from __future__ import annotations

from detectron2.config import CfgNode as CN

from .layers.width import width_index

__all__ = ["add_slimmable_config", "validate_slimmable_config", "train_widths", "eval_widths"]


def add_slimmable_config(cfg: CN) -> None:
    """Add ``MODEL.SLIMMABLE`` (widths and whether heads slim too) to ``cfg`` in place."""
    cfg.MODEL.SLIMMABLE = CN()
    # Every width the model can run at; the widest is the full network.
    cfg.MODEL.SLIMMABLE.WIDTHS = [0.25, 0.5, 0.75, 1.0]
    # Widths visited on every training iteration (gradients summed before one optimizer step);
    # empty: all of WIDTHS. A single width trains an individual model with the same code path.
    cfg.MODEL.SLIMMABLE.TRAIN_WIDTHS = []
    # Widths evaluated by the per-width evaluator; empty: all of WIDTHS.
    cfg.MODEL.SLIMMABLE.TEST_WIDTHS = []
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
        unknown = [w for w in s.get(key) if not _listed(widths, w)]
        if unknown:
            raise ValueError(f"MODEL.SLIMMABLE.{key} has widths {unknown} not in "
                             f"MODEL.SLIMMABLE.WIDTHS {widths}")


def _listed(widths: list[float], width: float) -> bool:
    try:
        width_index(widths, width)
    except ValueError:
        return False
    return True


def _resolved(cfg: CN, key: str) -> list[float]:
    validate_slimmable_config(cfg)
    widths = [float(w) for w in cfg.MODEL.SLIMMABLE.WIDTHS]
    chosen = cfg.MODEL.SLIMMABLE.get(key) or widths
    return [widths[width_index(widths, w)] for w in chosen]


def train_widths(cfg: CN) -> list[float]:
    """The widths every training iteration visits: ``TRAIN_WIDTHS``, or all if it is empty."""
    return _resolved(cfg, "TRAIN_WIDTHS")


def eval_widths(cfg: CN) -> list[float]:
    """The widths the evaluator reports: ``TEST_WIDTHS``, or all if it is empty."""
    return _resolved(cfg, "TEST_WIDTHS")
