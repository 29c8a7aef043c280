"""Slimmable Detectron2 components; importing registers them."""
from . import backbone, heads
from .conversion import build_slimmable, slimmify
from .stock_config import stock_config

__all__ = ["backbone", "heads", "build_slimmable", "slimmify", "stock_config"]
