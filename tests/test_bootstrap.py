"""Bootstrap over validation images: weighted AP equals COCO's AP of the resampled set."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from slimdet.evaluation.bootstrap import image_matches, paired_bootstrap, weighted_ap


def _dataset(seed: int = 0, images: int = 8):
    """Ground truth of ``images`` images (two classes, 0-3 boxes each) and noisy detections
    with random scores, some false."""
    rng = np.random.default_rng(seed)
    gt = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"},
                                                            {"id": 2, "name": "b"}]}
    results = []
    for image_id in range(1, images + 1):
        gt["images"].append({"id": image_id, "width": 128, "height": 128})
        for _ in range(rng.integers(0, 4)):
            x, y, w, h = (*rng.uniform(0, 80, 2), *rng.uniform(10, 40, 2))
            cat = int(rng.integers(1, 3))
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id,
                                      "category_id": cat, "bbox": [x, y, w, h],
                                      "area": w * h, "iscrowd": 0})
            jitter = rng.normal(0, 4, 4)
            results.append({"image_id": image_id, "category_id": cat,
                            "bbox": [x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3]],
                            "score": float(rng.uniform())})
        for _ in range(rng.integers(0, 2)):  # false detections
            results.append({"image_id": image_id, "category_id": int(rng.integers(1, 3)),
                            "bbox": [*rng.uniform(0, 80, 2), 20.0, 20.0],
                            "score": float(rng.uniform())})
    return gt, results


def _coco(gt: dict) -> COCO:
    coco = COCO()
    coco.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _coco_ap(gt: dict, results: list[dict]) -> float:
    coco = _coco(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return 100 * evaluator.stats[0]


def _resampled(gt: dict, results: list[dict], counts) -> tuple[dict, list[dict]]:
    """The data set in which image i is physically repeated counts[i] times (new ids)."""
    out = {"images": [], "annotations": [], "categories": gt["categories"]}
    out_results = []
    for image in gt["images"]:
        for _ in range(counts[image["id"] - 1]):
            new_id = len(out["images"]) + 1
            out["images"].append(dict(image, id=new_id))
            out["annotations"] += [dict(a, id=len(out["annotations"]) + 1 + j, image_id=new_id)
                                   for j, a in enumerate(a for a in gt["annotations"]
                                                         if a["image_id"] == image["id"])]
            out_results += [dict(r, image_id=new_id) for r in results
                            if r["image_id"] == image["id"]]
    return out, out_results


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_ap_is_coco_ap_of_the_resampled_set(seed):
    gt, results = _dataset(seed)
    matches = image_matches(_coco(gt), results, "bbox")
    assert weighted_ap(matches) == pytest.approx(_coco_ap(gt, results), abs=1e-9)
    counts = np.random.default_rng(seed + 10).multinomial(8, np.full(8, 1 / 8))
    assert weighted_ap(matches, counts) == pytest.approx(_coco_ap(*_resampled(gt, results,
                                                                              counts)), abs=1e-9)


def test_paired_bootstrap_of_a_model_against_itself_and_a_worse_one():
    gt, results = _dataset(3, images=30)
    coco = _coco(gt)
    good = image_matches(coco, results, "bbox")
    same = paired_bootstrap(good, good, samples=50)
    assert same["diff"] == 0 and same["std"] == 0 and same["ci95"] == [0, 0]
    worse = image_matches(coco, [r for r in results if r["image_id"] % 3], "bbox")  # misses
    paired = paired_bootstrap(good, worse, samples=200)
    assert paired["diff"] > 0 and paired["std"] > 0
    assert paired["ci95"][0] < paired["diff"] < paired["ci95"][1]
    other = image_matches(_coco(_dataset(4, images=31)[0]), [], "bbox")
    with pytest.raises(ValueError, match="same images"):
        paired_bootstrap(good, other)
