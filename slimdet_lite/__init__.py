"""slimdet_lite: run an exported slimmable detector (``tools/export_width.py --all-widths``)
with torch or ONNX Runtime, numpy and OpenCV only: no slimdet, no Detectron2.

It is a separate package so that importing it never imports slimdet (whose ``__init__``
registers its models with Detectron2); slimdet reuses its latency controller and RLE encoder.
"""
from .controller import LatencyController, Step
from .draw import draw_detections, with_caption
from .exported import MODEL_JSON_VERSION, ExportedModel
from .profile import load_profile, measure_widths, save_profile
from .rle import decode_rle, encode_rle

__all__ = ["ExportedModel", "MODEL_JSON_VERSION", "LatencyController", "Step", "decode_rle",
           "draw_detections", "encode_rle", "load_profile", "measure_widths", "save_profile",
           "with_caption"]
