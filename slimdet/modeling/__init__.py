"""Slimmable Detectron2 components; importing registers them."""
from . import backbone, classifier, heads, meta_arch
from .conversion import build_slimmable, slimmify
from .slimmable_config import slimmable_config
from .stock_config import register_stock_name, stock_config

__all__ = ["backbone", "classifier", "heads", "meta_arch", "build_slimmable", "slimmify",
           "slimmable_config", "register_stock_name", "stock_config"]
