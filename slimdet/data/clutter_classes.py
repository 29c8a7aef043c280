"""Deterministic image classification set of the nine clutter classes, for pretraining
backbones before they detect on the clutter benchmark (the paper's protocol).

Each image holds one object of its class (person, circle, rectangle, ...), drawn as the clutter
benchmark draws its objects: random colour and texture, on a textured background with
unlabelled blobs, lines and arcs, so that shape and structure alone give the class. Classes
alternate, so every class has the same number of images. The images come from their own random
stream (seed, split, 2), apart from the detection splits' (seed, split, 1), and are smaller
(64 pixels by default), so none of them is a detection validation image.

Layout: torchvision's ``ImageFolder``, ``ROOT/{train,val}/<class>/<index>.png``.

Usage: ``python -m slimdet.data.clutter_classes --out datasets/clutter_classes [--seed 0]``
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from slimdet.data.clutter import make_image
from slimdet.data.coco_files import generator_main, write_splits
from slimdet.data.datasets import CLUTTER_CLASSES, SPLITS, default_root

__all__ = ["NUM_TRAIN", "NUM_VAL", "IMAGE_SIZE", "generate", "main"]

# Images per split (a multiple of the nine classes) and their size.
NUM_TRAIN, NUM_VAL, IMAGE_SIZE = 2700, 450, 64


def _write_split(root: str, split: str, num_images: int, size: int, seed: int) -> tuple[int, int]:
    """Write ``num_images`` images of ``split``, the classes in turn; return (#objects, #people)."""
    rng = np.random.default_rng([seed, SPLITS.index(split), 2])
    for name in CLUTTER_CLASSES:
        os.makedirs(os.path.join(root, split, name), exist_ok=True)
    for index in range(num_images):
        category = CLUTTER_CLASSES[index % len(CLUTTER_CLASSES)]
        objects: list = []
        while not objects:  # a scene whose object found no place is drawn again
            image, objects, _ = make_image(rng, size, categories=[category])
        cv2.imwrite(os.path.join(root, split, category, f"{index:06d}.png"),
                    cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    people = len(range(0, num_images, len(CLUTTER_CLASSES)))  # "person" is class 0
    return num_images, people


def generate(root: str, num_train: int = NUM_TRAIN, num_val: int = NUM_VAL,
             image_size: int = IMAGE_SIZE, seed: int = 0) -> None:
    """Write the train and val splits under ``root`` in ``ImageFolder`` layout."""
    write_splits("clutter_classes", _write_split, root, num_train, num_val, image_size, seed)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; see the module docstring."""
    generator_main(argv, __doc__.splitlines()[0], generate, default_root("clutter_classes"),
                   NUM_TRAIN, NUM_VAL, IMAGE_SIZE)


if __name__ == "__main__":
    main()
