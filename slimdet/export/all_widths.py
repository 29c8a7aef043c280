"""Every width of a slimmable model in one TorchScript or ONNX file that holds each weight once.

Each width is traced on its own (``detectron2.export.TracingAdapter``); the traced graphs slice
the slimmable model's full weights, so all of them refer to the same parameter tensors, and a
scripted ``WidthSwitch`` runs the graph of the width a call asks for. TorchScript and ONNX keep
one copy of a tensor that several graphs use.

The file takes ``image`` (float32 CHW, 0-255, in ``INPUT.FORMAT`` channel order, resized as
Detectron2's test transform does), ``height`` and ``width`` (int64 scalars: the original image
size, to which boxes, masks and keypoints are scaled and masks pasted, as ``GeneralizedRCNN``
post-processes) and ``width_index`` (int64 scalar: the position of the width in
``model.json``'s ``widths``). It returns the ``Instances`` fields in sorted order, then the
size of the network's input (``model.json``'s ``outputs``).
"""
from __future__ import annotations

import json
import os
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.export import TracingAdapter
from detectron2.structures import Instances
from slimdet_lite import MODEL_JSON_VERSION, ExportedModel
from torch import nn

from ..layers import width_scope
from .onnx_graph import align_if_branch_types
from .verify import match_detections

__all__ = ["WidthSwitch", "trace_widths", "export_all_widths", "check_exported",
           "state_dict_bytes", "FORMATS", "INPUT_NAMES"]

FORMATS = {"torchscript": "model.pt", "onnx": "model.onnx"}
INPUT_NAMES = ["image", "height", "width", "width_index"]
_TRACED_ORDER = ["height", "image", "width"]  # TracingAdapter flattens a dict by sorted keys
ONNX_OPSET = 17


class WidthSwitch(nn.Module):
    """Runs the traced model of ``widths[width_index]``."""

    def __init__(self, traced: Sequence[nn.Module]):
        super().__init__()
        self.models = nn.ModuleList(traced)

    def forward(self, image: torch.Tensor, height: torch.Tensor, width: torch.Tensor,
                width_index: torch.Tensor):
        i = 0
        for model in self.models:
            if bool(width_index == i):
                return model(height, image, width)
            i += 1
        raise RuntimeError("width_index is not the position of an exported width")


def _sample(image: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"image": image, "height": torch.tensor(image.shape[1]),
            "width": torch.tensor(image.shape[2])}


def trace_widths(model: nn.Module, widths: Sequence[float],
                 image: torch.Tensor) -> tuple[list[torch.jit.ScriptModule], list[str]]:
    """Trace ``model`` (a slimmable R-CNN, eval mode) at each width on ``image`` (CHW, as the
    model takes it); return the traced graphs and the names of their outputs."""
    sample = _sample(image)
    traced, names = [], []
    for w in widths:
        with width_scope(model, w), torch.no_grad():
            adapter = TracingAdapter(model, [sample]).eval()
            order = [next(k for k, v in sample.items() if v is t)
                     for t in adapter.flattened_inputs]
            if order != _TRACED_ORDER:
                raise RuntimeError(f"TracingAdapter flattened the inputs as {order}, expected "
                                   f"{_TRACED_ORDER}")
            traced.append(torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False))
        instances = adapter.outputs_schema.schemas[0].schemas[0]
        names = list(instances.keys) + ["image_size"]
    model.eval()
    return traced, names


def _classes(cfg: CfgNode) -> dict[str, list]:
    """Class names, dataset category ids and keypoint names of the first test dataset."""
    meta = MetadataCatalog.get(cfg.DATASETS.TEST[0]) if cfg.DATASETS.TEST else None
    num = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    names = list(meta.get("thing_classes", [])) if meta is not None else []
    to_contiguous = meta.get("thing_dataset_id_to_contiguous_id", {}) if meta is not None else {}
    ids = {c: d for d, c in to_contiguous.items()}
    out = {"classes": names if len(names) == num else [str(i) for i in range(num)],
           "category_ids": [int(ids.get(i, i)) for i in range(num)]}
    if cfg.MODEL.KEYPOINT_ON and meta is not None and meta.get("keypoint_names", None):
        out["keypoint_names"] = list(meta.keypoint_names)
    return out


def export_all_widths(cfg: CfgNode, model: nn.Module, widths: Sequence[float], fmt: str,
                      output_dir: str, input_size: tuple[int, int]) -> dict[str, object]:
    """Write ``output_dir/model.pt`` (``fmt`` "torchscript") or ``model.onnx`` ("onnx") holding
    ``widths`` of ``model``, traced on a random image of ``input_size``, and ``model.json``
    describing inputs, outputs, widths and classes; return the description.

    Args:
        cfg: the slimmable config (input format and test resize, classes).
        model: the slimmable model, in eval mode, with the weights to export.
        widths: the widths the file holds, in the order of ``width_index``.
        fmt: "torchscript" or "onnx".
        output_dir: created if missing.
        input_size: (height, width) of the tracing image; the file takes any size.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {sorted(FORMATS)}")
    if not widths:
        raise ValueError("no widths to export")
    if fmt == "onnx" and cfg.MODEL.KEYPOINT_ON:
        # Detectron2 scripts heatmaps_to_keypoints, whose reshape to an unknown rank the ONNX
        # exporter rejects ("advanced indexing on tensor of unknown rank").
        raise ValueError("keypoint models export to TorchScript only (--format torchscript): "
                         "Detectron2's scripted keypoint decoding does not export to ONNX")
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(0)
    image = (torch.rand(3, *input_size, generator=g) * 255).to(device)
    traced, outputs = trace_widths(model.eval(), widths, image)
    switch = torch.jit.script(WidthSwitch(traced).eval())
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, FORMATS[fmt])
    if fmt == "torchscript":
        switch.save(path)
    else:
        sample = _sample(image)
        args = (image, sample["height"], sample["width"], torch.tensor(0))
        with torch.no_grad():
            torch.onnx.export(switch, args, path, dynamo=False, opset_version=ONNX_OPSET,
                              input_names=INPUT_NAMES, output_names=outputs,
                              dynamic_axes={"image": {1: "image_height", 2: "image_width"},
                                            **{name: {0: "detections"}
                                               for name in outputs[:-1]}})
        align_if_branch_types(path)
    description = {
        "version": MODEL_JSON_VERSION, "format": fmt, "file": FORMATS[fmt],
        "widths": [float(w) for w in widths],
        "inputs": INPUT_NAMES, "outputs": outputs,
        "image": {"channels": cfg.INPUT.FORMAT, "layout": "CHW float32, 0-255",
                  "resize_shortest_edge": [int(cfg.INPUT.MIN_SIZE_TEST),
                                           int(cfg.INPUT.MAX_SIZE_TEST)]},
        **_classes(cfg),
    }
    with open(os.path.join(output_dir, "model.json"), "w") as f:
        json.dump(description, f, indent=2)
    return description


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of ``model``'s state dict tensors: what one checkpoint of every width holds."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def check_exported(path: str, reference: Callable[[float, np.ndarray], Instances],
                   image_bgr: np.ndarray, threads: Optional[int] = None) -> dict[float, dict]:
    """Run the exported file at ``path`` at each of its widths on ``image_bgr`` and match its
    detections with ``reference(width, image_bgr)`` (e.g. ``SlimmablePredictor.predict_at``);
    return ``match_detections``'s report per width."""
    exported = ExportedModel(path, threads)
    return {w: match_detections(reference(w, image_bgr), exported.arrays(image_bgr, w))
            for w in exported.widths}
