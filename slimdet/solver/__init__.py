"""Optimizer additions for slimmable training."""
from .gradient_averaging import average_gradients
from .gradient_clipping import (PER_WIDTH_CLIP_TYPES, FixedNorm, NormPercentile,
                                WidthGradientClipping, full_model_clipping, width_clip_threshold)

__all__ = ["full_model_clipping", "WidthGradientClipping", "FixedNorm", "NormPercentile",
           "PER_WIDTH_CLIP_TYPES", "width_clip_threshold", "average_gradients"]
