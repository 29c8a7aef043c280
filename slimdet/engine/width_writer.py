"""Console lines per width of what the model logs during training.

Detectron2's ``CommonMetricPrinter`` prints losses (slimdet logs them per width, ``w0.25/...``)
but none of the model's other scalars. This writer prints, per width, the medians of the rest
(``fast_rcnn/fg_cls_accuracy``, ``rpn/num_pos_anchors``, the gradient probe, ...), so one can
watch each width learn from the log.
"""
from __future__ import annotations

import logging

from detectron2.utils.events import EventWriter, get_event_storage

from ..evaluation.width_evaluation import COLUMNS
from ..layers import parse_width_key

__all__ = ["WidthMetricsPrinter"]

logger = logging.getLogger(__name__)

# Evaluation results (``w0.25/bbox/AP``, ...) are left to Detectron2's evaluation log.
_EVALUATION_TASKS = {task for _, task, _ in COLUMNS}


def _is_width_label(label: str) -> bool:
    if label == "sampled":
        return True
    try:
        parse_width_key(label)
    except ValueError:
        return False
    return label.startswith("w")


class WidthMetricsPrinter(EventWriter):
    """On every ``write``, one line per width: the median over the last ``window`` values of
    each scalar logged under that width in the last ``window`` iterations, losses and
    evaluation results aside."""

    def __init__(self, window: int = 20):
        self.window = window

    def write(self) -> None:
        storage = get_event_storage()
        recent = storage.iter - self.window
        lines: dict[str, list[str]] = {}
        for key, (_, iteration) in sorted(storage.latest().items()):
            label, sep, name = key.partition("/")
            training = "loss" not in name and name.split("/")[0] not in _EVALUATION_TASKS
            if sep and training and iteration > recent and _is_width_label(label):
                value = storage.history(key).median(self.window)
                lines.setdefault(label, []).append(f"{name}: {value:.4g}")
        for label in sorted(lines, key=lambda k: (k == "sampled", k)):
            logger.info("iter: %d  %s  %s", storage.iter, label, "  ".join(lines[label]))
