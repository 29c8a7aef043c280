"""Config keys of slimdet, added to a Detectron2 ``CfgNode``."""
from __future__ import annotations

import math

from detectron2.config import CfgNode as CN

from .layers.switchable_norm import DETECTRON2_GN_GROUPS
from .layers.width import width_in_range, width_index
from .solver.gradient_clipping import width_clip_threshold

__all__ = ["add_slimmable_config", "validate_slimmable_config", "train_widths", "eval_widths",
           "universal_range", "resolve_width", "width_quantum"]


def add_slimmable_config(cfg: CN) -> None:
    """Add ``MODEL.SLIMMABLE`` (widths, and whether the FPN and the heads slim too),
    ``MODEL.CLASSIFIER`` (backbone pretraining), ``SOLVER.WEIGHT_AVERAGE`` and
    ``SOLVER.CLIP_GRADIENTS.PERCENTILE`` to ``cfg`` in place."""
    # Image classification (META_ARCHITECTURE "SlimmableImageClassifier", for pretraining
    # backbones): the classes of the linear layer after the ResNet's global average pooling.
    cfg.MODEL.CLASSIFIER = CN()
    cfg.MODEL.CLASSIFIER.NUM_CLASSES = 1000
    # An exponential moving average of the weights from START_ITER on becomes the model after
    # the last iteration (slimdet.engine.WeightAverage); DECAY 0: off.
    cfg.SOLVER.WEIGHT_AVERAGE = CN()
    cfg.SOLVER.WEIGHT_AVERAGE.DECAY = 0.0
    cfg.SOLVER.WEIGHT_AVERAGE.START_ITER = 0
    # SOLVER.CLIP_GRADIENTS.CLIP_TYPE "per_width_percentile": each width's gradient is clipped
    # at this percentile of the norms that width's gradient had so far (AutoClip), a threshold
    # without units (CLIP_VALUE is not read).
    cfg.SOLVER.CLIP_GRADIENTS.PERCENTILE = 50.0
    cfg.MODEL.SLIMMABLE = CN()
    # Every width the model can run at; the widest is the full network.
    cfg.MODEL.SLIMMABLE.WIDTHS = [0.25, 0.5, 0.75, 1.0]
    # Widths visited on every training iteration (gradients summed before one optimizer step);
    # empty: all of WIDTHS. A single width trains an individual model with the same code path.
    # A universal model trains these widths instead of following the sandwich rule.
    cfg.MODEL.SLIMMABLE.TRAIN_WIDTHS = []
    # Widths evaluated by the per-width evaluator; empty: all of WIDTHS.
    cfg.MODEL.SLIMMABLE.TEST_WIDTHS = []
    # Scale FPN.OUT_CHANNELS with the width, and with it the RPN head (and RetinaNet's head),
    # which take the FPN's channels. False is the paper's setting: only the backbone slims and
    # the FPN's lateral convs read the leading channels of each backbone output.
    cfg.MODEL.SLIMMABLE.SLIM_FPN = True
    # Also scale the ROI heads' hidden dims (box FC_DIM/CONV_DIM, mask CONV_DIM, keypoint
    # CONV_DIMS) with the width. The backbone always slims.
    cfg.MODEL.SLIMMABLE.SLIM_HEADS = False
    # Universally slimmable (Yu & Huang, ICCV 2019): the model runs at any width between
    # min(WIDTHS) and max(WIDTHS) = 1.0, with norms shared and sliced to the width; WIDTHS are
    # the widths listed by default (profiles, plots), TEST_WIDTHS may be any in the range, and
    # training follows the sandwich rule.
    cfg.MODEL.SLIMMABLE.UNIVERSAL = False
    # Universal training: widths per iteration, the widest, the narrowest and the rest drawn
    # uniformly between them, per (SEED, iteration).
    cfg.MODEL.SLIMMABLE.SANDWICH_WIDTHS = 4
    # Universal GroupNorm/BatchNorm affine parameters: "per_width": shared plus offsets of each
    # listed width, interpolated between them, so each width can re-scale its layers as a
    # switchable norm does (slimdet.layers.sliced_norm; it beat "shared" at every width in both
    # seeds measured, docs/results.md), or "shared" by every width (US-Nets). Read by universal
    # models only: a model of listed widths has a norm per width.
    cfg.MODEL.SLIMMABLE.UNIVERSAL_AFFINE = "per_width"
    # Universal BatchNorm: training batches per width for calibrating its statistics before
    # evaluation (slimdet.calibrate_norms).
    cfg.MODEL.SLIMMABLE.CALIBRATION_BATCHES = 20
    # How the widths' losses of one iteration combine into what the optimizer minimises: "sum"
    # (the paper's and the official code's) or "mean" (the sum divided by the widths visited,
    # so the step of the shared weights is about one width's).
    cfg.MODEL.SLIMMABLE.LOSS_REDUCTION = "sum"
    # Every this many iterations, log per width the L2 norm of the gradient it adds
    # (wX/grad_norm), its cosine with the widest width's (wX/grad_cos_widest) and the norm of
    # the summed gradient (grad_norm); 0: never.
    cfg.MODEL.SLIMMABLE.GRAD_PROBE_PERIOD = 0
    # Inplace distillation: the widest width's detached predictions teach the other widths of
    # the iteration (slimdet.engine.distillation); a loss of weight 0 is left out.
    cfg.MODEL.SLIMMABLE.DISTILL = CN()
    cfg.MODEL.SLIMMABLE.DISTILL.ENABLED = False
    cfg.MODEL.SLIMMABLE.DISTILL.RPN_CLS = 1.0
    cfg.MODEL.SLIMMABLE.DISTILL.RPN_LOC = 0.0  # rivals the ground truth: docs/results.md
    cfg.MODEL.SLIMMABLE.DISTILL.ROI_CLS = 1.0
    cfg.MODEL.SLIMMABLE.DISTILL.ROI_LOC = 1.0
    cfg.MODEL.SLIMMABLE.DISTILL.FPN = 0.0
    # Iterations trained on the ground truth alone before the teacher starts teaching (a teacher
    # trained from scratch predicts poorly early on).
    cfg.MODEL.SLIMMABLE.DISTILL.START_ITER = 0
    # Weight of a student's ground-truth classification losses (loss_cls, loss_rpn_cls), which
    # the soft targets of ROI_CLS and RPN_CLS mirror: 1 keeps them beside the soft targets, 0
    # trains the student's classifiers on the teacher's soft labels instead (as the reference
    # training loop of slimmable networks does), values between mix the two.
    cfg.MODEL.SLIMMABLE.DISTILL.GT_CLS_WEIGHT = 1.0
    # ROI box distillation: "mimic" (smooth L1 towards the teacher's deltas) or "bounded" (the
    # teacher's squared error to the ground truth bounds the student's, which counts only above
    # it minus BOUND_MARGIN: Chen et al., NeurIPS 2017).
    cfg.MODEL.SLIMMABLE.DISTILL.ROI_LOC_MODE = "mimic"
    cfg.MODEL.SLIMMABLE.DISTILL.BOUND_MARGIN = 0.0
    # Whether the students' RPN and ROI distillation gradients reach the heads (RPN head, box
    # head, box predictor), which every width shares; False: only the backbone and FPN
    # features they read learn from the teacher.
    cfg.MODEL.SLIMMABLE.DISTILL.TRAIN_HEADS = True


