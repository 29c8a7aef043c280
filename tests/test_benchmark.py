"""Smoke run of tools/benchmark_widths.py on a tiny input, and its helpers' contracts."""
from __future__ import annotations

import json
import os

import pytest
import torch

from helpers import REPO, WIDTHS, tool
from slimdet.benchmark import load_eval_ap, time_interleaved, with_peak_memory
from slimdet.layers import parse_width_key

CONFIGS = REPO / "configs" / "COCO"


def test_benchmark_tool_reports_every_width(tmp_path):
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(json.dumps({f"w{w:g}": {"bbox": {"AP": 10 * w}} for w in WIDTHS}))
    tool("benchmark_widths").main([
        "--config-file", str(CONFIGS / "slim_faster_rcnn_R50_FPN_slim_heads.yaml"),
        "--input-size", "64", "96", "--repeats", "1", "--warmup", "0", "--train-repeats", "1",
        "--train-images", "1", "--box-candidates", "200",
        "--output", str(tmp_path), "--eval-json", str(eval_json),
        "MODEL.RPN.POST_NMS_TOPK_TEST", "20", "TEST.DETECTIONS_PER_IMAGE", "5",
        "MODEL.RPN.POST_NMS_TOPK_TRAIN", "50", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32"])

    result = json.loads((tmp_path / "benchmark.json").read_text())
    assert (tmp_path / "benchmark.png").stat().st_size > 0
    assert sorted(map(parse_width_key, result["widths"])) == WIDTHS
    for r in result["widths"].values():
        assert set(r["gflops"]) == {"backbone", "fpn", "rpn", "roi_heads", "total"}
        assert r["params_m"] > 0 and r["gflops"]["total"] > 0
        for model in ("slim", "stock", "exported"):
            assert r["latency_ms"][model]["median"] > 0 and r["peak_memory_mb"][model] > 0
            work = r["work"][model]
            assert work["proposals"] == 20 and work["detections"] == 5
            assert 190 <= work["box_candidates"] <= 200  # 200 unless scores tie at the threshold
        assert set(r["latency_ratio"]) == {"slim/stock", "exported/stock"}
    narrow, full = result["widths"]["w0.25"], result["widths"]["w1"]
    assert narrow["params_m"] < full["params_m"] / 8
    assert narrow["gflops"]["backbone"] < full["gflops"]["backbone"] / 8
    train = result["train"]
    assert set(train["latency_ms"]) == {"all", "w0.25", "w0.5", "w0.75", "w1"}
    assert train["time_ratio"] > 0 and train["memory_ratio_vs_widest"] >= 1 - 1e-6
    summary = result["summary"]
    assert summary["ideal_ratio"]["w0.25"] == pytest.approx(0.0625)
    assert set(summary["backbone_fpn_gflops_ratio"]) == set(result["widths"])


@pytest.mark.parametrize("key", ["0.5", "w0.5"])
def test_eval_json_keys_with_or_without_prefix(tmp_path, key):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"results": {key: {"bbox": {"AP": 30.0}, "segm": {"AP": 27.5}}}}))
    assert load_eval_ap(str(path)) == {0.5: {"bbox": 30.0, "segm": 27.5}}


def test_peak_memory_counts_tensors_alive_together_on_cpu():
    x = torch.ones(1024, 1024)  # allocated before: not counted

    def two_temporaries():
        a = x * 2
        b = a * 2  # a and b alive together: 8 MiB
        del a
        return (b * 2).sum()  # b and the product: 8 MiB again

    _, peak = with_peak_memory(two_temporaries, torch.device("cpu"))
    assert peak >= 2 * x.nbytes and peak < 2 * x.nbytes + 4096


def test_peak_memory_on_cpu_keeps_stderr_but_not_the_profilers_log(capfd):
    def noisy():
        os.write(2, b"written by the call\n")
        return torch.ones(8)

    with_peak_memory(noisy, torch.device("cpu"))
    err = capfd.readouterr().err
    assert "written by the call" in err
    assert "profiler_start" not in err and "SyncActivityProfilerHandler" not in err


def test_interleaved_timing_runs_every_callable_warmup_plus_repeats_times():
    calls = {"a": 0, "b": 0}

    def bump(name):
        calls[name] += 1

    timings = time_interleaved({k: (lambda k=k: bump(k)) for k in calls}, repeats=3, warmup=2,
                               device=torch.device("cpu"))
    assert calls == {"a": 5, "b": 5}
    assert all(t.repeats == 3 and t.min <= t.median <= t.max for t in timings.values())


def test_recipe_benchmark_measures_each_widths_norms_and_each_recipes_step(tmp_path):
    """tools/benchmark_recipes.py: every width's norm in each training iteration (the norms
    differ between iterations: new batches, weights that move), and every recipe timed and its
    memory measured against sum's."""
    result = tool("benchmark_recipes").main([
        "--config-file", str(REPO / "configs" / "Synthetic" / "clutter_mask_rcnn_R18_FPN.yaml"),
        "--input-size", "64", "64", "--images", "1", "--iterations", "2", "--repeats", "1",
        "--output", str(tmp_path), "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.FC_DIM",
        "32", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "16"])
    assert json.loads((tmp_path / "recipes.json").read_text()) == json.loads(json.dumps(result))
    norms = result["gradient_norms"]
    assert sorted(norms) == ["w0.25", "w0.5", "w0.75", "w1"]
    for stats in norms.values():
        assert len(stats["norms"]) == 2 and stats["norms"][0] != stats["norms"][1]
        assert min(stats["norms"]) <= stats["median"] <= max(stats["norms"]) and stats["p10"] > 0
    cost = result["cost"]
    assert sorted(cost["latency_ms"]) == ["autoclip", "sum", "widthclip"]
    assert cost["time_ratio_vs_sum"]["sum"] == 1.0 and cost["extra_memory_mb_vs_sum"]["sum"] == 0
    assert all(m > 0 for m in cost["peak_memory_mb"].values())
