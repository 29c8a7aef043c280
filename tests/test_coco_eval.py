"""FastCOCOEvaluator: the compiled COCOeval gives pycocotools' AP, box, mask and keypoints."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.data import detection_utils as utils
from detectron2.evaluation import COCOEvaluator, coco_evaluation
from detectron2.structures import Boxes, Instances

from slimdet.data.datasets import register_generated
from slimdet.data.synthetic import generate
from slimdet.evaluation import FastCOCOEvaluator, compiled_cocoeval


@pytest.fixture(scope="module")
def val_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate(str(root), num_train=1, num_val=12, image_size=64, seed=2)
    register_generated(str(root), prefix="evalcheck")
    return {"instances": "evalcheck_instances_val", "keypoints": "evalcheck_keypoints_val"}


def _detections(record: dict, g: torch.Generator) -> Instances:
    """Ground truth made into imperfect detections: jittered boxes and keypoints, random
    scores, plus one false positive, so that AP is neither 0 nor 100."""
    h, w = record["height"], record["width"]
    annotations = [dict(a, keypoints=np.reshape(a["keypoints"], (-1, 3))) if "keypoints" in a
                   else a for a in record["annotations"]]  # as Detectron2's mapper shapes them
    gt = utils.annotations_to_instances(annotations, (h, w), mask_format="bitmask")
    n = len(gt)
    boxes = gt.gt_boxes.tensor + torch.randn(n, 4, generator=g) * 2
    out = Instances((h, w), pred_boxes=Boxes(torch.cat([boxes, torch.tensor([[1., 1, 9, 9]])])),
                    scores=torch.rand(n + 1, generator=g),
                    pred_classes=torch.cat([gt.gt_classes, torch.tensor([0])]))
    if gt.has("gt_masks"):
        out.pred_masks = torch.cat([gt.gt_masks.tensor, torch.zeros(1, h, w, dtype=bool)])
    if gt.has("gt_keypoints"):
        kp = gt.gt_keypoints.tensor.clone()
        kp[..., :2] += torch.randn(n, kp.shape[1], 2, generator=g) * 1.5
        out.pred_keypoints = torch.cat([kp, kp[:1]])
    return out


def _evaluate(evaluator, dataset: str) -> dict:
    g = torch.Generator().manual_seed(0)
    evaluator.reset()
    for record in DatasetCatalog.get(dataset):
        evaluator.process([record], [{"instances": _detections(record, g)}])
    return evaluator.evaluate()


@pytest.mark.parametrize("kind,tasks", [("instances", ("bbox", "segm")),
                                        ("keypoints", ("bbox", "keypoints"))])
def test_compiled_cocoeval_gives_pycocotools_ap(val_sets, tmp_path, kind, tasks):
    oks = [0.05] * 17
    official = COCOEvaluator(val_sets[kind], tasks=tasks, output_dir=str(tmp_path / "a"),
                             use_fast_impl=False, kpt_oks_sigmas=oks)
    fast = FastCOCOEvaluator(val_sets[kind], tasks=tasks, output_dir=str(tmp_path / "b"),
                             kpt_oks_sigmas=oks)
    expected = _evaluate(official, val_sets[kind])
    spy = mock.patch.object(coco_evaluation, "_evaluate_predictions_on_coco",
                            wraps=coco_evaluation._evaluate_predictions_on_coco)
    with spy as calls:
        results = _evaluate(fast, val_sets[kind])
    assert compiled_cocoeval() is not None
    assert {c.kwargs["cocoeval_fn"] for c in calls.call_args_list} == {compiled_cocoeval()}
    for task in tasks:
        assert 5 < expected[task]["AP"] < 95
        assert results[task].keys() == expected[task].keys()
        for metric, value in expected[task].items():
            assert results[task][metric] == pytest.approx(value, abs=1e-6, nan_ok=True), \
                (task, metric)
