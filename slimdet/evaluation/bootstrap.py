"""How much of an AP difference the choice of validation images explains: a paired bootstrap
over images.

COCO's AP of a resampled validation set (images drawn with replacement, an image drawn ``c``
times counting ``c`` times) follows from each image's matches, which do not change: COCOeval's
per-image results (``evalImgs``: each detection's score and whether it matched at each IoU
threshold, each image's ground-truth count) are computed once, and AP is re-accumulated with
every image weighted by its count. Drawing the same images for two models (paired) gives the
spread of their AP difference that comes from the evaluation set alone, to set against the
spread over training seeds.
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import os
from dataclasses import dataclass

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = ["ImageMatches", "image_matches", "weighted_ap", "paired_bootstrap", "run_matches"]


@dataclass
class _CategoryMatches:
    """One category's detections over all images, by descending score."""

    image: np.ndarray  # (D,) image index of each detection
    tp: np.ndarray  # (T, D) matched and not ignored, per IoU threshold
    fp: np.ndarray  # (T, D) unmatched and not ignored
    positives: np.ndarray  # (I,) ground truths that count, per image


@dataclass
class ImageMatches:
    """Per-image COCO matches of one model on one task: what ``weighted_ap`` needs."""

    image_ids: list[int]
    categories: list[_CategoryMatches]
    recall_thresholds: np.ndarray


def image_matches(coco_gt: COCO, results: list[dict], iou_type: str,
                  kpt_oks_sigmas: list[float] | None = None) -> ImageMatches:
    """COCOeval's matches of ``results`` (COCO result dicts) against ``coco_gt`` for
    ``iou_type`` ("bbox", "segm", "keypoints"), area range "all", the largest max-detections
    setting (100; 20 for keypoints), as COCO's headline AP uses."""
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_dt = coco_gt.loadRes(results) if results else COCO()
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        if kpt_oks_sigmas is not None:
            evaluator.params.kpt_oks_sigmas = np.asarray(kpt_oks_sigmas)
        evaluator.params.areaRng = [evaluator.params.areaRng[0]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.evaluate()
    p = evaluator.params
    num_images, thresholds = len(p.imgIds), len(p.iouThrs)
    categories = []
    for k in range(len(p.catIds)):
        per_image = evaluator.evalImgs[k * num_images:(k + 1) * num_images]
        positives = np.array([0 if e is None else int(np.count_nonzero(e["gtIgnore"] == 0))
                              for e in per_image])
        kept = [(i, e) for i, e in enumerate(per_image) if e is not None]
        if kept:
            scores = np.concatenate([e["dtScores"] for _, e in kept])
            order = np.argsort(-scores, kind="mergesort")  # COCOeval's order
            image = np.concatenate([np.full(len(e["dtScores"]), i) for i, e in kept])[order]
            matched = np.concatenate([e["dtMatches"] for _, e in kept], axis=1)[:, order]
            ignored = np.concatenate([e["dtIgnore"] for _, e in kept], axis=1)[:, order]
        else:
            image = np.zeros(0, int)
            matched = ignored = np.zeros((thresholds, 0))
        categories.append(_CategoryMatches(image, (matched > 0) & (ignored == 0),
                                           (matched == 0) & (ignored == 0), positives))
    return ImageMatches(list(p.imgIds), categories, np.asarray(p.recThrs))


def weighted_ap(matches: ImageMatches, counts: np.ndarray | None = None) -> float:
    """COCO AP (0-100) of the validation set in which image ``i`` appears ``counts[i]`` times
    (all once if None); categories without a counted ground truth are left out, as COCO does."""
    counts = np.ones(len(matches.image_ids)) if counts is None else np.asarray(counts, float)
    per_category = []
    for cat in matches.categories:
        positives = float(counts @ cat.positives)
        if positives == 0:
            continue
        weight = counts[cat.image]
        tps, fps = np.cumsum(cat.tp * weight, axis=1), np.cumsum(cat.fp * weight, axis=1)
        recall = tps / positives
        precision = tps / np.maximum(tps + fps, np.spacing(1))
        precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # envelope
        q = np.zeros((len(recall), len(matches.recall_thresholds)))
        for t in range(len(recall)):
            index = np.searchsorted(recall[t], matches.recall_thresholds, side="left")
            inside = index < recall.shape[1]
            q[t, inside] = precision[t, index[inside]]
        per_category.append(q.mean())
    return 100 * float(np.mean(per_category)) if per_category else float("nan")


def paired_bootstrap(a: ImageMatches, b: ImageMatches, samples: int = 1000,
                     seed: int = 0) -> dict:
    """AP(a) - AP(b) on the validation set (``diff``) and over ``samples`` resamplings of its
    images, the same for both: ``std`` and the 95% percentile interval ``ci95``."""
    if a.image_ids != b.image_ids:
        raise ValueError("paired bootstrap needs both models evaluated on the same images")
    rng = np.random.default_rng(seed)
    n = len(a.image_ids)
    diffs = []
    for _ in range(samples):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        diffs.append(weighted_ap(a, counts) - weighted_ap(b, counts))
    return {"diff": weighted_ap(a) - weighted_ap(b), "std": float(np.std(diffs, ddof=1)),
            "ci95": [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))],
            "samples": samples}


@functools.lru_cache(maxsize=4)
def _ground_truth(json_file: str) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(json_file)


def predictions_path(run_dir: str, cfg, width_key: str) -> str:
    """Where a run's evaluation at a width saved its predictions on the first test dataset."""
    return os.path.join(run_dir, "inference", width_key, cfg.DATASETS.TEST[0],
                        "coco_instances_results.json")


def run_matches(run_dir: str, cfg, width_key: str, iou_type: str) -> ImageMatches:
    """``image_matches`` of the predictions a finished run wrote at a width
    (``run_dir/inference/<width_key>/<dataset>/coco_instances_results.json``, Detectron2's
    ``COCOEvaluator`` output) against the ground truth its first test dataset was evaluated
    on (``ground_truth`` in ``per_width_results.json``)."""
    dataset = cfg.DATASETS.TEST[0]
    path = predictions_path(run_dir, cfg, width_key)
    if not os.path.isfile(path):
        raise ValueError(f"{run_dir} has no predictions at {width_key} ({path}) to bootstrap")
    with open(os.path.join(run_dir, "per_width_results.json")) as f:
        json_file = json.load(f).get("ground_truth", {}).get(dataset)
    if not json_file or not os.path.isfile(json_file):
        raise ValueError(f"{run_dir}/per_width_results.json names no annotation file of "
                         f"{dataset} that exists ({json_file}); evaluate the run again with "
                         "tools/train_net.py --eval-only to record it")
    with open(path) as f:
        results = json.load(f)
    sigmas = None
    if iou_type == "keypoints" and cfg.TEST.KEYPOINT_OKS_SIGMAS:
        sigmas = list(cfg.TEST.KEYPOINT_OKS_SIGMAS)
    return image_matches(_ground_truth(json_file), results, iou_type, sigmas)
