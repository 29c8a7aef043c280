"""Inference FLOPs of a Detectron2 model (fvcore), in total and split into an R-CNN's parts:
the one FLOP counter of slimdet."""
from __future__ import annotations

import torch
from detectron2.evaluation.evaluator import inference_context
from detectron2.utils.analysis import FlopCountAnalysis
from torch import nn

__all__ = ["gflops_by_part", "model_gflops"]

# Part name -> module path inside Detectron2's GeneralizedRCNN ("fpn" is the rest of "backbone").
_PARTS = {"backbone": "backbone.bottom_up", "rpn": "proposal_generator", "roi_heads": "roi_heads"}


def gflops_by_part(model: nn.Module, inputs: list[dict]) -> dict[str, float]:
    """GFLOPs (fvcore: one multiply-add is one flop) of one inference on ``inputs``:
    ``backbone`` (ResNet), ``fpn`` (rest of the backbone), ``rpn``, ``roi_heads`` and ``total``.
    They depend on the number of proposals and detections, like the latency."""
    with inference_context(model), torch.no_grad():
        counter = FlopCountAnalysis(model, inputs)
        counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        # TracingAdapter wraps the model as ``model``, hence the prefix.
        by_module = counter.by_module()
    out = {part: by_module.get(f"model.{path}", 0) / 1e9 for part, path in _PARTS.items()}
    out["fpn"] = by_module.get("model.backbone", 0) / 1e9 - out["backbone"]
    out["total"] = counter.total() / 1e9
    return out


def model_gflops(model: nn.Module, inputs: list[dict]) -> float:
    """Inference GFLOPs of ``model`` on ``inputs`` (``gflops_by_part``'s ``total``)."""
    return gflops_by_part(model, inputs)["total"]
