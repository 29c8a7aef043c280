"""Run-time width selection: choosing from a profile, the adaptive controller (injected clock),
profile files and staleness, SlimmablePredictor, and tools/predict.py and profile_widths.py."""
from __future__ import annotations

import csv
import random

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import slimdet
from helpers import SYNTHETIC_CONFIG, WIDTHS, randomize_norms, synthetic_cfg, tool
from slimdet.checkpoint import SlimmableCheckpointer
from slimdet.export import max_output_difference
from slimdet.layers import SlimLinear, get_width
from slimdet.runtime import (SlimmablePredictor, WidthController, WidthProfile, choose_width,
                             profile_key)

REFERENCE_MS = {0.25: 10.0, 0.5: 20.0, 0.75: 30.0, 1.0: 40.0}


def fake_profile(latency=None, memory=None, gflops=None, key=None) -> WidthProfile:
    """Profile with median latency ``latency[w]``, p90 10% above, and the given costs."""
    latency = latency or REFERENCE_MS
    memory = memory or {w: 100 * w for w in WIDTHS}
    gflops = gflops or {w: 4 * w * w for w in WIDTHS}
    widths = {w: {"latency_ms": {"median": latency[w], "p90": 1.1 * latency[w]},
                  "peak_memory_mb": memory[w], "gflops": gflops[w]} for w in WIDTHS}
    return WidthProfile(key=key or {"threads": 2, "widths": WIDTHS}, widths=widths, repeats=5,
                        warmup=1, set_width_ms=0.1)


# ----------------------------------------------------------------------------- choose_width
@pytest.mark.parametrize("constraints,expected", [
    ({}, 1.0),
    ({"latency_ms": 44.0}, 1.0),                 # p90 of 1.0 is 44: the limit is inclusive
    ({"latency_ms": 43.9}, 0.75),
    ({"latency_ms": 23.0}, 0.5),
    ({"memory_mb": 60.0}, 0.5),
    ({"gflops": 1.0}, 0.5),
    ({"gflops": 0.99}, 0.25),
    ({"latency_ms": 100.0, "memory_mb": 80.0, "gflops": 0.3}, 0.25),  # the tightest one rules
])
def test_choose_width_picks_the_widest_width_meeting_every_constraint(constraints, expected):
    assert choose_width(fake_profile(), **constraints) == expected


def test_choose_width_on_ties_and_statistics():
    tied = fake_profile(latency={0.25: 10.0, 0.5: 20.0, 0.75: 20.0, 1.0: 40.0})
    assert choose_width(tied, latency_ms=22.0) == 0.75  # equal cost: the wider width
    assert choose_width(fake_profile(), latency_ms=21.0) == 0.25  # p90 of 0.5 is 22
    assert choose_width(fake_profile(), latency_ms=21.0, latency_statistic="median") == 0.5


def test_choose_width_names_the_narrowest_widths_figures_when_nothing_fits():
    with pytest.raises(ValueError, match=r"narrowest width 0.25 has latency_ms 11 > 5 \(p90\), "
                                         r"memory_mb 25 > 20"):
        choose_width(fake_profile(), latency_ms=5, memory_mb=20, gflops=100)
    with pytest.raises(ValueError, match="latency_ms must be positive"):
        choose_width(fake_profile(), latency_ms=0)


# ------------------------------------------------------------------------------- controller
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tiny_slimmable() -> nn.Module:
    return nn.Sequential(SlimLinear(WIDTHS, [1, 2, 3, 4], [1, 2, 3, 4]))


def drive(controller: WidthController, clock: FakeClock, calls: int, latency) -> list[float]:
    """Make ``calls`` calls whose duration is ``latency(width)`` ms; return the widths run at."""
    widths = []
    for _ in range(calls):
        widths.append(get_width(controller.model))
        controller.run(lambda: setattr(clock, "now", clock.now +
                                       latency(get_width(controller.model)) / 1e3))
    return widths


def test_controller_steps_down_under_overrun_and_back_up_with_headroom():
    model, clock = tiny_slimmable(), FakeClock()
    controller = WidthController(model, 45.0, REFERENCE_MS, clock=clock)
    assert controller.width == get_width(model) == 1.0  # 40 ms fits 45
    assert set(drive(controller, clock, 20, REFERENCE_MS.get)) == {1.0}

    # Another process takes half the machine: everything takes twice as long.
    loaded = drive(controller, clock, 20, lambda w: 2 * REFERENCE_MS[w])
    assert loaded[:2] == [1.0, 1.0] and loaded[2] < 1.0  # reacts after patience_down calls
    assert set(loaded[4:]) == {0.5}  # 2 x 20 ms fits 45 ms, 2 x 30 ms does not
    assert all(s.latency_ms <= 45 for s in controller.history[-15:])

    # The load goes away: one width at a time, each after patience_up calls of headroom.
    recovered = drive(controller, clock, 40, REFERENCE_MS.get)
    assert recovered[0] == 0.5 and recovered[-1] == 1.0
    steps = [b for a, b in zip(recovered, recovered[1:]) if a != b]
    assert steps == [0.75, 1.0]


