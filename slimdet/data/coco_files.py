"""What the dataset generators share: the COCO JSON files of a split (instances and person
keypoints), writing both splits with a summary, and the command line."""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Callable, Optional, Sequence

from slimdet.data.datasets import KEYPOINT_NAMES, SPLITS, annotation_path

__all__ = ["SKELETON", "write_coco_split", "write_splits", "generator_main"]

# (root, split, number of images, image size, seed) -> (objects, people) written.
SplitWriter = Callable[[str, str, int, int, int], tuple[int, int]]

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


def write_splits(name: str, write_split: SplitWriter, root: str, num_train: int, num_val: int,
                 image_size: int, seed: int) -> None:
    """Write the train and val splits of the ``name`` dataset under ``root`` with
    ``write_split`` and print what was written and how long it took."""
    start = time.perf_counter()
    summary = []
    for split, num_images in zip(SPLITS, (num_train, num_val)):
        objects, people = write_split(root, split, num_images, image_size, seed)
        summary.append(f"{split}: {num_images} images, {objects} objects ({people} people)")
    print(f"{name} dataset in {root}: {', '.join(summary)} [{time.perf_counter() - start:.1f}s]")


def generator_main(argv: Optional[Sequence[str]], description: str,
                   generate: Callable[[str, int, int, int, int], None],
                   out: Optional[str], num_train: int, num_val: int,
                   image_size: int = 128) -> None:
    """Command line of a generator: ``--out`` (required unless ``out`` gives a default),
    ``--seed``, ``--num-train``, ``--num-val``, ``--image-size``, passed to ``generate``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=out, required=out is None, help="output root")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-train", type=int, default=num_train)
    parser.add_argument("--num-val", type=int, default=num_val)
    parser.add_argument("--image-size", type=int, default=image_size)
    args = parser.parse_args(argv)
    generate(args.out, args.num_train, args.num_val, args.image_size, args.seed)
