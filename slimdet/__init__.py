"""slimdet: slimmable Faster/Mask/Keypoint R-CNN on Detectron2.

Importing ``slimdet`` registers its backbones and heads with Detectron2's registries.
"""
from . import warning_filters  # first: before anything imports Detectron2
from . import data  # registers the synthetic datasets
from .config import add_slimmable_config
from .engine import calibrate_norms
from .export import export_at_width
from .layers import get_width, get_widths, set_width, width_key, width_scope
from .modeling import slimmable_config, stock_config
from .runtime import SlimmablePredictor

__all__ = ["add_slimmable_config", "get_width", "get_widths", "set_width", "width_scope",
           "width_key", "stock_config", "slimmable_config", "export_at_width",
           "SlimmablePredictor", "calibrate_norms"]