def test_controller_does_not_oscillate_on_noisy_latency_at_the_budget():
    model, clock = tiny_slimmable(), FakeClock()
    controller = WidthController(model, 40.0, REFERENCE_MS, clock=clock)
    rng = random.Random(0)
    widths = drive(controller, clock, 300, lambda w: REFERENCE_MS[w] * rng.uniform(0.9, 1.1))
    switches = sum(a != b for a, b in zip(widths, widths[1:]))
    assert switches <= 1 and widths[-1] == 0.75
    # Without hysteresis (no headroom, immediate steps) the same noise makes it flip-flop.
    model, clock = tiny_slimmable(), FakeClock()
    eager = WidthController(model, 40.0, REFERENCE_MS, clock=clock, headroom=1.0,
                            patience_down=1, patience_up=1, smoothing=1.0)
    rng = random.Random(0)
    widths = drive(eager, clock, 300, lambda w: REFERENCE_MS[w] * rng.uniform(0.9, 1.1))
    assert sum(a != b for a, b in zip(widths, widths[1:])) > 20


def test_controller_stays_at_the_narrowest_width_when_nothing_fits_and_checks_arguments():
    model, clock = tiny_slimmable(), FakeClock()
    controller = WidthController(model, 5.0, REFERENCE_MS, clock=clock)
    assert set(drive(controller, clock, 10, REFERENCE_MS.get)) == {0.25}
    with pytest.raises(ValueError, match=r"miss widths \[0.75, 1.0\]"):
        WidthController(model, 5.0, {0.25: 1.0, 0.5: 2.0})
    with pytest.raises(ValueError, match="budget must be positive"):
        WidthController(model, -1.0, REFERENCE_MS)


def test_controller_wraps_the_model_call():
    model = tiny_slimmable()
    controller = WidthController(model, 1e6, REFERENCE_MS)
    out = controller(torch.ones(2, 4))
    assert out.shape == (2, 4) and len(controller.history) == 1
    assert controller.history[0].width == 1.0 and controller.history[0].latency_ms > 0


# ---------------------------------------------------------------------------------- profile
def test_profile_file_round_trip_and_staleness(tmp_path):
    path = tmp_path / "profile.json"
    profile = fake_profile(key={"device": "cpu: X", "threads": 4, "input_size": [480, 640],
                                "config": "abc", "widths": WIDTHS})
    profile.save(str(path))
    assert WidthProfile.load(str(path)) == profile
    assert WidthProfile.load(str(path), expected_key=profile.key) == profile
    stale = dict(profile.key, threads=2, input_size=[128, 128])
    with pytest.raises(ValueError, match=r"stale for this run; threads: profiled 4, now 2; "
                                         r"input_size: profiled \[480, 640\], now \[128, 128\]"):
        WidthProfile.load(str(path), expected_key=stale)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable width profile"):
        WidthProfile.load(str(path))


def test_profile_tool_measures_every_width(tmp_path, capsys):
    out = tmp_path / "profile.json"
    profile = tool("profile_widths").main([
        "--config-file", str(SYNTHETIC_CONFIG), "--input-size", "96", "128", "--output", str(out),
        "--repeats", "3", "--warmup", "1", "--budgets", "1e6", "1e-3"])
    printed = capsys.readouterr().out
    assert "latency budget 1e+06 ms (p90): width 1" in printed
    assert "no width meets the constraints" in printed
    loaded = WidthProfile.load(str(out))
    assert loaded.widths == profile.widths and sorted(loaded.widths) == WIDTHS
    assert loaded.key["input_size"] == [96, 128] and loaded.key["widths"] == WIDTHS
    assert loaded.key["threads"] == torch.get_num_threads()
    for row in loaded.widths.values():
        assert 0 < row["latency_ms"]["median"] <= row["latency_ms"]["p90"]
        assert row["peak_memory_mb"] > 0
    gflops = [loaded.widths[w]["gflops"] for w in WIDTHS]
    assert gflops == sorted(gflops) and gflops[0] < gflops[-1] / 4
    assert 0 < loaded.set_width_ms < 100 and loaded.notes["slimmable_modules"] > 50


