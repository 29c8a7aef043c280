"""Deployment side: profile every width on the device, choose a width from constraints, hold a
latency budget while running, and predict like Detectron2's ``DefaultPredictor``."""
from .choose import choose_width
from .controller import Step, WidthController
from .load_test import load_test_rows, summarize_load_test
from .predictor import SlimmablePredictor
from .profile import WidthProfile, device_name, profile_key, profile_widths, time_set_width
from .visualize import draw_panel, side_by_side, with_caption

__all__ = [k for k in globals() if not k.startswith("_")]
