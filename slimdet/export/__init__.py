"""Export of one width of a slimmable model to plain Detectron2 (config, weights, TorchScript)."""
from .compare import max_output_difference
from .files import save_export
from .torchscript import export_torchscript
from .width_export import export_at_width, width_state_dict

__all__ = [k for k in globals() if not k.startswith("_")]