# -------------------------------------------------------------------------------- predictor
def random_bgr(seed: int = 0, height: int = 128, width: int = 128) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A slimmable checkpoint of the synthetic Mask R-CNN with non-trivial norms, and its model."""
    from detectron2.modeling import build_model

    torch.manual_seed(0)
    model = build_model(synthetic_cfg()).eval()
    randomize_norms(model)
    folder = tmp_path_factory.mktemp("weights")
    SlimmableCheckpointer(model, save_dir=str(folder)).save("model")
    return str(folder / "model.pth"), model


def test_predictor_equals_the_model_at_that_width(checkpoint):
    path, model = checkpoint
    image = random_bgr()
    inputs = [{"image": torch.as_tensor(image[:, :, ::-1].transpose(2, 0, 1).astype("float32")),
               "height": 128, "width": 128}]  # RGB config, 128x128 needs no resize
    for width in (0.25, 0.75):
        predictor = SlimmablePredictor(synthetic_cfg("MODEL.WEIGHTS", path), width=width)
        assert predictor.width == width
        out = predictor(image)
        with slimdet.width_scope(model, width), torch.no_grad():
            expected = model(inputs)[0]
        assert len(out["instances"]) > 0
        assert max_output_difference(out, expected) == 0.0
        assert predictor.last_latency_ms > 0


def test_adaptive_predictor_starts_from_the_profile_and_checks_it(checkpoint):
    path, _ = checkpoint
    cfg = synthetic_cfg("MODEL.WEIGHTS", path)
    predictor = SlimmablePredictor(cfg, latency_budget_ms=25.0, profile=fake_profile())
    assert predictor.width == 0.5  # p90: 22 ms fits 25, 33 ms does not
    with pytest.raises(ValueError, match="no width meets the constraints"):
        SlimmablePredictor(cfg, latency_budget_ms=5.0, profile=fake_profile())
    other = fake_profile(key={"widths": [0.5, 1.0]})
    with pytest.raises(ValueError, match=r"widths: profiled \[0.5, 1.0\], now \[0.25, 0.5"):
        SlimmablePredictor(cfg, latency_budget_ms=25.0, profile=other)
    with pytest.raises(ValueError, match="either a fixed width or a latency budget"):
        SlimmablePredictor(cfg, width=0.5, latency_budget_ms=25.0)
    with pytest.raises(ValueError, match=r"width 0.6 is not supported; allowed widths"):
        SlimmablePredictor(cfg, width=0.6)


def test_adaptive_predictor_without_profile_measures_every_width_first():
    predictor = SlimmablePredictor(synthetic_cfg(), latency_budget_ms=1e-3)
    assert predictor.controller is None
    for _ in range(3):
        predictor(random_bgr())
    reference = predictor.controller.reference_ms
    assert sorted(reference) == WIDTHS and all(v > 0 for v in reference.values())
    assert predictor.width == 0.25  # nothing meets a microsecond


# ---------------------------------------------------------------------------- predict tool
def _write_video(path, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (128, 96))
    for i in range(frames):
        writer.write(random_bgr(i, 96, 128))
    writer.release()


def _predict(*args):
    return tool("predict").main(["--config-file", str(SYNTHETIC_CONFIG),
                                 "--confidence-threshold", "0.0", *map(str, args)])


def test_predict_tool_draws_every_width_side_by_side_and_single_widths(tmp_path):
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), random_bgr(i, 96, 128))
    written = _predict("--input", tmp_path / "img0.png", "--all-widths", "--repeats", "1",
                       "--output", tmp_path / "all")
    picture = cv2.imread(written[0])
    assert written[0].endswith("img0_widths.png")
    assert picture.shape[1] == 4 * 128 + 3 * 6 and picture.shape[0] > 96  # panels + caption
    written = _predict("--input", tmp_path / "img*.png", "--width", "0.5", "--output",
                       tmp_path / "one")
    assert [p.rsplit("/", 1)[1] for p in written] == ["img0.png", "img1.png"]
    assert cv2.imread(written[1]).shape[1] == 128


def test_predict_tool_adapts_the_width_on_a_video(tmp_path):
    video = tmp_path / "clip.mp4"
    _write_video(video, 8)
    result = _predict("--input", video, "--latency-budget", "0.001", "--output", tmp_path / "out")
    assert result["frames"] == 8
    with open(result["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(8))
    assert rows[0]["width"] == "1" and rows[-1]["width"] == "0.25"  # over budget: steps down
    assert all(r["over_budget"] == "1" for r in rows)
    written = cv2.VideoCapture(result["video"])
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    ok, frame = written.read()
    assert ok and frame.shape[1] == 128 and frame.shape[0] > 96  # frame + caption strip


def test_predict_tool_names_bad_inputs(tmp_path):
    (tmp_path / "broken.png").write_text("not an image")
    (tmp_path / "broken.mp4").write_text("not a video")
    cv2.imwrite(str(tmp_path / "ok.png"), random_bgr(0, 96, 128))
    stale = tmp_path / "profile.json"
    predict = tool("predict")
    cfg = predict.setup_cfg(predict.parse_args(["--config-file", str(SYNTHETIC_CONFIG),
                                                "--input", "x", "--output", "y"]))
    fake_profile(key=dict(profile_key(cfg, 96, 128), threads=999)).save(str(stale))
    cases = [
        (["--input", tmp_path / "broken.png"], "cannot read image .*broken.png"),
        (["--input", tmp_path / "missing*.png"], "no such file"),
        (["--input", tmp_path / "broken.mp4"], "cannot read video .*broken.mp4"),
        (["--input", tmp_path / "ok.png", "--width", "0.6"], "width 0.6 is not supported"),
        (["--input", tmp_path / "ok.png", "--latency-budget", "50", "--profile", stale],
         r"stale for this run; threads: profiled 999, now \d+\. Measure again"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            _predict(*args, "--output", tmp_path / "out")
