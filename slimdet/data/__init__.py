"""Generated datasets of slimdet; importing this package registers them with Detectron2.

As with Detectron2's builtin datasets, registration is lazy: ``synthetic_*`` (solid-colour shapes
and stick figures, for fast tests and the demo) and ``clutter_*`` (nine classes told apart by
shape only, for comparing models) point at ``default_root(name)`` (``$SLIMDET_DATASETS``, default
``datasets``, + ``/synthetic`` or ``/clutter``) and are only read when loaded. Create the files
with ``python -m slimdet.data.synthetic --out <root>`` or ``python -m slimdet.data.clutter``.
"""
from slimdet.data.datasets import CLUTTER_CLASSES, default_root, register_synthetic

register_synthetic(default_root())
register_synthetic(default_root("clutter"), "clutter", CLUTTER_CLASSES, "slimdet.data.clutter")
