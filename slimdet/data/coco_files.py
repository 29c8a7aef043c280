"""COCO JSON files of a generated split: the instances file and the person-keypoints file."""
from __future__ import annotations

import json
import os
from typing import Sequence

from slimdet.data.datasets import KEYPOINT_NAMES, annotation_path

__all__ = ["SKELETON", "write_coco_split"]

# COCO person skeleton (1-based keypoint indices), stored in the keypoint category.
SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
    [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]  # fmt: skip


def write_coco_split(root: str, split: str, images: list[dict], annotations: list[dict],
                     classes: Sequence[str], info: dict) -> None:
    """Write ``instances_<split>.json`` (every object; category id = index in ``classes`` + 1)
    and ``person_keypoints_<split>.json`` (the annotations that carry ``keypoints``, under the
    one category ``person`` with the COCO keypoint names and skeleton) under ``root``."""
    os.makedirs(os.path.dirname(annotation_path(root, "instances", split)), exist_ok=True)
    categories = [{"id": i + 1, "name": n, "supercategory": n} for i, n in enumerate(classes)]
    person_category = dict(categories[list(classes).index("person")],
                           keypoints=list(KEYPOINT_NAMES), skeleton=SKELETON)
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
        with open(annotation_path(root, task, split), "w") as f:
            json.dump(content, f, separators=(",", ":"))
