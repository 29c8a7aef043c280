"""Deterministic cluttered COCO dataset: nine classes told apart by shape and structure only.

Why: in the shapes dataset (``synthetic.py``) colour alone gives the class, so every model
saturates and none can be told apart. Here every object, person or shape (circle, rectangle,
triangle, star, cross, arrow, crescent, heart; each about upright), gets a random colour and
texture drawn independently of its class; backgrounds are textured and cluttered with
unlabelled distractors (irregular blobs, lines, arcs); object sizes span 18 to 112 pixels;
scenes hold 1 to 6 objects that occlude each other and are crossed by distractors, each keeping
at least ``_MIN_VISIBLE`` of its area visible.

Annotations are COCO's: the mask is the visible part (RLE, so use ``INPUT.MASK_FORMAT
bitmask``), the box its extent, and a person's keypoint hidden by something in front is
labelled but not visible (v=1). The same seed gives byte-identical files.

``slimdet.data.clutter_people`` writes the keypoint benchmark's variant: the same scenes, with
half of the objects people.

Usage: ``python -m slimdet.data.clutter --out datasets/clutter [--seed 0]``
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_util

from slimdet.data.coco_files import generator_main, write_coco_split, write_splits
from slimdet.data.datasets import CLUTTER_CLASSES, SPLITS, default_root, image_dir
from slimdet.data.shapes import (CLUTTER_SHAPES, person_polygon, person_pose, random_offset,
                                 rasterize)

_SHAPE_SIZE = (18.0, 80.0)  # shape extent in pixels, log-uniform
_PERSON_HEIGHT = (40.0, 112.0)  # stick-figure height in pixels, log-uniform
_OBJECTS = (1, 6)  # objects per image, uniform
_DISTRACTORS = (0, 2)  # unlabelled things drawn before the objects
_OCCLUDERS = (0, 1)  # unlabelled lines and arcs drawn over the objects
_MIN_VISIBLE = 0.8  # fraction of its own area an object keeps visible
_MIN_AREA = 24  # visible pixels an object keeps
_PLACEMENT_TRIES = 20
_NOISE_STD = (2.0, 6.0)
_BACKGROUND_CONTRAST = 0.25  # background textures are blended this far from their mean,
_BACKGROUND_SATURATION = 0.4  # and their mean this far from grey
_VIVID = (0.6, 1.0)  # HSV saturation and value of the colours of objects and distractors
_SOLID_PROB = 0.75  # objects and distractors painted in one colour; else a random texture
_BLUR_PROB = 0.3


@dataclass
class _Object:
    """A placed object: class, its full mask, and (people) the 17 keypoints."""

    category: str
    mask: np.ndarray
    keypoints: np.ndarray | None = None


def _smooth_noise(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:
    """(size, size) values in [0, 1] varying smoothly over about ``cell`` pixels."""
    n = max(2, int(size / cell) + 2)
    return cv2.resize(rng.random((n, n)), (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _vivid_colours(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` RGB colours of any hue, saturation and value in ``_VIVID``."""
    hsv = np.stack([rng.uniform(0, 180, count), rng.uniform(*_VIVID, count) * 255,
                    rng.uniform(*_VIVID, count) * 255], 1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0].astype(np.float64)


