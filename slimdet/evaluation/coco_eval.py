"""``COCOEvaluator`` on a compiled COCOeval.

Detectron2 computes AP with its C++ ``COCOeval_opt`` when its compiled extension is built, and
otherwise with pycocotools' pure-Python ``COCOeval``, which takes minutes per task on COCO val,
once per width here. Without the extension this evaluator uses faster-coco-eval's
``COCOeval_faster`` (a maintained C++ implementation with pycocotools' interface and results),
handed to Detectron2's ``_evaluate_predictions_on_coco`` through its ``cocoeval_fn`` argument.
"""
from __future__ import annotations

import json
import logging
import os

from detectron2.evaluation import COCOEvaluator, coco_evaluation
from detectron2.utils.file_io import PathManager

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
        results = [r for p in predictions for r in p["instances"]]
        self._to_dataset_ids(results)
        if self._output_dir:
            path = os.path.join(self._output_dir, "coco_instances_results.json")
            with PathManager.open(path, "w") as f:
                json.dump(results, f)
        if not self._do_evaluation:
            return
        for task in sorted(self._tasks or self._tasks_from_predictions(results)):
            # Private, but Detectron2's one function that takes the COCOeval class as argument.
            coco_eval = coco_evaluation._evaluate_predictions_on_coco(
                self._coco_api, results, task, kpt_oks_sigmas=self._kpt_oks_sigmas,
                cocoeval_fn=self._cocoeval, img_ids=img_ids,
                max_dets_per_image=self._max_dets_per_image) if results else None
            self._results[task] = self._derive_coco_results(
                coco_eval, task, class_names=self._metadata.get("thing_classes"))

    def _to_dataset_ids(self, results: list[dict]) -> None:
        """Contiguous class indices of ``results`` -> the dataset's category ids, in place."""
        contiguous = self._metadata.get("thing_dataset_id_to_contiguous_id")
        if not contiguous:
            return
        dataset_id = {c: d for d, c in contiguous.items()}
        for result in results:
            if result["category_id"] not in dataset_id:
                raise ValueError(f"a prediction has class {result['category_id']}, but the "
                                 f"dataset has classes 0..{len(dataset_id) - 1}")
            result["category_id"] = dataset_id[result["category_id"]]
