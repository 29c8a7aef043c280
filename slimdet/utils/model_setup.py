"""A slimmable config and model from a config file, command-line options and weights."""
from __future__ import annotations

import logging
from typing import Optional, Sequence

from detectron2.config import CfgNode, get_cfg
from detectron2.modeling import build_model
from torch import nn

from ..checkpoint import SlimmableCheckpointer
from ..config import add_slimmable_config

__all__ = ["load_slimmable_config", "load_slimmable_model"]


def load_slimmable_config(config_file: str, opts: Sequence[str] = ()) -> CfgNode:
    """Detectron2's config with ``MODEL.SLIMMABLE``, merged from ``config_file`` then ``opts``
    (``KEY VALUE ...``); not frozen, so a tool can set its own keys before freezing it."""
    cfg = get_cfg()
    add_slimmable_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    return cfg


def load_slimmable_model(config_file: str, opts: Sequence[str],
                         weights: Optional[str]) -> tuple[CfgNode, nn.Module]:
    """Frozen config (``config_file`` then ``opts``) and the eval-mode slimmable model, loaded
    from ``weights`` (slimmable or stock checkpoint) or randomly initialised if it is None."""
    cfg = load_slimmable_config(config_file, opts)
    cfg.MODEL.WEIGHTS = weights or ""
    cfg.freeze()
    model = build_model(cfg).eval()
    if weights:
        SlimmableCheckpointer(model).load(weights)
    else:
        logging.getLogger(__name__).warning("no weights given: the model is randomly initialised")
    return cfg, model
