"""Pictures of what a width detects: Detectron2's ``Visualizer`` panels with a caption strip
(``slimdet_lite.with_caption``), side by side for several widths."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from detectron2.data import Metadata
from detectron2.structures import Instances
from detectron2.utils.visualizer import Visualizer
from slimdet_lite import with_caption

__all__ = ["draw_panel", "with_caption", "side_by_side"]


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
