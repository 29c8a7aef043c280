"""Geometry of the synthetic datasets: object outlines as COCO polygons, and stick-figure people
with the 17 COCO keypoints.

Every outline is centred on the origin with extent ``size`` (pixels); the caller places it.
``SHAPES`` are the shapes dataset's (circles and triangles at any rotation); ``CLUTTER_SHAPES``
add five classes and, like all of their shapes, stay within ``_TILT`` degrees of an upright
pose, so that a class is one shape rather than every rotation of it. A person is rendered
supersampled and traced, so its polygon is the drawn figure.
"""
from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_util

from slimdet.data.datasets import KEYPOINT_NAMES

__all__ = ["SHAPES", "CLUTTER_SHAPES", "person_pose", "person_polygon", "rasterize", "box",
           "polygon_area", "random_offset"]

_TILT = 15.0  # degrees a clutter shape may turn from upright
_SUPERSAMPLE = 4  # stick figures are outlined at this many times the image resolution
_SUBPIXEL_BITS = 3  # fixed-point bits for the OpenCV drawing calls


def _rotated(points: np.ndarray, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return points @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).T


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
    return _rotated(corners, rng.uniform(-15, 15))


def _triangle(rng: np.random.Generator, size: float) -> np.ndarray:
    """A roughly equilateral triangle inscribed in a circle of diameter ``size``."""
    spread = np.array([0, 120, 240]) + rng.uniform(-10, 10, 3)
    angles = rng.uniform(0, 2 * np.pi) + np.deg2rad(spread)
    radii = size / 2 * rng.uniform(0.85, 1.0, 3)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _upright_triangle(rng: np.random.Generator, size: float) -> np.ndarray:
    """A roughly equilateral triangle pointing up, inscribed in a circle of diameter ``size``."""
    spread = np.array([0, 120, 240]) + rng.uniform(-10, 10, 3)
    angles = np.deg2rad(spread - 90 + rng.uniform(-_TILT, _TILT))
    radii = size / 2 * rng.uniform(0.85, 1.0, 3)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _star(rng: np.random.Generator, size: float) -> np.ndarray:
    """A five-pointed star, inner radius 0.38-0.5 of the outer one, a point upwards."""
    angles = np.deg2rad(rng.uniform(-_TILT, _TILT) - 90) + np.pi * np.arange(10) / 5
    radii = size / 2 * np.where(np.arange(10) % 2, rng.uniform(0.38, 0.5), 1.0)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _cross(rng: np.random.Generator, size: float) -> np.ndarray:
    """A plus sign with arms 0.3-0.45 of its extent wide, arms about upright."""
    a, b = 0.5, rng.uniform(0.15, 0.225)
    arm = [[b, -b], [a, -b], [a, b], [b, b]]  # one arm, turned four times below
    quarter = np.array([[0, -1], [1, 0]])
    points = np.concatenate([np.array(arm) @ np.linalg.matrix_power(quarter, k).T
                             for k in range(4)])
    return _rotated(size * points, rng.uniform(-_TILT, _TILT))


def _arrow(rng: np.random.Generator, size: float) -> np.ndarray:
    """An arrow (shaft and triangular head) of length ``size``, pointing about right."""
    shaft, head_len, head = rng.uniform(0.1, 0.16), rng.uniform(0.35, 0.5), rng.uniform(0.3, 0.4)
    tip = 0.5
    neck = tip - head_len
    points = [[-0.5, -shaft], [neck, -shaft], [neck, -head], [tip, 0], [neck, head],
              [neck, shaft], [-0.5, shaft]]
    return _rotated(size * np.array(points), rng.uniform(-_TILT, _TILT))


def _crescent(rng: np.random.Generator, size: float) -> np.ndarray:
    """A disc of diameter ``size`` minus an overlapping smaller disc, opening about right."""
    big, small, shift = 0.5, 0.5 * rng.uniform(0.75, 0.9), 0.5 * rng.uniform(0.35, 0.55)
    x = (big ** 2 - small ** 2 + shift ** 2) / (2 * shift)  # where the two circles cross
    y = np.sqrt(big ** 2 - x ** 2)
    outer = np.linspace(np.arctan2(y, x), 2 * np.pi - np.arctan2(y, x), 24)
    inner_start = np.arctan2(y, x - shift)
    inner = np.linspace(2 * np.pi - inner_start, inner_start, 16)[1:-1]
    points = np.concatenate([big * np.stack([np.cos(outer), np.sin(outer)], 1),
                             [shift, 0] + small * np.stack([np.cos(inner), np.sin(inner)], 1)])
    return _rotated(size * points, rng.uniform(-_TILT, _TILT))


def _heart(rng: np.random.Generator, size: float) -> np.ndarray:
    """The classic heart curve scaled to extent ``size``, about upright."""
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    points = np.stack([x, y + 2.5], axis=1) / 34
    return _rotated(size * points, rng.uniform(-_TILT, _TILT))


SHAPES = {"circle": _circle, "rectangle": _rectangle, "triangle": _triangle}
CLUTTER_SHAPES = {"circle": _circle, "rectangle": _rectangle, "triangle": _upright_triangle,
                  "star": _star, "cross": _cross, "arrow": _arrow, "crescent": _crescent,
                  "heart": _heart}


def _limb(start: np.ndarray, side: float, angle_deg: float, length: float) -> np.ndarray:
    """End of a limb leaving ``start`` at ``angle_deg`` from straight down, outwards on ``side``."""
    a = np.deg2rad(angle_deg)
    return start + length * np.array([side * np.sin(a), np.cos(a)])


def random_offset(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray,
                  size: int) -> np.ndarray | None:
    """A uniformly drawn (x, y) shift that puts the extent ``[lo, hi]`` inside a ``size`` x
    ``size`` image with a one-pixel border, or None (drawing nothing) if it does not fit."""
    free = (size - 1) - hi - (1 - lo)
    if (free < 0).any():
        return None
    return 1 - lo + rng.uniform(0, 1, 2) * free


def person_pose(rng: np.random.Generator, height: float) -> tuple[np.ndarray, float, float]:
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


def person_polygon(keypoints: np.ndarray, head_r: float, thickness: float,
                   image_size: int) -> np.ndarray:
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


def rasterize(polygon: np.ndarray, image_size: int) -> np.ndarray:
    """Binary (H, W) mask of a polygon, exactly as COCO tools and Detectron2 decode it."""
    rles = mask_util.frPyObjects([polygon.ravel().tolist()], image_size, image_size)
    return mask_util.decode(mask_util.merge(rles)).astype(bool)


def box(polygon: np.ndarray) -> np.ndarray:
    """XYXY bounding box of a polygon."""
    return np.concatenate([polygon.min(0), polygon.max(0)])


def polygon_area(polygon: np.ndarray) -> float:
    """Exact area of a simple polygon (shoelace formula)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
