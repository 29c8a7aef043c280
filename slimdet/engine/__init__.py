"""Slimmable training: all widths per iteration inside Detectron2's engine."""
from .calibration import calibrate_norms
from .distillation import InplaceDistillation
from .slimmable_step import all_reduce_gradients, forward_backward_widths
from .slimmable_loop import SlimmableAMPTrainer, SlimmableSimpleTrainer, WidthsStep
from .slimmable_trainer import SlimmableTrainer
from .classification_trainer import ClassificationTrainer
from .weight_average import WeightAverage
from .width_sampling import FixedWidths, SandwichWidths, width_schedule

__all__ = [k for k in globals() if not k.startswith("_")]
