"""Per-width cost of a slimmable R-CNN against stock Detectron2 models of the same width.

At every width: parameters, GFLOPs per part, inference latency and peak memory of the slimmable
model, of the stock Detectron2 model that ``build_model(stock_config(cfg, w))`` makes and of the
exported model (``export_at_width``); then one training iteration over all widths against
single-width iterations.

Equal work. Untrained weights make the ROI work arbitrary (an untrained RPN keeps few proposals
after NMS; near-uniform class scores put either none or all 80 000 (proposal, class) pairs above a
score threshold, and the per-class NMS over all of them would dominate a narrow width's CPU time
while a trained detector has ~10^3 such candidates). So: ``FIXED_WORK_OPTS`` pins the proposal and
detection counts, and at each width the box score threshold is set so that exactly
``box_candidates`` pairs enter the per-class NMS. The stock model holds the same weights as the
other two, because part of the CPU cost depends on the predicted boxes (mask pasting and keypoint
upsampling run per box at box size, NMS depends on overlaps); stock and exported models thus
compute the same thing and differ only in how they were made: their ratio checks that export
leaves no overhead and shows the timing noise. All counts are reported.
"""
from __future__ import annotations

import os
from functools import partial
from typing import Any, Mapping, Sequence

import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model
from detectron2.solver import build_optimizer
from detectron2.utils.events import EventStorage
from torch import nn

from ..engine import forward_backward_widths
from ..export import export_at_width
from ..layers import get_widths, parse_width_key, width_key, width_scope
from ..modeling.flops import gflops_by_part
from .inputs import positive_quota, random_images, random_training_batch
from .memory import MIB, with_peak_memory
from .timing import time_interleaved

__all__ = ["FIXED_WORK_OPTS", "benchmark_widths"]

# Config options that pin the inference work whatever the weights: no RPN suppression, so
# RPN.POST_NMS_TOPK_TEST proposals (as a trained RPN gives on COCO-sized images), and
# TEST.DETECTIONS_PER_IMAGE detections (with masks or keypoints) from the box candidates.
FIXED_WORK_OPTS = ["MODEL.RPN.NMS_THRESH", 1.0, "MODEL.RPN.POST_NMS_TOPK_TEST", 1000,
                   "TEST.DETECTIONS_PER_IMAGE", 100]



def _infer(model: nn.Module, inputs: list[dict]) -> list[dict]:
    with torch.no_grad():
        return model(inputs)


def _traced_inference(model: nn.Module, inputs: list[dict]) -> tuple[list[dict], int, torch.Tensor]:
    """Outputs, the first image's proposal count and its (proposal, class) probabilities."""
    seen: dict[str, Any] = {}
    hooks = [model.proposal_generator.register_forward_hook(
                 lambda _m, _i, out: seen.update(proposals=out[0])),
             model.roi_heads.box_predictor.register_forward_hook(
                 lambda _m, _i, out: seen.update(predictions=out))]
    try:
        outputs = _infer(model, inputs)
    finally:
        for hook in hooks:
            hook.remove()
    probs = model.roi_heads.box_predictor.predict_probs(seen["predictions"], seen["proposals"])
    return outputs, len(seen["proposals"][0]), probs[0][:, :-1]


def _work(model: nn.Module, inputs: list[dict]) -> dict[str, int]:
    """Proposals, (proposal, class) candidates above the score threshold and detections of the
    first image: the work that could differ between models."""
    outputs, proposals, probs = _traced_inference(model, inputs)
    threshold = model.roi_heads.box_predictor.test_score_thresh
    return {"proposals": proposals, "box_candidates": int((probs > threshold).sum()),
            "detections": len(outputs[0]["instances"])}


def _pin_box_candidates(models: Mapping[str, nn.Module], inputs: list[dict], count: int) -> float:
    """Set every model's box score threshold so that ``count`` (proposal, class) pairs of the
    first image pass it (the models compute the same scores); return the threshold."""
    probs = _traced_inference(next(iter(models.values())), inputs)[2].flatten()
    threshold = probs.sort(descending=True).values[count].item() if probs.numel() > count else 0.0
    for m in models.values():
        m.roi_heads.box_predictor.test_score_thresh = threshold
    return threshold


def _inference_at(cfg: CfgNode, model: nn.Module, width: float, inputs: list[dict],
                  repeats: int, warmup: int, box_candidates: int,
                  device: torch.device) -> dict[str, Any]:
    cfg_w, exported = export_at_width(cfg, model, width)
    stock = build_model(cfg_w).eval()
    stock.load_state_dict(exported.state_dict())
    models = {"slim": model, "stock": stock, "exported": exported.eval()}
    result: dict[str, Any] = {"params_m": sum(p.numel() for p in exported.parameters()) / 1e6}
    predictor = model.roi_heads.box_predictor
    configured_threshold = predictor.test_score_thresh
    try:
        if box_candidates:
            result["score_threshold"] = _pin_box_candidates(models, inputs, box_candidates)
        result["gflops"] = gflops_by_part(model, inputs)
        timings = time_interleaved({k: partial(_infer, m, inputs) for k, m in models.items()},
                                   repeats, warmup, device)
        work_and_memory = {k: with_peak_memory(partial(_work, m, inputs), device)
                           for k, m in models.items()}
    finally:
        predictor.test_score_thresh = configured_threshold
    result.update({
        "work": {k: work for k, (work, _) in work_and_memory.items()},
        "latency_ms": {k: t.as_dict() for k, t in timings.items()},
        "latency_ratio": {f"{k}/stock": timings[k].median / timings["stock"].median
                          for k in ("slim", "exported")},
        # Interference only adds time, so minima are less noisy on a busy machine.
        "latency_ratio_of_minima": {f"{k}/stock": timings[k].min / timings["stock"].min
                                    for k in ("slim", "exported")},
        "peak_memory_mb": {k: peak / MIB for k, (_, peak) in work_and_memory.items()},
    })
    return result


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: list[dict],
                widths: Sequence[float]) -> None:
    optimizer.zero_grad(set_to_none=True)
    forward_backward_widths(model, batch, widths)
    optimizer.step()


