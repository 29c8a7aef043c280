"""Pictures of what a width detects: Detectron2's ``Visualizer`` panels with a caption strip,
side by side for several widths."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from detectron2.data import Metadata
from detectron2.structures import Instances
from detectron2.utils.visualizer import Visualizer

__all__ = ["draw_panel", "with_caption", "side_by_side"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_CAPTION_SCALE = 0.6


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


def draw_panel(image_bgr: np.ndarray, instances: Instances, metadata: Metadata, caption: str,
               scale: float = 1.0) -> np.ndarray:
    """``instances`` drawn on ``image_bgr`` by Detectron2's ``Visualizer`` (enlarged by
    ``scale``), with ``caption`` above; BGR."""
    visualizer = Visualizer(image_bgr[:, :, ::-1], metadata, scale=scale)
    drawn = visualizer.draw_instance_predictions(instances.to("cpu")).get_image()[:, :, ::-1]
    return with_caption(np.ascontiguousarray(drawn), caption)


def side_by_side(panels: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Panels of equal height in one row, separated by white gaps."""
    height = max(p.shape[0] for p in panels)
    row = []
    for i, panel in enumerate(panels):
        if panel.shape[0] < height:
            pad = np.full((height - panel.shape[0], *panel.shape[1:]), 255, dtype=np.uint8)
            panel = np.concatenate([panel, pad], axis=0)
        if i:
            row.append(np.full((height, gap, 3), 255, dtype=np.uint8))
        row.append(panel)
    return np.concatenate(row, axis=1)
