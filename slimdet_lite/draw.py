"""Pictures of an exported model's detections with OpenCV alone: boxes, class and score, masks
blended in, keypoints, and a caption strip (which slimdet's Detectron2-drawn panels share)."""
from __future__ import annotations

import cv2
import numpy as np

from .rle import decode_rle

__all__ = ["draw_detections", "with_caption"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_CAPTION_SCALE = 0.6
_MASK_ALPHA = 0.45


def with_caption(image_bgr: np.ndarray, caption: str) -> np.ndarray:
    """``image_bgr`` under a dark strip carrying ``caption`` in one line, shrunk to fit. The
    strip's height depends on nothing but the font, so that video frames keep one size."""
    width = image_bgr.shape[1]
    (_, text_h), baseline = cv2.getTextSize("Ag", _FONT, _CAPTION_SCALE, 1)
    text_w = cv2.getTextSize(caption, _FONT, 1.0, 1)[0][0]
    scale = min(_CAPTION_SCALE, 0.95 * width / max(1, text_w))
    strip = np.full((text_h + baseline + 8, width, 3), 32, dtype=np.uint8)
    cv2.putText(strip, caption, (4, text_h + 4), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([strip, image_bgr], axis=0)


def _color(category_id: int) -> tuple[int, int, int]:
    """A bright colour per class, the same on every call."""
    hue = (category_id * 47) % 180
    bgr = cv2.cvtColor(np.array([[[hue, 200, 255]]], dtype=np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_detections(image_bgr: np.ndarray, result: dict, caption: str = "",
                    min_score: float = 0.0) -> np.ndarray:
    """``result`` (``ExportedModel``'s output) drawn on a copy of ``image_bgr``: masks blended,
    boxes, "class score" labels and keypoints of instances scoring at least ``min_score``, with
    ``caption`` in a strip above when given."""
    canvas = image_bgr.copy()
    instances = [i for i in result["instances"] if i["score"] >= min_score]
    for instance in instances:
        if "segmentation" in instance:
            mask = decode_rle(instance["segmentation"])
            color = np.array(_color(instance["category_id"]), dtype=np.float32)
            canvas[mask] = ((1 - _MASK_ALPHA) * canvas[mask] + _MASK_ALPHA * color).astype(np.uint8)
    for instance in instances:
        color = _color(instance["category_id"])
        x0, y0, x1, y1 = (int(round(v)) for v in instance["bbox"])
        cv2.rectangle(canvas, (x0, y0), (x1, y1), color, 1, cv2.LINE_AA)
        label = f"{instance['category']} {instance['score']:.2f}"
        cv2.putText(canvas, label, (x0 + 2, max(y0 - 3, 9)), _FONT, 0.35, color, 1, cv2.LINE_AA)
        keypoints = np.asarray(instance.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
        for x, y, _ in keypoints:
            cv2.circle(canvas, (int(round(x)), int(round(y))), 2, (0, 0, 255), -1)
    return with_caption(canvas, caption) if caption else canvas
