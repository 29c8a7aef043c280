"""slimdet's configs, shipped with the package, by their path under ``configs/``, as
``detectron2.model_zoo`` serves Detectron2's: after ``pip install .``,
``get_config_file("COCO/slim_mask_rcnn_R50_FPN.yaml")`` works from any directory."""
from __future__ import annotations

import os
from typing import Sequence

from detectron2.config import CfgNode

from ..utils import load_slimmable_config

__all__ = ["get_config_file", "get_config", "list_configs"]

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def list_configs() -> list[str]:
    """Every config's path under ``configs/``, e.g. ``"COCO/slim_mask_rcnn_R50_FPN.yaml"``."""
    found = []
    for root, _dirs, names in os.walk(CONFIGS, followlinks=True):
        found += [os.path.relpath(os.path.join(root, n), CONFIGS) for n in names
                  if n.endswith(".yaml")]
    return sorted(found)


def get_config_file(config_path: str) -> str:
    """The file of ``config_path`` (relative to ``configs/``); ``FileNotFoundError`` listing
    the configs if there is none."""
    path = os.path.join(CONFIGS, config_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"slimdet has no config {config_path!r}; it has: "
                                f"{', '.join(list_configs())}")
    return path


def get_config(config_path: str, opts: Sequence[str] = ()) -> CfgNode:
    """The config of ``config_path`` with ``MODEL.SLIMMABLE``, then ``opts`` (``KEY VALUE``)."""
    return load_slimmable_config(get_config_file(config_path), opts)
