"""Synthetic datasets of slimdet; importing this package registers them with Detectron2.

As with Detectron2's builtin datasets, registration is lazy: the four ``synthetic_*`` datasets
point at ``default_root()`` (``$SLIMDET_DATASETS``, default ``datasets``, + ``/synthetic``) and
are only read when loaded. Create the files with ``python -m slimdet.data.synthetic --out <root>``.
"""
from slimdet.data.datasets import default_root, register_synthetic

register_synthetic(default_root())
