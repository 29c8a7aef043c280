"""Inplace distillation for R-CNN: in every iteration the widest width's detached predictions are
soft targets for the narrower widths (Yu & Huang, ICCV 2019, carried over to detection).

What is distilled, and why it fits a detector:

* **RPN objectness and anchor deltas.** Anchors depend on the image and the anchor generator
  only, so at every width the RPN predicts for the same anchors: each anchor's objectness is
  pulled towards the teacher's (binary KL divergence, mean over anchors), and, off by default,
  its deltas towards the teacher's (smooth L1) where the teacher sees an object (objectness
  above 0.5), weighted by it.
* **ROI class logits and box deltas on the teacher's proposals.** The student's box head is run
  once more on the regions the teacher's ROI heads sampled, so both classify the same boxes:
  KL divergence of the class distributions, and smooth L1 of the deltas of the class the
  teacher predicts, on the proposals it calls foreground.
* **ROI box deltas bounded by the teacher** (``roi_loc_mode="bounded"``, Chen et al., NeurIPS
  2017, "Learning Efficient Object Detection Models with Knowledge Distillation"): instead of
  regressing towards the teacher's deltas, which are wrong on many regions while it learns, the
  student's squared error to the ground-truth deltas on the teacher's foreground regions
  counts only where it exceeds the teacher's error (plus a margin): the teacher is an upper
  bound on the error, not a target.
* **Scale.** The box terms are normalised as the ground-truth losses they mirror: the RPN's by
  the anchors the RPN samples per batch, the ROI's by the sampled regions. Normalised by the
  teacher's confident anchors instead, a teacher sure of few anchors put all the weight on them
  and 4-width training on the clutter benchmark diverged within 120 iterations.
* **FPN outputs** against the teacher's leading channels (mean squared error; weight 0 by
  default, since features of different widths need not agree channel by channel).
* **Heads out of reach** (``train_heads=False``): the students' RPN and ROI terms are computed
  with the RPN head's, box head's and box predictor's weights detached, so they train the
  student's features (backbone and FPN) to be read by the heads as the teacher's are, and do
  not move the predictors every width shares. With shared predictors, agreeing with the
  teacher has an easy way out: predictions that depend less on the features, the teacher's
  included.

Every student keeps its ground-truth losses (its own proposals need them), its classification
losses weighted by ``gt_cls_weight`` (0: the soft targets replace the ground truth's, as in the
reference training loop, where a width with a soft target learns from it alone); the widest
width learns from the ground truth only; every teacher tensor is detached, so no distillation
gradient reaches the teacher. The losses are logged per width (``w0.5/distill_roi_cls``, ...).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode
from detectron2.modeling import GeneralizedRCNN, StandardROIHeads
from detectron2.modeling.proposal_generator import RPN
from detectron2.structures import Instances
from torch import nn
from torch.func import functional_call
from torch.nn.parallel import DistributedDataParallel

__all__ = ["InplaceDistillation", "distillation_from_config", "GROUND_TRUTH_CLS",
           "ROI_LOC_MODES", "teacher_bounded_l2"]

_LOSSES = ("rpn_cls", "rpn_loc", "roi_cls", "roi_loc", "fpn")
ROI_LOC_MODES = ("mimic", "bounded")
# Detectron2's ground-truth classification losses that the soft targets rpn_cls, roi_cls mirror.
GROUND_TRUTH_CLS = ("loss_rpn_cls", "loss_cls")


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


class InplaceDistillation:
    """Captures what a forward predicts (by hooks on the backbone, RPN head, box pooler and box
    predictor of a ``GeneralizedRCNN`` with an ``RPN`` and ``StandardROIHeads``), keeps the
    widest width's as the teacher and turns a student's into distillation losses.

    Args:
        weights: loss weight per target, keys ``rpn_cls``, ``rpn_loc``, ``roi_cls``,
            ``roi_loc``, ``fpn``; a target of weight 0 is not computed.
        start_iter: the first training iteration that distils (``active``).
        gt_cls_weight: weight of a student's ground-truth classification losses
            (``GROUND_TRUTH_CLS``), which the ``rpn_cls`` and ``roi_cls`` targets mirror.
        roi_loc_mode, bound_margin: ``"mimic"`` (smooth L1 towards the teacher's deltas) or
            ``"bounded"`` (the teacher's error as an upper bound, with ``bound_margin``).
        train_heads: whether the RPN and ROI terms' gradients reach the RPN head, box head and
            box predictor (False: only the features they read).
    """

    def __init__(self, weights: dict[str, float], start_iter: int = 0,
                 gt_cls_weight: float = 1.0, roi_loc_mode: str = "mimic",
                 bound_margin: float = 0.0, train_heads: bool = True):
        unknown = set(weights) - set(_LOSSES)
        if unknown:
            raise ValueError(f"unknown distillation losses {sorted(unknown)}; known: {_LOSSES}")
        if gt_cls_weight < 0:
            raise ValueError(f"the ground-truth classification weight must be >= 0, got "
                             f"{gt_cls_weight}")
        if roi_loc_mode not in ROI_LOC_MODES:
            raise ValueError(f"unknown ROI box distillation {roi_loc_mode!r}; known: "
                             f"{ROI_LOC_MODES}")
        self.weights = {k: float(weights.get(k, 0.0)) for k in _LOSSES}
        self.start_iter = start_iter
        self.gt_cls_weight = float(gt_cls_weight)
        self.roi_loc_mode, self.bound_margin = roi_loc_mode, float(bound_margin)
        self.train_heads = train_heads
        self.teacher: Optional[dict] = None
        self._seen: dict = {}

    def active(self, iteration: int) -> bool:
        """Whether training ``iteration`` distils."""
        return iteration >= self.start_iter

    @staticmethod
    def check_model(model: nn.Module) -> None:
        """Raise ``ValueError`` unless ``model`` has the parts the targets are taken from."""
        net = _unwrap(model)
        ok = (isinstance(net, GeneralizedRCNN) and isinstance(net.proposal_generator, RPN)
              and isinstance(net.roi_heads, StandardROIHeads))
        if not ok:
            raise ValueError(
                f"inplace distillation needs a GeneralizedRCNN with an RPN and StandardROIHeads "
                f"(box head and predictor); this model is {type(net).__name__} with "
                f"{type(getattr(net, 'roi_heads', None)).__name__}: set "
                "MODEL.SLIMMABLE.DISTILL.ENABLED False")

    def _keep(self, name: str, pick):
        """A forward (pre-)hook that records ``pick(*hook args)`` as ``name``, the first call of
        a forward only; hooks return None."""
        def hook(module, *args) -> None:
            self._seen.setdefault(name, pick(*args))
        return hook

    @contextmanager
    def capturing(self, model: nn.Module) -> Iterator[None]:
        """Record, while the block runs, what ``_hooks`` captures of ``model``'s forwards."""
        handles = self._hooks(_unwrap(model))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _hooks(self, net: nn.Module) -> list:
        """The features, RPN outputs, sampled proposal boxes and box predictions."""
        keep = self._keep
        return [
            net.backbone.register_forward_hook(keep("features", lambda args, out: out)),
            net.proposal_generator.rpn_head.register_forward_hook(
                keep("rpn", lambda args, out: out)),
            net.roi_heads.box_pooler.register_forward_pre_hook(
                keep("boxes", lambda args: args[1])),
            net.roi_heads.box_predictor.register_forward_hook(keep("roi", lambda args, out: out)),
            # in training, ROI heads return the sampled proposals with their matched ground truth
            net.roi_heads.register_forward_hook(keep("sampled", lambda args, out: out[0])),
        ]

    def keep_teacher(self) -> None:
        """The last captured forward (the widest width's) becomes the detached teacher."""
        def detach(value):
            if isinstance(value, torch.Tensor):
                return value.detach()
            if isinstance(value, dict):
                return {k: detach(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(detach(v) for v in value)
            return value  # Boxes: built from detached proposals

        self.teacher = detach(self._seen)
        self._seen = {}

    ground_truth_cls = GROUND_TRUTH_CLS

    def weigh_ground_truth(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A student's ground-truth ``losses`` with the classification terms
        (``ground_truth_cls``) multiplied by ``gt_cls_weight``; the others as they are."""
        if self.gt_cls_weight == 1.0:
            return losses
        return {k: v * self.gt_cls_weight if k in self.ground_truth_cls else v
                for k, v in losses.items()}

    def student_losses(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Weighted distillation losses of the last captured forward against the teacher."""
        if self.teacher is None:
            raise RuntimeError("no teacher: the widest width runs first and keep_teacher()")
        student, teacher = self._seen, self.teacher
        losses = {}
        w = self.weights
        if w["rpn_cls"] or w["rpn_loc"]:
            s_logits, s_deltas = self._student_rpn(model, student)
            t_logits, t_deltas = teacher["rpn"]
            if w["rpn_cls"]:
                losses["distill_rpn_cls"] = w["rpn_cls"] * binary_kl(
                    torch.cat([x.flatten() for x in s_logits]),
                    torch.cat([x.flatten() for x in t_logits]))
            if w["rpn_loc"]:
                anchors = _unwrap(model).proposal_generator.batch_size_per_image * len(t_logits[0])
                losses["distill_rpn_loc"] = w["rpn_loc"] * _objectness_weighted_l1(
                    s_deltas, t_deltas, t_logits) / anchors
        if w["roi_cls"] or w["roi_loc"]:
            scores, deltas = self._student_roi_on_teacher_boxes(model, student["features"])
            t_scores, t_deltas = teacher["roi"]
            if w["roi_cls"]:
                losses["distill_roi_cls"] = w["roi_cls"] * categorical_kl(scores, t_scores)
            if w["roi_loc"] and self.roi_loc_mode == "bounded":
                losses["distill_roi_loc"] = w["roi_loc"] * teacher_bounded_l2(
                    deltas, t_deltas, self.teacher["sampled"],
                    _unwrap(model).roi_heads.box_predictor.box2box_transform,
                    t_scores.shape[1] - 1, self.bound_margin)
            elif w["roi_loc"]:
                losses["distill_roi_loc"] = w["roi_loc"] * _predicted_class_l1(
                    deltas, t_deltas, t_scores)
        if w["fpn"]:
            s_feat, t_feat = student["features"], teacher["features"]
            losses["distill_fpn"] = w["fpn"] * sum(
                F.mse_loss(s_feat[k], t_feat[k][:, : s_feat[k].shape[1]]) for k in s_feat
            ) / len(s_feat)
        self._seen = {}
        return losses

    def _head(self, module: nn.Module, *args):
        """``module(*args)``, with its weights detached unless ``train_heads``."""
        if self.train_heads:
            return module(*args)
        return functional_call(module, {k: v.detach() for k, v in module.named_parameters()},
                               args)

    def _student_rpn(self, model: nn.Module, student: dict):
        """The student's RPN objectness logits and deltas: as its forward computed them, or
        recomputed from its features through the detached RPN head."""
        if self.train_heads:
            return student["rpn"]
        rpn = _unwrap(model).proposal_generator
        return self._head(rpn.rpn_head, [student["features"][f] for f in rpn.in_features])

    def _student_roi_on_teacher_boxes(self, model: nn.Module,
                                      features: dict[str, torch.Tensor]):
        heads = _unwrap(model).roi_heads
        pooled = heads.box_pooler([features[f] for f in heads.box_in_features],
                                  self.teacher["boxes"])
        return self._head(heads.box_predictor, self._head(heads.box_head, pooled))


def binary_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean KL divergence of Bernoulli(sigmoid(student)) from Bernoulli(sigmoid(teacher));
    zero exactly when the logits agree."""
    p = teacher_logits.sigmoid()
    return (F.binary_cross_entropy_with_logits(student_logits, p)
            - F.binary_cross_entropy_with_logits(teacher_logits, p))


def categorical_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of KL(softmax(teacher) || softmax(student))."""
    if not len(student_logits):
        return student_logits.sum() * 0.0
    return F.kl_div(F.log_softmax(student_logits, 1), F.log_softmax(teacher_logits, 1),
                    log_target=True, reduction="batchmean")


def _objectness_weighted_l1(student: list[torch.Tensor], teacher: list[torch.Tensor],
                            teacher_logits: list[torch.Tensor]) -> torch.Tensor:
    """Sum of smooth L1 between anchor deltas over anchors whose teacher objectness exceeds 0.5,
    weighted by it. Deltas are (N, A*4, H, W) and logits (N, A, H, W) per level."""
    total = student[0].sum() * 0.0
    for s, t, logits in zip(student, teacher, teacher_logits):
        n, a, h, w = logits.shape
        p = logits.sigmoid().reshape(n, a, 1, h, w)
        p = torch.where(p > 0.5, p, torch.zeros_like(p))
        diff = F.smooth_l1_loss(s.reshape(n, a, 4, h, w), t.reshape(n, a, 4, h, w), beta=0.0,
                                reduction="none")
        total = total + (diff * p).sum()
    return total


def _predicted_class_l1(deltas: torch.Tensor, t_deltas: torch.Tensor,
                        t_scores: torch.Tensor) -> torch.Tensor:
    """Smooth L1 between the box deltas of the class the teacher predicts, on the regions it
    calls foreground, normalised by the number of regions (as Detectron2's box loss, which
    regresses the ground-truth class's deltas only: the other classes' deltas are untrained)."""
    num_classes = t_scores.shape[1] - 1
    foreground = torch.nonzero(t_scores.argmax(1) < num_classes).squeeze(1)
    if deltas.shape[1] > 4:  # class-specific regression: the predicted class's four deltas
        cls = t_scores[foreground, :num_classes].argmax(1)
        cols = (cls[:, None] * 4 + torch.arange(4, device=cls.device)).reshape(-1)
        rows = foreground.repeat_interleave(4)
        student, teacher = deltas[rows, cols], t_deltas[rows, cols]
    else:
        student, teacher = deltas[foreground], t_deltas[foreground]
    return F.smooth_l1_loss(student, teacher, beta=0.0, reduction="sum") / max(1, len(t_scores))


def teacher_bounded_l2(deltas: torch.Tensor, t_deltas: torch.Tensor, sampled: list[Instances],
                       box2box_transform, num_classes: int, margin: float = 0.0) -> torch.Tensor:
    """Chen et al.'s bounded regression loss on the teacher's sampled regions (``sampled``, in
    the order of the rows of ``deltas``): on the foreground ones (ground-truth class below
    ``num_classes``), the student's squared error to the ground-truth deltas of that class
    where it is above the teacher's error minus ``margin``, else 0; normalised by the number
    of regions, as Detectron2's box loss."""
    gt_classes = torch.cat([p.gt_classes for p in sampled])
    foreground = torch.nonzero((gt_classes >= 0) & (gt_classes < num_classes)).squeeze(1)
    if not len(foreground):
        return deltas.sum() * 0.0
    proposals = torch.cat([p.proposal_boxes.tensor for p in sampled])[foreground]
    gt_boxes = torch.cat([p.gt_boxes.tensor for p in sampled])[foreground]
    target = box2box_transform.get_deltas(proposals, gt_boxes)
    if deltas.shape[1] > 4:  # class-specific regression: the ground-truth class's deltas
        cols = gt_classes[foreground, None] * 4 + torch.arange(4, device=deltas.device)
        rows = foreground[:, None].expand_as(cols)
        student, teacher = deltas[rows, cols], t_deltas[rows, cols]
    else:
        student, teacher = deltas[foreground], t_deltas[foreground]
    error = ((student - target) ** 2).sum(1)
    teacher_error = ((teacher - target) ** 2).sum(1)
    bounded = torch.where(error + margin > teacher_error, error, torch.zeros_like(error))
    return bounded.sum() / max(1, len(gt_classes))


def distillation_from_config(cfg: CfgNode) -> Optional[InplaceDistillation]:
    """``MODEL.SLIMMABLE.DISTILL`` as an ``InplaceDistillation``, or None if it is off."""
    d = cfg.MODEL.SLIMMABLE.DISTILL
    if not d.ENABLED:
        return None
    return InplaceDistillation({k: d[k.upper()] for k in _LOSSES}, d.START_ITER,
                               d.GT_CLS_WEIGHT, d.ROI_LOC_MODE, d.BOUND_MARGIN, d.TRAIN_HEADS)
