"""``DetectionCheckpointer`` that loads stock and slimmable checkpoints into slimmable models."""
from __future__ import annotations

from typing import Any

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts

from .state_dict import check_state_dict_fits, stock_state_dict, to_slimmable_state_dict

__all__ = ["SlimmableCheckpointer"]


class SlimmableCheckpointer(DetectionCheckpointer):
    """Loads, into a slimmable model:

    * slimmable checkpoints (its own saves) as they are;
    * stock full-width Detectron2 checkpoints (``.pth`` or Detectron2/Detectron ``.pkl``):
      shared weights directly, each width's norm from the leading slice of the single norm.

    Anything that does not fit (wrong shapes, keys of another depth) raises ``ValueError``
    listing the keys, instead of a partial load.
    """

    def _load_model(self, checkpoint: Any):
        state_dict = checkpoint["model"]
        self._convert_ndarray_to_tensor(state_dict)
        if all(k.startswith("module.") for k in state_dict):
            state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
        if checkpoint.pop("matching_heuristics", False):
            # Detectron2's name matching (Caffe2 names, suffix matching), against a stock view.
            state_dict = align_and_update_state_dicts(
                stock_state_dict(self.model), state_dict,
                c2_conversion=checkpoint.get("__author__") == "Caffe2")
        state_dict = to_slimmable_state_dict(self.model, state_dict)
        check_state_dict_fits(self.model, state_dict)
        checkpoint["model"] = state_dict
        return super()._load_model(checkpoint)
