"""Checkpoint loading for slimmable models, and conversion of ImageNet-pretrained backbones."""
from .backbone_weights import FPN_BACKBONE_PREFIX, backbone_checkpoint
from .pretrained import (SOURCE_FORMATS, ConvertedBackbone, convert_pretrained,
                         convert_pretrained_file, load_state_dict_file)
from .slimmable_checkpointer import SlimmableCheckpointer, reading_checkpoint
from .state_dict import (check_state_dict_fits, check_widths_match, stock_state_dict,
                         to_slimmable_state_dict)

__all__ = [k for k in globals() if not k.startswith("_")]
