"""``COCOEvaluator`` on a compiled COCOeval.

Detectron2 computes AP with its C++ ``COCOeval_opt`` when its compiled extension is built, and
otherwise with pycocotools' pure-Python ``COCOeval``, which takes minutes per task on COCO val,
once per width here. Without the extension this evaluator uses faster-coco-eval's
``COCOeval_faster`` (a maintained C++ implementation with pycocotools' interface and results),
which Detectron2 picks up through the module-level name ``COCOeval_opt`` that it calls.
"""
from __future__ import annotations

import logging
from unittest import mock

from detectron2.evaluation import COCOEvaluator
from detectron2.evaluation import coco_evaluation

__all__ = ["FastCOCOEvaluator", "compiled_cocoeval"]

logger = logging.getLogger(__name__)


def compiled_cocoeval() -> type | None:
    """The compiled COCOeval class in use: Detectron2's, else faster-coco-eval's, else None."""
    if coco_evaluation.COCOeval_opt is not coco_evaluation.COCOeval:
        return coco_evaluation.COCOeval_opt
    try:
        from faster_coco_eval import COCOeval_faster
    except ImportError:
        return None
    return COCOeval_faster


class FastCOCOEvaluator(COCOEvaluator):
    """``COCOEvaluator`` whose AP comes from ``compiled_cocoeval()`` (the official pycocotools
    one if there is none, with a warning); same arguments and results."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._cocoeval = compiled_cocoeval()
        if self._cocoeval is None:
            logger.warning("no compiled COCOeval (Detectron2's extension or faster-coco-eval); "
                           "evaluating with pycocotools' slow Python one")
        self._use_fast_impl = self._cocoeval is not None
        if self._cocoeval is not None and self._cocoeval.__module__.startswith("faster_coco_eval"):
            from faster_coco_eval import COCO

            self._coco_api = COCO(self._coco_api.dataset)  # the index its COCOeval reads

    def _eval_predictions(self, predictions, img_ids=None):
        if self._cocoeval is None:
            return super()._eval_predictions(predictions, img_ids)
        with mock.patch.object(coco_evaluation, "COCOeval_opt", self._cocoeval):
            return super()._eval_predictions(predictions, img_ids)
