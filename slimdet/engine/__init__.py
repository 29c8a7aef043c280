"""Slimmable training: all widths per iteration inside Detectron2's engine."""
from .slimmable_step import all_reduce_gradients, forward_backward_widths
from .slimmable_trainer import SlimmableAMPTrainer, SlimmableSimpleTrainer, SlimmableTrainer

__all__ = [k for k in globals() if not k.startswith("_")]
