"""Generated datasets of slimdet; importing this package registers them with Detectron2.

As with Detectron2's builtin datasets, registration is lazy: ``synthetic_*`` (solid-colour shapes
and stick figures, for fast tests and the demo), ``clutter_*`` (nine classes told apart by shape
only, for comparing models) and ``clutter_people_*`` (the same with half of the objects people,
for the keypoint comparison) point at ``default_root(name)`` (``$SLIMDET_DATASETS``, default
``datasets``, + ``/synthetic``, ``/clutter`` or ``/clutter_people``) and are only read when
loaded. Create the files with ``python -m slimdet.data.synthetic --out <root>`` (likewise
``slimdet.data.clutter`` and ``slimdet.data.clutter_people``). ``clutter_classes_{train,val}``
(``slimdet.data.clutter_classes``) is the image classification set of the nine clutter classes
that pretrains backbones.
"""
import os

from slimdet.data.datasets import CLUTTER_CLASSES, SPLITS, default_root, register_generated
from slimdet.data.image_folder import register_image_folder

register_generated(default_root())
register_generated(default_root("clutter"), "clutter", CLUTTER_CLASSES, "slimdet.data.clutter")
register_generated(default_root("clutter_people"), "clutter_people", CLUTTER_CLASSES,
                   "slimdet.data.clutter_people")
for _split in SPLITS:
    register_image_folder(f"clutter_classes_{_split}",
                          os.path.join(default_root("clutter_classes"), _split), CLUTTER_CLASSES,
                          "slimdet.data.clutter_classes")