def remove_slimdet_keys(cfg: CN) -> None:
    """Delete in place what ``add_slimmable_config`` added, so that plain Detectron2 reads the
    config: ``MODEL.SLIMMABLE``, ``SOLVER.WEIGHT_AVERAGE``, ``SOLVER.CLIP_GRADIENTS.PERCENTILE``,
    and ``MODEL.CLASSIFIER`` unless the
    model is slimdet's classifier (whose stock builder reads it)."""
    del cfg.MODEL["SLIMMABLE"]
    cfg.SOLVER.pop("WEIGHT_AVERAGE", None)
    cfg.SOLVER.CLIP_GRADIENTS.pop("PERCENTILE", None)
    if cfg.MODEL.META_ARCHITECTURE != "SlimmableImageClassifier":
        cfg.MODEL.pop("CLASSIFIER", None)


def validate_slimmable_config(cfg: CN) -> None:
    """Raise ``ValueError`` naming the problem if the width settings or the per-width clipping
    are inconsistent."""
    s = cfg.MODEL.SLIMMABLE
    widths = list(s.WIDTHS)
    if not widths or any(not 0 < w <= 1 for w in widths) or len(set(widths)) != len(widths):
        raise ValueError(f"MODEL.SLIMMABLE.WIDTHS must be distinct values in (0, 1], got {widths}")
    if s.get("UNIVERSAL"):
        if max(widths) != 1.0 or len(widths) < 2:
            raise ValueError("a universal model (MODEL.SLIMMABLE.UNIVERSAL) runs between "
                             "min(WIDTHS) and 1.0: WIDTHS needs 1.0 and a narrower width, got "
                             f"{widths}")
        if s.SANDWICH_WIDTHS < 2:
            raise ValueError("MODEL.SLIMMABLE.SANDWICH_WIDTHS must be at least 2 (the widest and "
                             f"the narrowest), got {s.SANDWICH_WIDTHS}")
    if s.get("UNIVERSAL_AFFINE", "per_width") not in ("shared", "per_width"):
        raise ValueError("MODEL.SLIMMABLE.UNIVERSAL_AFFINE must be 'shared' or 'per_width', got "
                         f"{s.UNIVERSAL_AFFINE!r}")
    if s.get("LOSS_REDUCTION", "sum") not in ("sum", "mean"):
        raise ValueError("MODEL.SLIMMABLE.LOSS_REDUCTION must be 'sum' or 'mean', got "
                         f"{s.LOSS_REDUCTION!r}")
    width_clip_threshold(cfg)  # per-width clipping: NORM_TYPE, CLIP_VALUE or PERCENTILE
    quantum = width_quantum(cfg)
    if quantum and any(abs(w * quantum - round(w * quantum)) > 1e-9 for w in widths):
        raise ValueError(f"a universal model with GroupNorm runs at multiples of 1/{quantum} "
                         f"(its GN layers keep their group size): MODEL.SLIMMABLE.WIDTHS {widths} "
                         "must be such multiples")
    for key in ("TRAIN_WIDTHS", "TEST_WIDTHS"):
        unknown = [w for w in s.get(key) if not _allowed(cfg, w)]
        if unknown:
            allowed = (f"the universal range [{min(widths):g}, 1]" if s.get("UNIVERSAL") else
                       f"MODEL.SLIMMABLE.WIDTHS {widths}")
            raise ValueError(f"MODEL.SLIMMABLE.{key} has widths {unknown} not in {allowed}")