def _texture(rng: np.random.Generator, where: np.ndarray, vivid: bool = False) -> np.ndarray:
    """Colours of one random texture in two random colours (solid, stripes, checks, gradient,
    blotches or dots) at the pixels where the (size, size) mask ``where`` is set: (N, 3).
    ``vivid``: colours from ``_vivid_colours`` and solid with ``_SOLID_PROB``."""
    c1, c2 = _vivid_colours(rng, 2) if vivid else rng.uniform(0, 255, (2, 3))
    y, x = (c.astype(np.float64) for c in np.nonzero(where))
    if not len(x):
        return np.empty((0, 3))
    angle = rng.uniform(0, np.pi)
    u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    kind = 0 if vivid and rng.random() < _SOLID_PROB else rng.integers(6)
    if kind == 0:
        t = np.zeros_like(u)
    elif kind == 1:
        t = (np.sin(2 * np.pi * u / rng.uniform(3, 14)) > 0).astype(np.float64)
    elif kind == 2:
        step = rng.uniform(2, 8)
        t = ((np.floor(u / step) + np.floor(v / step)) % 2).astype(np.float64)
    elif kind == 3:
        t = (u - u.min()) / max(u.max() - u.min(), 1.0)
    elif kind == 4:
        t = _smooth_noise(rng, where.shape[0], rng.uniform(3, 16))[where]
    else:
        period = rng.uniform(4, 10)
        t = (np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period) > 0.5).astype(
            np.float64)
    return c1 + t[:, None] * (c2 - c1)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3): two textures blended through a smooth random mask, at reduced
    contrast and saturation, so that vivid objects and distractors stand out from it."""
    blend = _smooth_noise(rng, size, rng.uniform(16, 64))[..., None]
    everywhere = np.ones((size, size), bool)
    first, second = (_texture(rng, everywhere).reshape(size, size, 3) for _ in range(2))
    image = first * blend + second * (1 - blend)
    mean = image.mean((0, 1))
    grey_mean = mean.mean() + _BACKGROUND_SATURATION * (mean - mean.mean())
    return grey_mean + _BACKGROUND_CONTRAST * (image - mean)


def _blob(rng: np.random.Generator, size: int) -> np.ndarray:
    """Mask of a smooth irregular blob (radius varying with a few random harmonics), a shape
    of no class: no corners, and too lumpy to pass for a circle."""
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    radius = np.ones_like(angles)
    for k in (2, 3, 4):
        radius += rng.uniform(0.1, 0.25) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
    extent = np.exp(rng.uniform(*np.log(_SHAPE_SIZE)))
    points = extent / 2 * radius[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)
    return rasterize((points + rng.uniform(0, size, 2)).clip(0, size), size)


def _stroke(rng: np.random.Generator, size: int, max_thickness: int) -> np.ndarray:
    """Mask of a line, polyline or arc of thickness 1 to ``max_thickness``."""
    canvas = np.zeros((size, size), np.uint8)
    thickness = int(rng.integers(1, max_thickness + 1))
    if rng.random() < 0.5:
        points = rng.uniform(-size / 4, 5 * size / 4, (rng.integers(2, 5), 2)).astype(np.int32)
        cv2.polylines(canvas, [points], False, 1, thickness)
    else:
        centre = tuple(int(c) for c in rng.uniform(0, size, 2))
        axes = tuple(int(a) for a in rng.uniform(6, size / 2, 2))
        start = rng.uniform(0, 360)
        cv2.ellipse(canvas, centre, axes, rng.uniform(0, 180), start,
                    start + rng.uniform(60, 300), 1, thickness)
    return canvas.astype(bool)


def _sample_object(rng: np.random.Generator, category: str, size: int) -> _Object | None:
    """One object of ``category`` at a random scale and place, inside the image (None: no fit)."""
    log_uniform = lambda bounds: np.exp(rng.uniform(*np.log(bounds)))  # noqa: E731
    if category == "person":
        keypoints, head_r, thickness = person_pose(rng, log_uniform(_PERSON_HEIGHT))
        margin = max(head_r, thickness) + 1
        lo, hi = keypoints.min(0) - margin, keypoints.max(0) + margin
    else:
        polygon = CLUTTER_SHAPES[category](rng, log_uniform(_SHAPE_SIZE))
        lo, hi = polygon.min(0), polygon.max(0)
    offset = random_offset(rng, lo, hi, size)
    if offset is None:
        return None
    if category != "person":
        return _Object(category, rasterize(polygon + offset, size))
    keypoints = keypoints + offset
    polygon = person_polygon(keypoints, head_r, thickness, size)
    if polygon.min() < 0 or polygon.max() > size:
        return None
    return _Object(category, rasterize(polygon, size), keypoints)


def _keeps_visible(owner: np.ndarray, objects: list[_Object]) -> bool:
    """Whether every object still shows ``_MIN_VISIBLE`` of its area (and ``_MIN_AREA`` px)
    in ``owner``, the map of which object each pixel shows (-1: none)."""
    counts = np.bincount(owner[owner >= 0], minlength=len(objects))
    return all(c >= max(_MIN_VISIBLE * o.mask.sum(), _MIN_AREA) for c, o in zip(counts, objects))


def _category(rng: np.random.Generator, person_share: float | None) -> str:
    """A class uniformly, or a person with probability ``person_share`` and else a shape."""
    if person_share is None:
        return CLUTTER_CLASSES[rng.integers(len(CLUTTER_CLASSES))]
    return "person" if rng.random() < person_share else CLUTTER_CLASSES[
        1 + rng.integers(len(CLUTTER_CLASSES) - 1)]


def make_image(rng: np.random.Generator, size: int, person_share: float | None = None,
               categories: Sequence[str] | None = None
               ) -> tuple[np.ndarray, list[_Object], np.ndarray]:
    """One RGB image, its objects and the owner map (which object each pixel shows, -1: none);
    ``person_share``: see ``_category``; ``categories``: the classes to place instead of 1 to 6
    random ones (an object that finds no place is left out)."""
    image = _background(rng, size)
    for _ in range(rng.integers(_DISTRACTORS[0], _DISTRACTORS[1] + 1)):
        mask = _blob(rng, size) if rng.random() < 0.6 else _stroke(rng, size, 4)
        image[mask] = _texture(rng, mask, vivid=True)
    objects: list[_Object] = []
    owner = np.full((size, size), -1, np.int32)
    count = len(categories) if categories else rng.integers(_OBJECTS[0], _OBJECTS[1] + 1)
    for index in range(count):  # each class drawn just before its placement: same stream
        category = categories[index] if categories else _category(rng, person_share)
        for _ in range(_PLACEMENT_TRIES):
            obj = _sample_object(rng, category, size)
            if obj is None:
                continue
            trial = np.where(obj.mask, len(objects), owner)
            if _keeps_visible(trial, objects + [obj]):
                objects.append(obj)
                owner = trial
                image[obj.mask] = _texture(rng, obj.mask, vivid=True)
                break
    for _ in range(rng.integers(_OCCLUDERS[0], _OCCLUDERS[1] + 1)):
        mask = _stroke(rng, size, 2)
        trial = np.where(mask, -1, owner)
        if _keeps_visible(trial, objects):
            owner = trial
            image[mask] = _texture(rng, mask, vivid=True)
    if rng.random() < _BLUR_PROB:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    image += rng.normal(0, rng.uniform(*_NOISE_STD), image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), objects, owner


def _annotation(obj: _Object, visible: np.ndarray, ann_id: int, image_id: int) -> dict:
    """COCO annotation of the visible part of ``obj``; people also get keypoints."""
    rle = mask_util.encode(np.asfortranarray(visible.astype(np.uint8)))
    x, y, w, h = (float(v) for v in mask_util.toBbox(rle))
    ann = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": CLUTTER_CLASSES.index(obj.category) + 1,
        "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
        "area": int(visible.sum()),
        "bbox": [x, y, w, h],
        "iscrowd": 0,
    }
    if obj.keypoints is not None:
        # COCO keypoints are pixel indices (continuous coordinate - 0.5); v=2 where the pixel
        # shows the person, v=1 where something covers it.
        pixels = np.round(obj.keypoints - 0.5, 2)
        rows, cols = (np.clip(np.floor(obj.keypoints[:, i]), 0, visible.shape[i] - 1).astype(int)
                      for i in (1, 0))
        flags = np.where(visible[rows, cols], 2, 1)
        ann["keypoints"] = [v for (px, py), f in zip(pixels, flags)
                            for v in (float(px), float(py), int(f))]
        ann["num_keypoints"] = len(pixels)
    return ann


def _write_split(root: str, split: str, num_images: int, size: int, seed: int,
                 person_share: float | None = None) -> tuple[int, int]:
    """Write the images and both JSON files of one split; return (#objects, #people)."""
    rng = np.random.default_rng([seed, SPLITS.index(split), 1])
    os.makedirs(image_dir(root, split), exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        image, objects, owner = make_image(rng, size, person_share)
        file_name = f"{image_id:06d}.png"
        cv2.imwrite(os.path.join(image_dir(root, split), file_name),
                    cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        images.append({"id": image_id, "file_name": file_name, "height": size, "width": size})
        for index, obj in enumerate(objects):
            annotations.append(_annotation(obj, owner == index, len(annotations) + 1, image_id))
    info = {"description": "slimdet cluttered shapes and stick figures", "seed": seed}
    write_coco_split(root, split, images, annotations, CLUTTER_CLASSES, info)
    return len(annotations), sum("keypoints" in a for a in annotations)


# Images per split of the benchmark; 1000 validation images (about 3400 objects) keep the
# evaluation's share of the noise of a paired S-Net - I-Net difference small.
NUM_TRAIN, NUM_VAL = 2000, 1000


def generate(root: str, num_train: int = NUM_TRAIN, num_val: int = NUM_VAL,
             image_size: int = 128, seed: int = 0, person_share: float | None = None) -> None:
    """Write train/val PNG images and COCO instances/keypoints JSON files under ``root``;
    ``person_share``: the probability that an object is a person (None: all classes alike)."""
    write_splits("clutter", partial(_write_split, person_share=person_share), root, num_train,
                 num_val, image_size, seed)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; see the module docstring."""
    generator_main(argv, __doc__.splitlines()[0], generate, default_root("clutter"), NUM_TRAIN,
                   NUM_VAL)


if __name__ == "__main__":
    main()
