"""Inplace distillation for image classification, as in US-Nets (Yu & Huang, ICCV 2019): in
every iteration the widest width's detached class distribution is the soft target of the
narrower widths (cross entropy with soft labels, ``distill_cls``).

In the reference training loop a width with a soft target learns from it alone; here a
student's ground-truth ``loss_cls`` is weighted by ``MODEL.SLIMMABLE.DISTILL.GT_CLS_WEIGHT``
(0: replaced, the reference; 1: beside it). The R-CNN terms' weights (``RPN_CLS``, ...) do not
apply to a classifier. The widest width learns from the ground truth only.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode
from torch import nn

from ..modeling.classifier import SlimmableImageClassifier
from .distillation import InplaceDistillation, _unwrap

__all__ = ["SoftLabelDistillation", "classifier_distillation_from_config"]


class SoftLabelDistillation(InplaceDistillation):
    """``InplaceDistillation``'s teacher-student cycle for a ``SlimmableImageClassifier``: the
    captured prediction is the classifier's logits.

    Args:
        start_iter: the first training iteration that distils.
        gt_cls_weight: weight of a student's ground-truth cross entropy (``loss_cls``).
    """

    ground_truth_cls = ("loss_cls",)

    def __init__(self, start_iter: int = 0, gt_cls_weight: float = 0.0):
        super().__init__({}, start_iter, gt_cls_weight)

    @staticmethod
    def check_model(model: nn.Module) -> None:
        """Raise ``ValueError`` unless ``model`` is a ``SlimmableImageClassifier``."""
        if not isinstance(_unwrap(model), SlimmableImageClassifier):
            raise ValueError("soft-label distillation needs a SlimmableImageClassifier; this "
                             f"model is {type(_unwrap(model)).__name__}")

    def _hooks(self, net: nn.Module) -> list:
        return [net.backbone.register_forward_hook(
            self._keep("logits", lambda args, out: out["linear"]))]

    def student_losses(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """``distill_cls``: cross entropy of the last captured logits against the teacher's
        class distribution, mean over the images."""
        if self.teacher is None:
            raise RuntimeError("no teacher: the widest width runs first and keep_teacher()")
        logits, self._seen = self._seen["logits"], {}
        target = F.softmax(self.teacher["logits"], dim=1)
        return {"distill_cls": -(target * F.log_softmax(logits, dim=1)).sum(1).mean()}


def classifier_distillation_from_config(cfg: CfgNode) -> Optional[SoftLabelDistillation]:
    """``MODEL.SLIMMABLE.DISTILL`` as a ``SoftLabelDistillation``, or None if it is off."""
    d = cfg.MODEL.SLIMMABLE.DISTILL
    return SoftLabelDistillation(d.START_ITER, d.GT_CLS_WEIGHT) if d.ENABLED else None
