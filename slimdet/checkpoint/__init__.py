"""Checkpoint loading for slimmable models."""
from .slimmable_checkpointer import SlimmableCheckpointer
from .state_dict import check_state_dict_fits, stock_state_dict, to_slimmable_state_dict

__all__ = [k for k in globals() if not k.startswith("_")]
