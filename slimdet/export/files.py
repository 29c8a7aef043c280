"""Writing an exported width as files that plain Detectron2 loads."""
from __future__ import annotations

import os

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from torch import nn

__all__ = ["save_export"]


def save_export(cfg_w: CfgNode, model_w: nn.Module, output_dir: str) -> dict[str, str]:
    """Write ``model.pth`` (a ``DetectionCheckpointer`` checkpoint) and ``config.yaml`` (for
    ``get_cfg().merge_from_file``, with ``MODEL.WEIGHTS`` pointing at the checkpoint) to
    ``output_dir``; return both paths."""
    os.makedirs(output_dir, exist_ok=True)
    weights = os.path.join(output_dir, "model.pth")
    DetectionCheckpointer(model_w, save_dir=output_dir).save("model")
    cfg_out = cfg_w.clone()
    cfg_out.defrost()
    cfg_out.MODEL.WEIGHTS = weights
    config = os.path.join(output_dir, "config.yaml")
    with open(config, "w") as f:
        f.write(cfg_out.dump())
    return {"config": config, "weights": weights}
