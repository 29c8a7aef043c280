"""The keypoint benchmark: clutter scenes in which half of the objects are people.

With every class alike, one object in nine is a person (about 770 people in 2000 training
images), too few for Keypoint R-CNN, which trains on images with people only, and for a
keypoint AP that separates models. Here each object is a person with probability
``PERSON_SHARE`` and otherwise one of the eight shapes, which stay as unlabelled distractors
for the keypoint task.

Usage: ``python -m slimdet.data.clutter_people --out datasets/clutter_people [--seed 0]``
"""
from __future__ import annotations

from functools import partial

from slimdet.data.clutter import NUM_TRAIN, NUM_VAL, generate
from slimdet.data.coco_files import generator_main
from slimdet.data.datasets import default_root

PERSON_SHARE = 0.5


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; see the module docstring."""
    generator_main(argv, __doc__.splitlines()[0], partial(generate, person_share=PERSON_SHARE),
                   default_root("clutter_people"), NUM_TRAIN, NUM_VAL)


if __name__ == "__main__":
    main()
