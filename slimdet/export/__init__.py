"""Export of a slimmable model: one width as plain Detectron2 (config, weights, TorchScript), or
every width in one TorchScript or ONNX file that runs without slimdet (``slimdet_lite``)."""
from .all_widths import FORMATS, check_exported, export_all_widths, state_dict_bytes
from .files import save_export
from .torchscript import export_torchscript
from .verify import MATCH_TOLERANCE, match_detections, match_failures, max_output_difference
from .width_export import export_at_width, width_state_dict

__all__ = [k for k in globals() if not k.startswith("_")]
