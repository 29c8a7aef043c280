"""``DetectionCheckpointer`` that loads stock and slimmable checkpoints into slimmable models."""
from __future__ import annotations

import os
import pickle
import re
from contextlib import contextmanager
from typing import IO, Any, Callable, Iterator

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts

from ..layers import SlicedBatchNorm2d, get_widths
from .state_dict import (check_is_state_dict, check_state_dict_fits, check_widths_match,
                         key_listing, stock_state_dict, to_slimmable_state_dict,
                         with_frozen_bn_statistics)

__all__ = ["SlimmableCheckpointer", "reading_checkpoint"]

# Parts of ImageNet files (after Detectron2's renaming) that detection does not use, as in
# Detectron2: the classifier (Caffe2 ``fc1000_*``, ``pred_*``; ``fc.*``) and the stem conv bias
# (``conv1_b`` of MSRA's R-50.pkl; Detectron2's stem conv has none, a norm follows).
_IMAGENET_ONLY = re.compile(r"(fc\d*|linear)\.(weight|bias)|stem\.conv1\.bias")

# What unpickling raises on a file that is no checkpoint: random bytes, text, an empty file,
# a zip archive of something else, pickled objects other than tensors (``weights_only``).
_UNREADABLE = (pickle.UnpicklingError, EOFError, KeyError, RuntimeError, UnicodeDecodeError)


def _write_atomically(path: str, mode: str, write: Callable[[IO], Any]) -> None:
    partial = path + ".partial"
    with open(partial, mode) as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


@contextmanager
def reading_checkpoint(path: str) -> Iterator[None]:
    """Turn the errors of reading a file that is no checkpoint into ``ValueError`` naming it."""
    try:
        yield
    except _UNREADABLE as err:
        detail = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {detail}); expected a "
            f"torch.save file of tensors or a Detectron2/Caffe2 .pkl (unzip .zip downloads first)"
        ) from err


class SlimmableCheckpointer(DetectionCheckpointer):
    """Loads, into a slimmable model:

    * slimmable checkpoints (its own saves, ``tools/convert_pretrained.py`` outputs) as they are;
      a stored ``"widths"`` list must equal ``MODEL.SLIMMABLE.WIDTHS``;
    * stock full-width Detectron2 checkpoints (``.pth`` or Detectron2/Detectron ``.pkl``):
      shared weights directly, each width's norm from the leading slice of the single norm.

    Anything that does not fit (wrong shapes, keys of another depth, another width list, a file
    that is no checkpoint) raises ``ValueError`` naming the problem, instead of a partial load.

    Saves record the model's width list and are atomic on local disks: a process killed while
    saving leaves the previous checkpoint and ``last_checkpoint`` intact (see ``save``).
    """

    def save(self, name: str, **kwargs: Any) -> None:
        """Write ``NAME.pth`` (model, checkpointables, ``widths``, ``kwargs``), then point
        ``last_checkpoint`` at it. Each file is written under a temporary name, flushed to disk
        and renamed into place, so no kill leaves a truncated file under a name that resume
        would read."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict(), "widths": list(get_widths(self.model)),
                **{key: obj.state_dict() for key, obj in self.checkpointables.items()}, **kwargs}
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {path}")
        _write_atomically(path, "wb", lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        _write_atomically(os.path.join(self.save_dir, "last_checkpoint"), "w",
                          lambda f: f.write(last_filename_basename))

    def _load_file(self, filename: str) -> dict[str, Any]:
        with reading_checkpoint(filename):
            return super()._load_file(filename)

    def _load_model(self, checkpoint: Any):
        state_dict = checkpoint.get("model")
        check_is_state_dict(state_dict, "the checkpoint")
        self._convert_ndarray_to_tensor(state_dict)
        if "widths" in checkpoint:
            check_widths_match(checkpoint["widths"], get_widths(self.model))
        if all(k.startswith("module.") for k in state_dict):
            state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
        if checkpoint.pop("matching_heuristics", False):
            state_dict = self._match_names(state_dict, checkpoint.get("__author__") == "Caffe2")
        state_dict = to_slimmable_state_dict(self.model, state_dict)
        check_state_dict_fits(self.model, state_dict)
        for name, module in self.model.named_modules():  # Detectron2 drops other shapes
            if isinstance(module, SlicedBatchNorm2d):
                module.fit_calibration_to(state_dict, name + ".")
        checkpoint["model"] = state_dict
        return super()._load_model(checkpoint)

    def _match_names(self, state_dict: dict[str, torch.Tensor],
                     c2_conversion: bool) -> dict[str, torch.Tensor]:
        """Detectron2's name matching (Caffe2 names, suffix matching) against a stock view of the
        model. Detectron2 passes over checkpoint keys it cannot place (e.g. ``res4_6_*`` of an
        R-101 file in an R-50); here they are an error, except the ImageNet classifier and stem
        conv bias, which are dropped. Caffe2 norms without statistics get FrozenBN's (mean 0,
        variance 1)."""
        stock = stock_state_dict(self.model)
        aligned = align_and_update_state_dicts(stock, state_dict, c2_conversion=c2_conversion)
        unplaced = [k for k in aligned if k not in stock]
        unused = [k for k in unplaced if _IMAGENET_ONLY.fullmatch(k)]
        if unused:
            self.logger.info(
                f"Dropping {unused} of the checkpoint: ImageNet-only, as in Detectron2")
        unplaced = [k for k in unplaced if k not in unused]
        if unplaced:
            raise ValueError(
                f"{len(unplaced)} checkpoint keys match no model key by name and shape (a "
                f"checkpoint of another depth or architecture? torchvision and slimmable ImageNet "
                f"files need tools/convert_pretrained.py):{key_listing(unplaced)}")
        matched = {k: v for k, v in aligned.items() if k in stock}
        return with_frozen_bn_statistics(self.model, matched) if c2_conversion else matched
