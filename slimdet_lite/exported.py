"""An exported all-widths file (``model.pt`` or ``model.onnx`` with its ``model.json``), run at
any of its widths on a BGR image of any size (resized with Pillow, as Detectron2 does)."""
from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np
from PIL import Image

from .rle import encode_rle

__all__ = ["ExportedModel", "resized_size", "MODEL_JSON_VERSION"]

# Version of the contract between tools/export_width.py --all-widths and this runner: the
# inputs, outputs and fields of model.json. Files written before it was versioned are version 1.
MODEL_JSON_VERSION = 1


def resized_size(height: int, width: int, short: int, longest: int) -> tuple[int, int]:
    """Size after Detectron2's test resize (``ResizeShortestEdge``): the short side to
    ``short``, unless the long side would then exceed ``longest``; ``short`` 0 keeps the size."""
    if short <= 0:
        return height, width
    scale = short / min(height, width)
    new_h, new_w = height * scale, width * scale
    if max(new_h, new_w) > longest:
        shrink = longest / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return int(new_h + 0.5), int(new_w + 0.5)


class _TorchScript:
    """A TorchScript file run without the graph executor's optimisation: with it, the first
    two calls are profiling runs, 15-29x a steady call on the clutter R18 (0.6-0.7 s against
    24-40 ms); without it the first call of a width is within 2x of its later ones, which are
    as fast as with it (docs/deployment.md)."""

    def __init__(self, path: str, threads: Optional[int]):
        import torch
        import torchvision  # noqa: F401  (registers torchvision::nms and roi_align for the file)

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.module = torch.jit.load(path, map_location="cpu").eval()

    def __call__(self, image: np.ndarray, height: int, width: int, index: int) -> list:
        t = self.torch
        with t.no_grad(), t.jit.optimized_execution(False):
            out = self.module(t.from_numpy(image), t.tensor(height), t.tensor(width),
                              t.tensor(index))
        return [o.numpy() for o in out]


class _OnnxRuntime:
    def __init__(self, path: str, threads: Optional[int]):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # its notes on shared initializers are not problems
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(path, options,
                                                    providers=["CPUExecutionProvider"])

    def __call__(self, image: np.ndarray, height: int, width: int, index: int) -> list:
        feed = {"image": image, "height": np.array(height, dtype=np.int64),
                "width": np.array(width, dtype=np.int64),
                "width_index": np.array(index, dtype=np.int64)}
        return self.session.run(None, feed)


_BACKENDS = {".pt": _TorchScript, ".onnx": _OnnxRuntime}


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class ExportedModel:
    """``tools/export_width.py --all-widths`` output, loaded with torch (``.pt``) or ONNX
    Runtime (``.onnx``); ``model.json`` is read from the file's folder.

    Args:
        path: the ``model.pt`` or ``model.onnx`` file.
        threads: intra-op threads of the runtime (default: the runtime's).
        warmup: run the narrowest width once on a small blank image at load, so that the
            runtime's one-time setup is not billed to the first image.
    """

    def __init__(self, path: str, threads: Optional[int] = None, warmup: bool = True):
        suffix = os.path.splitext(path)[1]
        if suffix not in _BACKENDS:
            raise ValueError(f"{path}: expected an exported model.pt or model.onnx")
        description = os.path.join(os.path.dirname(path) or ".", "model.json")
        if not os.path.isfile(description):
            raise FileNotFoundError(f"{description} not found: it is written next to the model "
                                    "by tools/export_width.py --all-widths")
        try:
            with open(description) as f:
                self.description = json.load(f)
            self.widths: list[float] = self.description["widths"]
            self.outputs: list[str] = self.description["outputs"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{description} is not the description tools/export_width.py "
                             f"--all-widths writes ({type(e).__name__}: {e}); export again"
                             ) from e
        version = self.description.get("version", 1)
        if not isinstance(version, int) or version > MODEL_JSON_VERSION:
            raise ValueError(f"{description} is version {version!r} of the export format; this "
                             f"slimdet_lite reads versions up to {MODEL_JSON_VERSION}: update it")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found beside {description}")
        self.path = path
        try:
            self.backend = _BACKENDS[suffix](path, threads)
        except Exception as e:  # each runtime has its own errors for a damaged file
            raise ValueError(f"{path} cannot be loaded ({_first_line(e)}): the file is damaged "
                             "or incomplete; export again") from e
        if warmup:
            narrowest = self.widths.index(min(self.widths))
            try:
                self.backend(np.zeros((3, 64, 64), dtype=np.float32), 64, 64, narrowest)
            except Exception as e:
                raise ValueError(f"{path} loads but does not run as an all-widths export "
                                 f"({_first_line(e)}); export again") from e

    def index(self, width: float) -> int:
        """Position of ``width`` in the file, or ``ValueError`` listing the widths it holds."""
        for i, w in enumerate(self.widths):
            if abs(w - width) < 1e-6:
                return i
        raise ValueError(f"{self.path} holds widths {self.widths}, not {width}")

    def prepare(self, image_bgr: np.ndarray) -> np.ndarray:
        """The network input for a BGR ``H x W x 3`` uint8 image: channel order and test resize
        of ``model.json``, CHW float32."""
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(f"expected a BGR image of shape (H, W, 3), got {image_bgr.shape}")
        spec = self.description["image"]
        image = image_bgr[:, :, ::-1] if spec["channels"] == "RGB" else image_bgr
        height, width = image.shape[:2]
        new_h, new_w = resized_size(height, width, *spec["resize_shortest_edge"])
        if (new_h, new_w) != (height, width):
            # Pillow's bilinear resize, as Detectron2's ResizeTransform does for uint8 images
            # (OpenCV's differs by a grey level here and there, and so would the detections).
            image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(
                (new_w, new_h), Image.BILINEAR))
        return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)

    def arrays(self, image_bgr: np.ndarray, width: float,
               network_input: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
        """Detections at ``width`` as arrays named as Detectron2's ``Instances`` fields, in
        ``image_bgr``'s pixels (``network_input``: an already prepared image)."""
        index = self.index(width)
        image = self.prepare(image_bgr) if network_input is None else network_input
        out = self.backend(image, image_bgr.shape[0], image_bgr.shape[1], index)
        return dict(zip(self.outputs[:-1], out[:-1]))

    def __call__(self, image_bgr: np.ndarray, width: float) -> dict:
        """``{"width": w, "instances": [{"bbox": [x0, y0, x1, y1], "score", "category_id",
        "category", "segmentation" (COCO RLE), "keypoints" ([x, y, score] * K, COCO's pixel
        convention as Detectron2's COCO results)}]}`` in ``image_bgr``'s pixels."""
        fields = self.arrays(image_bgr, width)
        classes = self.description["classes"]
        ids = self.description["category_ids"]
        instances = []
        for i in range(len(fields["scores"])):
            c = int(fields["pred_classes"][i])
            instance = {"bbox": [round(float(v), 3) for v in fields["pred_boxes"][i]],
                        "score": round(float(fields["scores"][i]), 5),
                        "category_id": ids[c], "category": classes[c]}
            if "pred_masks" in fields:
                instance["segmentation"] = encode_rle(fields["pred_masks"][i] > 0)
            if "pred_keypoints" in fields:
                keypoints = fields["pred_keypoints"][i].astype(np.float64)
                keypoints[:, :2] -= 0.5
                instance["keypoints"] = [round(float(v), 3) for v in keypoints.ravel()]
            instances.append(instance)
        return {"width": float(width), "instances": instances}