def universal_range(cfg: CN) -> tuple[float, float] | None:
    """(lowest, highest) width of a universal model, None for a model of listed widths."""
    s = cfg.MODEL.SLIMMABLE
    return (float(min(s.WIDTHS)), float(max(s.WIDTHS))) if s.get("UNIVERSAL") else None


def _model_norms(m: CN) -> list[str]:
    """``NORM`` of every part of the model ``MODEL`` builds (Detectron2's defaults set e.g.
    ``SEM_SEG_HEAD.NORM`` GN for models without that head)."""
    norms = [m.RESNETS.NORM, m.FPN.NORM, m.ROI_BOX_HEAD.NORM]
    if m.MASK_ON:
        norms.append(m.ROI_MASK_HEAD.NORM)
    if m.META_ARCHITECTURE in ("SemanticSegmentor", "PanopticFPN"):
        norms.append(m.SEM_SEG_HEAD.NORM)
    if m.META_ARCHITECTURE in ("RetinaNet", "SlimmableRetinaNet"):
        norms.append(m.RETINANET.NORM)
    return norms


def width_quantum(cfg: CN) -> int | None:
    """``Q`` if a universal model's widths are multiples of ``1 / Q``, else None.

    A universal model with GroupNorm has ``Q = 32`` (Detectron2's group count): its GN layers
    keep their group size at every width (a group holds the same channels at width w as at 1),
    so that the shared GN parameters see one normalisation. Width ``w`` is then the network of
    ``floor(32 w) / 32``, whose GN layers have ``floor(32 w)`` groups."""
    uses_gn = "GN" in _model_norms(cfg.MODEL)
    return DETECTRON2_GN_GROUPS if universal_range(cfg) and uses_gn else None


def resolve_width(cfg: CN, width: float) -> float:
    """The width ``cfg``'s model runs at when asked for ``width``: the listed width it matches
    (``width_index``), or any width of a universal model's range, rounded down to a multiple of
    ``1 / width_quantum(cfg)`` if it has one; ``ValueError`` otherwise."""
    width_range = universal_range(cfg)
    if width_range is not None:
        width = width_in_range(width_range, width)
        quantum = width_quantum(cfg)
        return math.floor(width * quantum + 1e-9) / quantum if quantum else width
    widths = [float(w) for w in cfg.MODEL.SLIMMABLE.WIDTHS]
    return widths[width_index(widths, width)]


def _allowed(cfg: CN, width: float) -> bool:
    try:
        resolve_width(cfg, width)
    except ValueError:
        return False
    return True


def _resolved(cfg: CN, key: str) -> list[float]:
    validate_slimmable_config(cfg)
    chosen = cfg.MODEL.SLIMMABLE.get(key) or cfg.MODEL.SLIMMABLE.WIDTHS
    return [resolve_width(cfg, w) for w in chosen]


def train_widths(cfg: CN) -> list[float]:
    """The widths every training iteration visits: ``TRAIN_WIDTHS``, or all if it is empty
    (a universal model with no ``TRAIN_WIDTHS`` follows the sandwich rule over
    ``universal_range`` instead)."""
    return _resolved(cfg, "TRAIN_WIDTHS")


def eval_widths(cfg: CN) -> list[float]:
    """The widths the evaluator reports: ``TEST_WIDTHS``, or all if it is empty."""
    return _resolved(cfg, "TEST_WIDTHS")
