"""TorchScript export of a Detectron2 model by tracing (``detectron2.export.TracingAdapter``).

Tracing needs no compiled Detectron2 ops (scripting does for some models). The traced module
takes the image tensor(s) and returns the outputs flattened to a tuple of tensors (for R-CNN the
``Instances`` fields in sorted order, e.g. ``pred_boxes, pred_classes, pred_masks, scores``, then
the image size). The post-processing size of the sample image is baked in: feed images of the
traced size.
"""
from __future__ import annotations

import torch
from detectron2.export import TracingAdapter
from torch import nn

from .verify import max_output_difference

__all__ = ["export_torchscript"]


def export_torchscript(model: nn.Module, inputs: list[dict], path: str) -> float:
    """Trace ``model`` (eval mode) on ``inputs`` (Detectron2 format), save it to ``path``, load
    the file back and return the max difference of its outputs from the eager model's."""
    adapter = TracingAdapter(model.eval(), inputs)
    with torch.no_grad():
        traced = torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)
        traced.save(path)
        loaded = torch.jit.load(path, map_location=adapter.flattened_inputs[0].device)
        return max_output_difference(model(inputs), loaded(*adapter.flattened_inputs))