def _training(cfg: CfgNode, model: nn.Module, batch: list[dict], repeats: int, warmup: int,
              device: torch.device) -> dict[str, Any]:
    """One iteration over all widths against one iteration per single width (each: zero grads,
    forward/backward, optimizer step; the learning rate is 0 so the weights stay put)."""
    widths = sorted(get_widths(model), reverse=True)
    cfg_lr0 = cfg.clone()
    cfg_lr0.defrost()
    cfg_lr0.SOLVER.BASE_LR = 0.0
    optimizer = build_optimizer(cfg_lr0, model)
    steps = {"all": partial(_train_step, model, optimizer, batch, widths)}
    steps.update({width_key(w): partial(_train_step, model, optimizer, batch, [w]) for w in widths})
    model.train()
    try:
        with EventStorage():  # Detectron2's training forward logs to the current storage
            timings = time_interleaved(steps, repeats, warmup, device)
            memory = {}
            for name, step in steps.items():
                optimizer.zero_grad(set_to_none=True)  # freeing old grads is not in the peak
                memory[name] = with_peak_memory(step, device)[1] / MIB
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.eval()
    sum_single = sum(timings[width_key(w)].median for w in widths)
    return {
        "widths": widths,
        "roi_positives_per_image": positive_quota(cfg),
        "latency_ms": {k: t.as_dict() for k, t in timings.items()},
        "peak_memory_mb": memory,
        "sum_single_ms": sum_single,
        "time_ratio": timings["all"].median / sum_single,
        "memory_ratio_vs_widest": memory["all"] / memory[width_key(widths[0])],
    }


def benchmark_widths(cfg: CfgNode, model: nn.Module, *, height: int, width: int, repeats: int,
                     warmup: int, box_candidates: int, train_repeats: int, train_images: int,
                     widths: Sequence[float] = ()) -> dict[str, Any]:
    """Measure ``model`` (a slimmable model built from ``cfg``, in eval mode) at ``widths``
    (default: every listed width; a universal model takes any of its range) on
    a random ``height`` x ``width`` image, timing ``repeats`` runs after ``warmup``, with
    ``box_candidates`` (proposal, class) pairs entering the box NMS (0: the config's score
    threshold); then ``train_repeats`` training iterations (none if 0) on ``train_images``
    images. Returns a JSON-ready dict (times in ms, memory in MiB, see
    ``slimdet.benchmark.memory``)."""
    device = torch.device(cfg.MODEL.DEVICE)
    inputs = random_images(height, width, device)
    widths = sorted(widths or get_widths(model))
    result: dict[str, Any] = {
        "input_size": [height, width], "device": str(device), "threads": torch.get_num_threads(),
        "repeats": repeats, "warmup": warmup, "box_candidates": box_candidates,
        "train_repeats": train_repeats,
        "train_images": train_images,
        "slim_fpn": bool(cfg.MODEL.SLIMMABLE.SLIM_FPN),
        "slim_heads": bool(cfg.MODEL.SLIMMABLE.SLIM_HEADS),
        "load_average_start": list(os.getloadavg()), "widths": {},
    }
    for w in widths:
        with width_scope(model, w):
            result["widths"][width_key(w)] = _inference_at(cfg, model, w, inputs, repeats, warmup,
                                                       box_candidates, device)
    if train_repeats:
        batch = random_training_batch(cfg, height, width, device, count=train_images)
        result["train"] = _training(cfg, model, batch, train_repeats, warmup, device)
    result["load_average_end"] = list(os.getloadavg())
    result["summary"] = _summary(result["widths"])
    return result


def _summary(per_width: dict[str, dict]) -> dict[str, Any]:
    """Speedups (slimmable and stock) and backbone+FPN FLOPs of each width relative to the
    widest (ideal FLOPs ratio: w^2), and the largest latency ratios over the widths."""
    widest = max(per_width, key=parse_width_key)

    def speedups(model: str) -> dict[str, float]:
        base = per_width[widest]["latency_ms"][model]["median"]
        return {k: base / v["latency_ms"][model]["median"] for k, v in per_width.items()}

    bb_fpn = {k: v["gflops"]["backbone"] + v["gflops"]["fpn"] for k, v in per_width.items()}
    return {
        "speedup_vs_widest": speedups("slim"),
        "stock_speedup_vs_widest": speedups("stock"),
        "backbone_fpn_gflops_ratio": {k: bb_fpn[k] / bb_fpn[widest] for k in per_width},
        "ideal_ratio": {k: (parse_width_key(k) / parse_width_key(widest)) ** 2 for k in per_width},
        "max_latency_ratio": {r: max(v["latency_ratio"][r] for v in per_width.values())
                              for r in ("slim/stock", "exported/stock")},
        "max_latency_ratio_of_minima": {
            r: max(v["latency_ratio_of_minima"][r] for v in per_width.values())
            for r in ("slim/stock", "exported/stock")},
    }
