"""Detectron2 registration of the generated datasets: shapes and stick figures (``synthetic``)
and the harder cluttered one (``clutter``).

Registration is lazy, like Detectron2's builtin COCO datasets: only paths and static metadata
(classes, keypoint names, flip map) are recorded, and the JSON is read when a dataset is first
loaded. A missing annotation file then raises a FileNotFoundError that says how to generate it,
instead of a deep pycocotools stack trace. The files themselves are written by ``synthetic.py``.
"""
from __future__ import annotations

import functools
import logging
import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

logger = logging.getLogger(__name__)

# Category id in the JSON files = index + 1 (person = 1, as in COCO).
THING_CLASSES = ("person", "circle", "rectangle", "triangle")
CLUTTER_CLASSES = THING_CLASSES + ("star", "cross", "arrow", "crescent", "heart")

# The 17 COCO person keypoints in COCO order; "left" is the figure's own left.
KEYPOINT_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
KEYPOINT_FLIP_MAP = tuple(
    (name, "right_" + name[len("left_") :]) for name in KEYPOINT_NAMES if name.startswith("left_")
)
# Limbs drawn by Detectron2's Visualizer: (keypoint, keypoint, RGB colour).
KEYPOINT_CONNECTION_RULES = (
    ("left_shoulder", "right_shoulder", (255, 200, 0)),
    ("left_shoulder", "left_elbow", (0, 200, 255)),
    ("left_elbow", "left_wrist", (0, 120, 255)),
    ("right_shoulder", "right_elbow", (255, 120, 0)),
    ("right_elbow", "right_wrist", (255, 60, 0)),
    ("left_hip", "right_hip", (255, 200, 0)),
    ("left_hip", "left_knee", (0, 255, 160)),
    ("left_knee", "left_ankle", (0, 200, 100)),
    ("right_hip", "right_knee", (255, 0, 160)),
    ("right_knee", "right_ankle", (200, 0, 100)),
    ("nose", "left_eye", (120, 255, 120)),
    ("nose", "right_eye", (255, 120, 120)),
)

SPLITS = ("train", "val")


def default_root(name: str = "synthetic") -> str:
    """Root of a generated dataset: ``$SLIMDET_DATASETS`` (default ``datasets``) + ``/name``."""
    return os.environ.get("SLIMDET_DATASETS", "datasets") + "/" + name


def annotation_path(root: str, task: str, split: str) -> str:
    """JSON file of ``task`` ("instances" or "person_keypoints") and ``split`` under ``root``."""
    return os.path.join(root, "annotations", f"{task}_{split}.json")


def image_dir(root: str, split: str) -> str:
    """Directory holding the PNG images of ``split`` under ``root``."""
    return os.path.join(root, "images", split)


def _load(json_file: str, image_root: str, name: str, root: str, generator: str) -> list[dict]:
    """Load a registered split, failing clearly when it has not been generated yet."""
    if not os.path.isfile(json_file):
        raise FileNotFoundError(
            f"Annotation file of dataset '{name}' not found: {json_file}. "
            f"Generate the dataset with: python -m {generator} --out {root}"
        )
    return load_coco_json(json_file, image_root, name)


def register_generated(root: str, prefix: str = "synthetic",
                       classes: tuple[str, ...] = THING_CLASSES,
                       generator: str = "slimdet.data.synthetic") -> None:
    """Register a dataset one of slimdet's generators writes (the shapes of
    ``slimdet.data.synthetic``, ``clutter``, ``clutter_people``): ``{prefix}_instances_{train,val}``
    (``classes``) and ``{prefix}_keypoints_{train,val}`` (person keypoints) of its files.

    The files under ``root`` need not exist yet. Names that are already registered are left
    untouched, so calling this twice is a no-op (with a warning if ``root`` differs).
    """
    tasks = (
        ("instances", "instances", list(classes), {}),
        (
            "keypoints",
            "person_keypoints",
            ["person"],
            {
                "keypoint_names": KEYPOINT_NAMES,
                "keypoint_flip_map": KEYPOINT_FLIP_MAP,
                "keypoint_connection_rules": KEYPOINT_CONNECTION_RULES,
            },
        ),
    )
    for kind, task, classes, extra in tasks:
        for split in SPLITS:
            name = f"{prefix}_{kind}_{split}"
            json_file = annotation_path(root, task, split)
            if name in DatasetCatalog.list():
                registered = MetadataCatalog.get(name).get("json_file")
                if registered != json_file:
                    logger.warning(
                        "Dataset '%s' is already registered with %s; ignoring %s.",
                        name,
                        registered,
                        json_file,
                    )
                continue
            image_root = image_dir(root, split)
            loader = functools.partial(_load, json_file, image_root, name, root, generator)
            DatasetCatalog.register(name, loader)
            MetadataCatalog.get(name).set(
                json_file=json_file,
                image_root=image_root,
                evaluator_type="coco",
                thing_classes=classes,
                thing_dataset_id_to_contiguous_id={i + 1: i for i in range(len(classes))},
                **extra,
            )
