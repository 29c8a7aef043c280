"""Optimizer additions for slimmable training."""
from .gradient_clipping import WidthGradientClipping, full_model_clipping

__all__ = ["full_model_clipping", "WidthGradientClipping"]
