"""Slimmable meta-architectures, for those that build a head outside Detectron2's registries.

RetinaNet builds its ``RetinaNetHead`` itself, so no registered head can replace it; this
subclass swaps in the slimmable head and runs RetinaNet's own code otherwise.
"""
from __future__ import annotations

from detectron2.config import CfgNode
from detectron2.modeling import META_ARCH_REGISTRY, RetinaNet
from detectron2.modeling.meta_arch.retinanet import RetinaNetHead

from .conversion import build_slimmable, input_shapes_at
from .stock_config import register_stock_name

__all__ = ["SlimmableRetinaNet"]


@META_ARCH_REGISTRY.register()
class SlimmableRetinaNet(RetinaNet):
    """``RetinaNet`` whose head slims with the FPN (its convs take the FPN's channels)."""

    @classmethod
    def from_config(cls, cfg: CfgNode) -> dict:
        args = super().from_config(cfg)
        features = cfg.MODEL.RETINANET.IN_FEATURES
        args["head"] = build_slimmable(
            cfg, lambda c: RetinaNetHead(c, [input_shapes_at(c)[f] for f in features]))
        return args


register_stock_name("SlimmableRetinaNet", "RetinaNet")
