"""Deterministic synthetic COCO dataset: solid-colour shapes and stick-figure people.

Why: a dataset small and easy enough for a tiny detector trained from scratch on CPU to learn in
minutes, with exact instance masks and the 17 COCO person keypoints, so the box, mask and
keypoint pipelines can be exercised end to end without downloading COCO.

Every object is painted by rasterising its own COCO polygon with pycocotools, so the stored
masks are exactly the drawn pixels. Objects never touch, so no mask is occluded.

Usage: ``python -m slimdet.data.synthetic --out datasets/synthetic [--seed 0]``
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass

import cv2
import numpy as np
from pycocotools import mask as mask_util

from slimdet.data.datasets import (
    KEYPOINT_NAMES,
    SPLITS,
    THING_CLASSES,
    annotation_path,
    image_dir,
)

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
_SUPERSAMPLE = 4  # stick figures are outlined at this many times the image resolution
_SUBPIXEL_BITS = 3  # fixed-point bits for the OpenCV drawing calls

# COCO person skeleton (1-based keypoint indices), stored in the keypoint category.
SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
    [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]  # fmt: skip


@dataclass
class _Instance:
    """One placed object: class, closed polygon (N, 2) in COCO pixel coordinates, keypoints."""

    category: str
    polygon: np.ndarray
    keypoints: np.ndarray | None = None  # (17, 2) continuous coordinates, people only


def _circle(rng: np.random.Generator, size: float) -> np.ndarray:
    """A circle of diameter ``size`` as a 24-gon."""
    angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(24) / 24
    return size / 2 * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _rectangle(rng: np.random.Generator, size: float) -> np.ndarray:
    """A rectangle with longer side ``size``, aspect ratio in [0.55, 1], slightly rotated."""
    w, h = size, size * rng.uniform(0.55, 1.0)
    if rng.random() < 0.5:
        w, h = h, w
    corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    a = np.deg2rad(rng.uniform(-15, 15))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return corners @ rot.T


def _triangle(rng: np.random.Generator, size: float) -> np.ndarray:
    """A roughly equilateral triangle inscribed in a circle of diameter ``size``."""
    spread = np.array([0, 120, 240]) + rng.uniform(-10, 10, 3)
    angles = rng.uniform(0, 2 * np.pi) + np.deg2rad(spread)
    radii = size / 2 * rng.uniform(0.85, 1.0, 3)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


_SHAPES = {"circle": _circle, "rectangle": _rectangle, "triangle": _triangle}


def _limb(start: np.ndarray, side: float, angle_deg: float, length: float) -> np.ndarray:
    """End of a limb leaving ``start`` at ``angle_deg`` from straight down, outwards on ``side``."""
    a = np.deg2rad(angle_deg)
    return start + length * np.array([side * np.sin(a), np.cos(a)])


def _person_pose(rng: np.random.Generator, height: float) -> tuple[np.ndarray, float, float]:
    """Random stick-figure pose facing the camera, with the neck at the origin (y points down).

    Returns the 17 COCO keypoints (17, 2), the head radius and the limb thickness. The figure's
    left (side +1) is on the image right, as for a person facing the camera.
    """
    r = 0.11 * height
    head = np.array([0.0, -0.95 * r])
    shoulder_w = 0.15 * height * rng.uniform(0.9, 1.1)
    hip_w, torso = 0.09 * height, 0.33 * height
    kp = {"nose": head + [0, 0.25 * r]}
    for side, prefix in ((1.0, "left_"), (-1.0, "right_")):
        kp[prefix + "eye"] = head + [side * 0.4 * r, -0.15 * r]
        kp[prefix + "ear"] = head + [side * 0.75 * r, 0]
        shoulder = kp[prefix + "shoulder"] = np.array([side * shoulder_w, 0.04 * height])
        upper_arm = rng.uniform(15, 165)
        fore_arm = np.clip(upper_arm + rng.uniform(-50, 50), 0, 180)
        elbow = kp[prefix + "elbow"] = _limb(shoulder, side, upper_arm, 0.17 * height)
        kp[prefix + "wrist"] = _limb(elbow, side, fore_arm, 0.16 * height)
        hip = kp[prefix + "hip"] = np.array([side * hip_w, torso])
        thigh = rng.uniform(3, 28)
        shin = max(0.0, thigh + rng.uniform(-12, 12))
        knee = kp[prefix + "knee"] = _limb(hip, side, thigh, 0.24 * height)
        kp[prefix + "ankle"] = _limb(knee, side, shin, 0.23 * height)
    keypoints = np.stack([kp[name] for name in KEYPOINT_NAMES])
    return keypoints, r, max(2.5, 0.07 * height)


def _fixed(points: np.ndarray) -> np.ndarray:
    """COCO coordinates -> OpenCV fixed-point pixel coordinates on the supersampled canvas."""
    return np.round((points * _SUPERSAMPLE - 0.5) * (1 << _SUBPIXEL_BITS)).astype(np.int32)


def _person_polygon(
    keypoints: np.ndarray, head_r: float, thickness: float, image_size: int
) -> np.ndarray:
    """Outline of the stick figure: render it supersampled, then trace its outer contour."""
    k = dict(zip(KEYPOINT_NAMES, keypoints))
    canvas = np.zeros((image_size * _SUPERSAMPLE,) * 2, np.uint8)
    torso = np.stack([k["left_shoulder"], k["right_shoulder"], k["right_hip"], k["left_hip"]])
    cv2.fillPoly(canvas, [_fixed(torso)], 255, cv2.LINE_8, _SUBPIXEL_BITS)
    head = (k["left_ear"] + k["right_ear"]) / 2  # the ears sit level with the head centre
    radius = int(round(head_r * _SUPERSAMPLE * (1 << _SUBPIXEL_BITS)))
    cv2.circle(canvas, tuple(_fixed(head).tolist()), radius, 255, -1, cv2.LINE_8, _SUBPIXEL_BITS)
    neck = (k["left_shoulder"] + k["right_shoulder"]) / 2
    bones = [(head, neck)]
    for a, b in (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")):
        bones.append((k[a], k[b]))
    for side in ("left_", "right_"):
        for a, b in (("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle")):
            bones.append((k[side + a], k[side + b]))
    width = max(1, int(round(thickness * _SUPERSAMPLE)))
    for a, b in bones:
        a, b = tuple(_fixed(a).tolist()), tuple(_fixed(b).tolist())
        cv2.line(canvas, a, b, 255, width, cv2.LINE_8, _SUBPIXEL_BITS)
    contours, _ = cv2.findContours(canvas, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 0.25 * _SUPERSAMPLE, True)
    return (outline[:, 0, :].astype(np.float64) + 0.5) / _SUPERSAMPLE


def _sample_instance(
    rng: np.random.Generator, category: str, image_size: int
) -> _Instance | None:
    """Sample one object placed fully inside the image, 1 px from the border (None: no fit)."""
    if category == "person":
        keypoints, head_r, thickness = _person_pose(rng, image_size * rng.uniform(*_PERSON_HEIGHT))
        margin = max(head_r, thickness) + 1
        lo, hi = keypoints.min(0) - margin, keypoints.max(0) + margin
    else:
        polygon = _SHAPES[category](rng, image_size * rng.uniform(*_SHAPE_SIZE))
        lo, hi = polygon.min(0), polygon.max(0)
    free = (image_size - 1) - hi - (1 - lo)
    if (free < 0).any():
        return None
    offset = 1 - lo + rng.uniform(0, 1, 2) * free
    if category != "person":
        return _Instance(category, np.round(polygon + offset, 2))
    keypoints = keypoints + offset
    polygon = np.round(_person_polygon(keypoints, head_r, thickness, image_size), 2)
    if polygon.min() < 0 or polygon.max() > image_size:
        return None
    return _Instance(category, polygon, keypoints)


def _rasterize(polygon: np.ndarray, image_size: int) -> np.ndarray:
    """Binary (H, W) mask of a polygon, exactly as COCO tools and Detectron2 decode it."""
    rles = mask_util.frPyObjects([polygon.ravel().tolist()], image_size, image_size)
    return mask_util.decode(mask_util.merge(rles)).astype(bool)


def _box(polygon: np.ndarray) -> np.ndarray:
    """XYXY bounding box of a polygon."""
    return np.concatenate([polygon.min(0), polygon.max(0)])


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
            mask = _rasterize(inst.polygon, image_size)
            box = _box(inst.polygon)
            nested = any(_boxes_nested(box, _box(other.polygon)) for other in instances)
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


def _polygon_area(polygon: np.ndarray) -> float:
    """Exact area of a simple polygon (shoelace formula)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _annotation(inst: _Instance, ann_id: int, image_id: int) -> dict:
    """COCO annotation dict; people also get their keypoints (dropped for the instances file)."""
    x0, y0, x1, y1 = (float(v) for v in _box(inst.polygon))
    ann = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": THING_CLASSES.index(inst.category) + 1,
        "segmentation": [[float(v) for v in inst.polygon.ravel()]],
        "area": round(_polygon_area(inst.polygon), 2),
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
    os.makedirs(os.path.dirname(annotation_path(out_dir, "instances", split)), exist_ok=True)
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
    categories = [{"id": i + 1, "name": n, "supercategory": n} for i, n in enumerate(THING_CLASSES)]
    person_category = dict(categories[0], keypoints=list(KEYPOINT_NAMES), skeleton=SKELETON)
    people = [a for a in annotations if "keypoints" in a]
    keypoint_keys = ("keypoints", "num_keypoints")
    instances_json = {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": [
            {k: v for k, v in a.items() if k not in keypoint_keys} for a in annotations
        ],
        "categories": categories,
    }
    keypoints_json = dict(instances_json, annotations=people, categories=[person_category])
    for task, content in (("instances", instances_json), ("person_keypoints", keypoints_json)):
        with open(annotation_path(out_dir, task, split), "w") as f:
            json.dump(content, f, separators=(",", ":"))
    return len(annotations), len(people)


def generate(
    out_dir: str, num_train: int = 300, num_val: int = 60, image_size: int = 128, seed: int = 0
) -> None:
    """Write train/val PNG images and COCO instances/keypoints JSON files under ``out_dir``.

    The output depends only on the arguments: the same seed gives byte-identical files.
    """
    start = time.perf_counter()
    summary = []
    for split, num_images in zip(SPLITS, (num_train, num_val)):
        num_instances, num_people = _write_split(out_dir, split, num_images, image_size, seed)
        summary.append(
            f"{split}: {num_images} images, {num_instances} objects ({num_people} people)"
        )
    elapsed = time.perf_counter() - start
    print(f"synthetic dataset in {out_dir}: {', '.join(summary)} [{elapsed:.1f}s]")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output root, e.g. datasets/synthetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-train", type=int, default=300)
    parser.add_argument("--num-val", type=int, default=60)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args(argv)
    generate(args.out, args.num_train, args.num_val, args.image_size, args.seed)


if __name__ == "__main__":
    main()
