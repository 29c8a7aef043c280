"""How close an export is to the eager slimmable model: the largest difference of two outputs of
any Detectron2 structure, and a detection-by-detection match for exports whose masks or
resize may differ by a pixel."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from detectron2.export.flatten import flatten_to_tuple
from detectron2.structures import Instances

__all__ = ["max_output_difference", "match_detections", "match_failures", "MATCH_TOLERANCE"]


def _tensors(outputs: Any) -> list[torch.Tensor]:
    flat = outputs if isinstance(outputs, tuple) else flatten_to_tuple(outputs)[0]
    return [t for t in flat if isinstance(t, torch.Tensor)]


def max_output_difference(a: Any, b: Any) -> float:
    """Max absolute difference over all tensors of ``a`` and ``b`` (``Instances``, dicts, lists
    or already flattened tuples, e.g. a traced model's outputs); masks count 1 per differing
    pixel. ``inf`` if the structures or shapes differ (e.g. another number of detections)."""
    ta, tb = _tensors(a), _tensors(b)
    if len(ta) != len(tb) or any(x.shape != y.shape for x, y in zip(ta, tb)):
        return math.inf
    return max(((x.double() - y.double()).abs().max().item() for x, y in zip(ta, tb) if x.numel()),
               default=0.0)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def match_detections(expected: Instances, got: dict[str, np.ndarray]) -> dict[str, float]:
    """Compare ``expected`` (the eager model's ``Instances``) with ``got`` (arrays named as its
    fields, e.g. ``slimdet_lite.ExportedModel.arrays``), detection by detection in order:
    ``count`` of both, largest box corner and keypoint difference in pixels, largest score
    difference, smallest mask IoU, and whether the classes agree. Other counts give ``inf``
    differences."""
    fields = expected.get_fields()
    n = len(expected)
    report: dict[str, float] = {"count": n, "exported_count": len(got["scores"])}
    if len(got["scores"]) != n:
        return {**report, "box_px": math.inf, "score": math.inf}
    report["box_px"] = float(np.abs(fields["pred_boxes"].tensor.cpu().numpy()
                                    - got["pred_boxes"]).max(initial=0.0))
    report["score"] = float(np.abs(fields["scores"].cpu().numpy() - got["scores"]).max(initial=0))
    report["same_classes"] = bool((fields["pred_classes"].cpu().numpy()
                                   == got["pred_classes"]).all())
    if "pred_masks" in fields:
        masks = fields["pred_masks"].cpu().numpy() > 0
        report["mask_iou"] = min((_mask_iou(a, b > 0) for a, b in zip(masks, got["pred_masks"])),
                                 default=1.0)
    if "pred_keypoints" in fields:
        diff = np.abs(fields["pred_keypoints"].cpu().numpy()[..., :2]
                      - got["pred_keypoints"][..., :2])
        report["keypoint_px"] = float(diff.max(initial=0.0))
    return report


# What "the same detections" means for an exported file: boxes and keypoints within a hundredth
# of a pixel, scores within 1e-4, masks (pasted by another runtime) at IoU >= 0.99.
MATCH_TOLERANCE = {"box_px": 0.01, "keypoint_px": 0.01, "score": 1e-4, "mask_iou": 0.99}


def match_failures(report: dict[str, float]) -> list[str]:
    """The ways a ``match_detections`` report misses ``MATCH_TOLERANCE`` (empty: it matches)."""
    failures = []
    if report["exported_count"] != report["count"]:
        failures.append(f"{report['exported_count']} detections, expected {report['count']}")
    if not report.get("same_classes", True):
        failures.append("other classes")
    for key, bound in MATCH_TOLERANCE.items():
        if key in report and (report[key] < bound if key == "mask_iou" else report[key] > bound):
            failures.append(f"{key} {report[key]:.3g} (bound {bound:g})")
    return failures
