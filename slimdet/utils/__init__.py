"""Helpers shared by slimdet's command-line tools."""
from .model_setup import load_slimmable_model

__all__ = ["load_slimmable_model"]
