"""Deterministic synthetic COCO dataset: solid-colour shapes and stick-figure people.

Why: a dataset small and easy enough for a tiny detector trained from scratch on CPU to learn in
minutes, with exact instance masks and the 17 COCO person keypoints, so the box, mask and
keypoint pipelines can be exercised end to end without downloading COCO.

Every object is painted by rasterising its own COCO polygon with pycocotools, so the stored
masks are exactly the drawn pixels. Objects never touch, so no mask is occluded.

Usage: ``python -m slimdet.data.synthetic --out datasets/synthetic [--seed 0]``
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from slimdet.data.coco_files import generator_main, write_coco_split, write_splits
from slimdet.data.datasets import SPLITS, THING_CLASSES, image_dir
from slimdet.data.shapes import (SHAPES, box, person_polygon, person_pose, polygon_area,
                                 random_offset, rasterize)

# RGB fill colour of each class: far apart from each other and from the light background.
CLASS_COLORS = {
    "person": (35, 35, 35),
    "circle": (220, 50, 50),
    "rectangle": (50, 170, 70),
    "triangle": (50, 90, 220),
}
# Class sampling probabilities; people are favoured so the keypoint splits are not too small.
_CLASS_PROBS = {"person": 0.4, "circle": 0.2, "rectangle": 0.2, "triangle": 0.2}
_COLOR_JITTER = 12  # max per-channel deviation of an object's colour from its class colour
_NOISE_STD = 4.0  # std of the Gaussian pixel noise added to the whole image
_SHAPE_SIZE = (0.2, 0.6)  # shape extent, as a fraction of the image side
_PERSON_HEIGHT = (0.4, 0.7)  # stick-figure height, as a fraction of the image side
_MAX_OBJECTS = 4
_MIN_GAP = 2  # pixels that must separate any two objects
_MAX_BOX_CONTAINMENT = 0.3  # max box intersection over the smaller box area
_PLACEMENT_TRIES = 30


@dataclass
class _Instance:
    """One placed object: class, closed polygon (N, 2) in COCO pixel coordinates, keypoints."""

    category: str
    polygon: np.ndarray
    keypoints: np.ndarray | None = None  # (17, 2) continuous coordinates, people only


def _sample_instance(
    rng: np.random.Generator, category: str, image_size: int
) -> _Instance | None:
    """Sample one object placed fully inside the image, 1 px from the border (None: no fit)."""
    if category == "person":
        keypoints, head_r, thickness = person_pose(rng, image_size * rng.uniform(*_PERSON_HEIGHT))
        margin = max(head_r, thickness) + 1
        lo, hi = keypoints.min(0) - margin, keypoints.max(0) + margin
    else:
        polygon = SHAPES[category](rng, image_size * rng.uniform(*_SHAPE_SIZE))
        lo, hi = polygon.min(0), polygon.max(0)
    offset = random_offset(rng, lo, hi, image_size)
    if offset is None:
        return None
    if category != "person":
        return _Instance(category, np.round(polygon + offset, 2))
    keypoints = keypoints + offset
    polygon = np.round(person_polygon(keypoints, head_r, thickness, image_size), 2)
    if polygon.min() < 0 or polygon.max() > image_size:
        return None
    return _Instance(category, polygon, keypoints)


def _boxes_nested(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two XYXY boxes overlap by more than the allowed fraction of the smaller one."""
    wh = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None)
    smaller = min(np.prod(a[2:] - a[:2]), np.prod(b[2:] - b[:2]))
    return wh.prod() > _MAX_BOX_CONTAINMENT * smaller


def _make_image(rng: np.random.Generator, image_size: int) -> tuple[np.ndarray, list[_Instance]]:
    """One RGB image with 1-4 well separated objects on a noisy light background."""
    names = list(_CLASS_PROBS)
    count = rng.integers(1, _MAX_OBJECTS + 1)
    categories = sorted(rng.choice(len(names), count, p=list(_CLASS_PROBS.values())))
    gap_kernel = np.ones((2 * _MIN_GAP + 1,) * 2, np.uint8)
    occupied = np.zeros((image_size, image_size), np.uint8)  # placed masks grown by the gap
    instances, masks = [], []
    for category in (names[c] for c in categories):  # people first: they need the most room
        for _ in range(_PLACEMENT_TRIES):
            inst = _sample_instance(rng, category, image_size)
            if inst is None:
                continue
            mask = rasterize(inst.polygon, image_size)
            bounds = box(inst.polygon)
            nested = any(_boxes_nested(bounds, box(other.polygon)) for other in instances)
            if not occupied[mask].any() and not nested:
                occupied |= cv2.dilate(mask.astype(np.uint8), gap_kernel)
                instances.append(inst)
                masks.append(mask)
                break
    background = rng.uniform(170, 235) + rng.uniform(-8, 8, 3)
    image = np.broadcast_to(background, (image_size, image_size, 3)).copy()
    for inst, mask in zip(instances, masks):
        jitter = rng.integers(-_COLOR_JITTER, _COLOR_JITTER + 1, 3)
        image[mask] = np.array(CLASS_COLORS[inst.category]) + jitter
    image += rng.normal(0, _NOISE_STD, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), instances


def _annotation(inst: _Instance, ann_id: int, image_id: int) -> dict:
    """COCO annotation dict; people also get their keypoints (dropped for the instances file)."""
    x0, y0, x1, y1 = (float(v) for v in box(inst.polygon))
    ann = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": THING_CLASSES.index(inst.category) + 1,
        "segmentation": [[float(v) for v in inst.polygon.ravel()]],
        "area": round(polygon_area(inst.polygon), 2),
        "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
        "iscrowd": 0,
    }
    if inst.keypoints is not None:
        # COCO keypoints are pixel indices: continuous coordinate - 0.5 (Detectron2 adds it back).
        # Figures lie fully inside the image, so every keypoint is labelled and visible (v=2).
        pixels = np.round(inst.keypoints - 0.5, 2)
        ann["keypoints"] = [v for x, y in pixels for v in (float(x), float(y), 2)]
        ann["num_keypoints"] = len(pixels)
    return ann


def _write_split(
    out_dir: str, split: str, num_images: int, image_size: int, seed: int
) -> tuple[int, int]:
    """Write the images and both JSON files of one split; return (#instances, #people)."""
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    os.makedirs(image_dir(out_dir, split), exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        image, instances = _make_image(rng, image_size)
        file_name = f"{image_id:06d}.png"
        path = os.path.join(image_dir(out_dir, split), file_name)
        cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        images.append(
            {"id": image_id, "file_name": file_name, "height": image_size, "width": image_size}
        )
        for inst in instances:
            annotations.append(_annotation(inst, len(annotations) + 1, image_id))
    info = {"description": "slimdet synthetic shapes and stick figures", "seed": seed}
    write_coco_split(out_dir, split, images, annotations, THING_CLASSES, info)
    people = [a for a in annotations if "keypoints" in a]
    return len(annotations), len(people)


def generate(
    out_dir: str, num_train: int = 300, num_val: int = 60, image_size: int = 128, seed: int = 0
) -> None:
    """Write train/val PNG images and COCO instances/keypoints JSON files under ``out_dir``.

    The output depends only on the arguments: the same seed gives byte-identical files.
    """
    write_splits("synthetic", _write_split, out_dir, num_train, num_val, image_size, seed)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; see the module docstring."""
    generator_main(argv, __doc__.splitlines()[0], generate, None, 300, 60)


if __name__ == "__main__":
    main()
