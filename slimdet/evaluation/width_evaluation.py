"""Evaluate a slimmable model at every test width and summarise AP against FLOPs."""
from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from typing import Callable

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.utils import comm
from tabulate import tabulate
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..config import eval_widths
from ..layers import parse_width_key, width_key, width_scope
from ..modeling.flops import model_gflops
from ..utils.csv_rows import write_csv

__all__ = ["evaluate_widths", "summarize"]

logger = logging.getLogger(__name__)

# (column title, task, metric) of the summary table; tasks the model lacks are left out.
COLUMNS = [("box AP", "bbox", "AP"), ("AP50", "bbox", "AP50"), ("AP75", "bbox", "AP75"),
           ("mask AP", "segm", "AP"), ("keypoint AP", "keypoints", "AP"),
           ("mIoU", "sem_seg", "mIoU"), ("PQ", "panoptic_seg", "PQ"),
           ("top-1", "classification", "top1")]


def _task_results(results: dict) -> dict:
    """The ``{task: metrics}`` of the first dataset (DefaultTrainer.test nests by dataset name
    when there are several)."""
    if any(task in results for _, task, _ in COLUMNS):
        return results
    return next(iter(results.values()), {})


def _ground_truth_files(datasets) -> dict[str, str]:
    """Absolute annotation file of each test dataset that has one (COCO-format datasets)."""
    files = {}
    for name in datasets:
        json_file = MetadataCatalog.get(name).get("json_file")
        if json_file:
            files[name] = os.path.abspath(json_file)
    return files


def summarize(results: OrderedDict[str, dict], gflops: dict[str, float]) -> list[dict]:
    """One row per width: AP metrics and GFLOPs."""
    rows = []
    for key, res in results.items():
        tasks = _task_results(res)
        row = {"width": parse_width_key(key), "GFLOPs": round(gflops.get(key, float("nan")), 3)}
        for title, task, metric in COLUMNS:
            if task in tasks:
                row[title] = round(float(tasks[task].get(metric, float("nan"))), 2)
        rows.append(row)
    return rows


def evaluate_widths(cfg: CfgNode, model: nn.Module,
                    run: Callable[[float, str], dict],
                    build_test_loader: Callable[[CfgNode, str], object]) -> OrderedDict[str, dict]:
    """Call ``run(width, output_folder)`` at every ``TEST_WIDTHS`` width and report.

    Returns results keyed ``w0.25``, ... (flattened by Detectron2's EvalHook into
    ``w0.25/bbox/AP`` scalars). On the main process, logs a table of AP and GFLOPs per width
    and writes it to ``OUTPUT_DIR/per_width_results.{json,csv}``, with the annotation file each
    test dataset was evaluated against (``ground_truth``), so that the run's saved predictions
    can be matched again later by a process that registered the datasets elsewhere.
    """
    if not cfg.DATASETS.TEST:
        return OrderedDict()
    net = model.module if isinstance(model, DistributedDataParallel) else model
    widths = eval_widths(cfg)
    results: OrderedDict[str, dict] = OrderedDict()
    gflops: dict[str, float] = {}
    sample = None
    if comm.is_main_process():
        sample = [next(iter(build_test_loader(cfg, cfg.DATASETS.TEST[0])))[0]]
    for width in widths:
        with width_scope(net, width):
            folder = os.path.join(cfg.OUTPUT_DIR, "inference", width_key(width))
            results[width_key(width)] = run(width, folder)
            if sample is not None:
                gflops[width_key(width)] = model_gflops(net, sample)
    if comm.is_main_process():
        rows = summarize(results, gflops)
        logger.info("Per-width results (GFLOPs on a %s test image):\n%s",
                    "x".join(map(str, sample[0]["image"].shape[1:])) if sample else "?",
                    tabulate(rows, headers="keys", tablefmt="pipe", floatfmt=".2f"))
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        path = os.path.join(cfg.OUTPUT_DIR, "per_width_results")
        with open(path + ".json", "w") as f:
            json.dump({"rows": rows, "results": results,
                       "ground_truth": _ground_truth_files(cfg.DATASETS.TEST)}, f, indent=2)
        write_csv(path + ".csv", rows)
    return results
