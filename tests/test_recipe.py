"""The training recipe: what each width logs, the gradient probe, loss reduction, clipping."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from torch import nn

from helpers import DETERMINISTIC, WIDTHS, tiny_train_cfg, tool
from slimdet.engine import SlimmableSimpleTrainer, SlimmableTrainer, forward_backward_widths
from slimdet.engine.gradient_probe import GradientProbe
from slimdet.engine.progress_printer import WidthProgressPrinter
from slimdet.evaluation.gradient_summary import read_probe, write_probe
from slimdet.engine.weight_average import WeightAverage
from slimdet.layers import width_key
from slimdet.solver import NormPercentile, WidthGradientClipping

# Scalars of a whole step, not of one width.
STEP_KEYS = {"total_loss", "grad_norm", "lr", "data_time", "rank_data_time", "time",
             "eta_seconds"}
MODEL_SCALARS = ("fast_rcnn/cls_accuracy", "fast_rcnn/fg_cls_accuracy", "mask_rcnn/accuracy",
                 "rpn/num_pos_anchors", "roi_head/num_fg_samples")


def test_everything_the_model_logs_is_logged_per_width(tiny_data, tmp_path, caplog):
    """Every scalar of every width reaches the storage and ``metrics.json``; the console gets
    one short line per period: the step's and each width's total loss, time, ETA."""
    cfg = tiny_train_cfg(tmp_path, "SOLVER.MAX_ITER", 2, "DATASETS.TEST", (),
                         "MODEL.SLIMMABLE.GRAD_PROBE_PERIOD", 1)
    trainer = SlimmableTrainer(cfg)
    trainer.resume_or_load(resume=False)
    with caplog.at_level(logging.INFO):
        trainer.train()
    keys = set(trainer.storage.histories())
    labels = [width_key(w) for w in WIDTHS]
    for label in labels:
        assert {f"{label}/{name}" for name in MODEL_SCALARS} <= keys, label
        assert f"{label}/grad_norm" in keys
        assert (f"{label}/grad_cos_widest" in keys) == (label != "w1")
    step_keys = {key for key in keys if key.split("/")[0] not in labels}
    assert {"total_loss", "grad_norm"} <= step_keys <= STEP_KEYS
    with open(tmp_path / "metrics.json") as f:
        last = [json.loads(line) for line in f][-1]
    assert "w0.25/fast_rcnn/fg_cls_accuracy" in last and "fast_rcnn/cls_accuracy" not in last
    for key in ("w0.5/grad_norm", "w0.5/grad_cos_widest", "grad_norm"):  # not a window's median
        assert last[key] == trainer.storage.history(key).latest(), key
    printed = [r.getMessage() for r in caplog.records if "iter: " in r.getMessage()]
    assert printed and all("loss_cls" not in line and "fast_rcnn" not in line for line in printed)
    line = printed[-1]
    assert line.startswith("iter: 2/2  total_loss: ") and len(line) < 160
    assert line.index("w1: ") < line.index("w0.75: ") < line.index("w0.25: ")
    assert f"w0.25: {trainer.storage.history('w0.25/total_loss').median(20):.4g}" in line


def test_progress_line_has_the_eta_and_the_widths_widest_first(caplog):
    printer = WidthProgressPrinter(max_iter=10)
    with EventStorage(0) as storage, caplog.at_level(logging.INFO):
        for it in range(5):
            storage.iter = it
            storage.put_scalars(time=0.5, total_loss=6.0, lr=0.02, **{
                "w0.25/total_loss": 4.0, "w1/total_loss": 2.0, "w1/loss_cls": 1.0})
        printer.write()
        assert storage.latest()["eta_seconds"][0] == pytest.approx(2.5)  # 0.5 s x 5 left
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("eta: 0:00:02  iter: 5/10  total_loss: 6  (w1: 2  w0.25: 4)  "
                           "time: 0.500 s  lr: 0.02")  # then max_mem on CUDA


def _batch():
    """Two 64x64 images with two boxes each."""
    g = torch.Generator().manual_seed(0)
    batch = []
    for i in range(2):
        inst = Instances((64, 64))
        inst.gt_boxes = Boxes(torch.tensor([[4.0, 6.0, 30.0, 40.0], [28.0, 20.0, 60.0, 58.0]]) + i)
        inst.gt_classes = torch.tensor([i, 2])
        batch.append({"image": torch.rand(3, 64, 64, generator=g) * 255, "instances": inst,
                      "height": 64, "width": 64})
    return batch


def _flat_grad(model: nn.Module) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in model.parameters()])


def _gradients_alone(tmp_path) -> tuple[nn.Module, list, dict[float, torch.Tensor]]:
    """A deterministic box-only model, one batch, and the flat gradient of widths 1.0 and 0.5
    each trained alone on it."""
    torch.manual_seed(0)
    model = build_model(tiny_train_cfg(tmp_path, "MODEL.MASK_ON", False, *DETERMINISTIC))
    data = _batch()
    alone = {}
    for width in (1.0, 0.5):
        model.zero_grad(set_to_none=True)
        with EventStorage(0):  # the model logs its scalars there
            forward_backward_widths(model, data, [width])
        alone[width] = _flat_grad(model)
    return model, data, alone


def test_probe_and_mean_reduction_measure_each_widths_own_gradient(tmp_path):
    """A step over widths 1.0 and 0.5 with ``loss_reduction="mean"`` accumulates (g1 + g0.5)/2,
    where g_w is the gradient of width w's loss alone; the probe reports |g0.5|/2, the cosine
    of g0.5 with g1 and the norm of the sum."""
    model, data, alone = _gradients_alone(tmp_path)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    trainer = SlimmableSimpleTrainer(model, [data], optimizer, widths=[1.0, 0.5],
                                     loss_reduction="mean", probe_period=1)
    with EventStorage(0) as storage:
        trainer.run_step()
        latest = {k: v for k, (v, _) in storage.latest().items()}
    g1, g05 = alone[1.0], alone[0.5]
    assert torch.allclose(_flat_grad(model), (g1 + g05) / 2, rtol=1e-4, atol=1e-7)
    g1, g05 = g1.double(), g05.double()  # norms of 11.6M float32 terms, summed in float64
    assert latest["w0.5/grad_norm"] == pytest.approx(float(g05.norm()) / 2, rel=1e-5)
    assert latest["w1/grad_norm"] == pytest.approx(float(g1.norm()) / 2, rel=1e-5)
    cos = float(g1 @ g05 / (g1.norm() * g05.norm()))
    assert latest["w0.5/grad_cos_widest"] == pytest.approx(cos, abs=1e-5)
    assert latest["grad_norm"] == pytest.approx(float((g1 + g05).norm()) / 2, rel=1e-5)
    assert latest["total_loss"] == pytest.approx(
        (latest["w1/total_loss"] + latest["w0.5/total_loss"]) / 2, rel=1e-6)


def test_per_width_clipping_caps_each_widths_own_gradient_before_the_sum(tmp_path):
    """Widths 1.0 and 0.5 with a threshold between their gradients' norms: the larger one is
    scaled to the threshold, the other added as it is; each width logs its norm before."""
    model, data, alone = _gradients_alone(tmp_path)
    norms = {w: float(g.double().norm()) for w, g in alone.items()}  # 11.6M float32 terms
    threshold = sum(norms.values()) / 2
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    trainer = SlimmableSimpleTrainer(model, [data], optimizer, widths=[1.0, 0.5],
                                     width_clip=threshold, probe_period=1)
    with EventStorage(0) as storage:
        trainer.run_step()
        latest = {k: v for k, (v, _) in storage.latest().items()}
    expected = sum(g * min(1.0, threshold / norms[w]) for w, g in alone.items())
    assert torch.allclose(_flat_grad(model), expected, rtol=1e-4, atol=1e-7)
    for width, label in ((1.0, "w1"), (0.5, "w0.5")):
        assert latest[f"{label}/clip_norm"] == pytest.approx(norms[width], rel=1e-4)
        assert latest[f"{label}/grad_norm"] == pytest.approx(min(norms[width], threshold),
                                                             rel=1e-5)


def test_width_clipping_reads_unscaled_gradients_and_keeps_what_was_there():
    p, fresh = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))
    clipping = WidthGradientClipping([p, fresh], threshold=1.0)
    p.grad = torch.tensor([1.0, 1.0])

    def backward():  # as autograd: adds (6, 8) to p and creates fresh's gradient (0)
        assert p.grad is None  # the width back-propagates into empty gradients
        p.grad = torch.tensor([6.0, 8.0])
        fresh.grad = torch.zeros(1)

    assert clipping(backward, "w1", scale=2.0) == pytest.approx(5.0)  # (6, 8) / 2
    assert p.grad.tolist() == pytest.approx([1.0 + 6 / 5, 1.0 + 8 / 5], rel=1e-5)
    assert fresh.grad.tolist() == [0.0]


def test_norm_percentile_follows_each_widths_own_history():
    threshold = NormPercentile(50)
    assert threshold("w1", 4.0) == 4.0  # the first step is its own history: never clipped
    assert threshold("w1", 2.0) == pytest.approx(3.0)  # median of (4, 2)
    assert threshold("w0.5", 10.0) == 10.0  # another width, another history
    assert threshold("w1", float("inf")) == float("inf")  # an overflow is not history
    resumed = NormPercentile(50)
    resumed.load_state_dict(threshold.state_dict())
    assert resumed.history == {"w1": [4.0, 2.0], "w0.5": [10.0]}
    assert resumed("w1", 9.0) == threshold("w1", 9.0) == 4.0
    for bad in (0, 101):
        with pytest.raises(ValueError, match="PERCENTILE must be in"):
            NormPercentile(bad)
    norms = torch.rand(300, generator=torch.Generator().manual_seed(0)).tolist()
    for p in (10.0, 37.5, 100.0):  # numpy's linear interpolation at every step
        threshold = NormPercentile(p)
        assert [threshold("w1", x) for x in norms] == pytest.approx(
            [float(np.percentile(norms[: i + 1], p)) for i in range(len(norms))], abs=1e-12)


def test_percentile_clipping_caps_each_width_at_its_own_history(tmp_path):
    """A step of widths 1.0 and 0.5 after a history of half each width's norm (w1) and twice
    it (w0.5): width 1.0 is clipped at the median of (|g1|/2, |g1|), width 0.5 is not."""
    model, data, alone = _gradients_alone(tmp_path)
    norms = {w: float(g.double().norm()) for w, g in alone.items()}
    threshold = NormPercentile(50)
    threshold.load_state_dict({"history": {"w1": [norms[1.0] / 2], "w0.5": [2 * norms[0.5]]}})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    trainer = SlimmableSimpleTrainer(model, [data], optimizer, widths=[1.0, 0.5],
                                     width_clip=threshold)
    with EventStorage(0):
        trainer.run_step()
    expected = alone[1.0] * 0.75 + alone[0.5]
    assert torch.allclose(_flat_grad(model), expected, rtol=1e-4, atol=1e-7)
    assert threshold.history["w1"][-1] == pytest.approx(norms[1.0], rel=1e-4)
    assert trainer.state_dict()["width_clipping"]["history"] == threshold.history


def test_gradient_probe_takes_increments():
    p = nn.Parameter(torch.zeros(2))
    probe = GradientProbe([p])
    probe.start()
    p.grad = torch.tensor([3.0, 4.0])  # gradients scaled by 2 (a gradient scaler's)
    assert probe.measure(scale=2.0) == {"grad_norm": 2.5}
    p.grad = torch.tensor([3.0, 5.0])  # the second width added (0, 1), that is (0, 0.5)
    assert probe.measure(scale=2.0) == pytest.approx({"grad_norm": 0.5, "grad_cos_widest": 0.8})
    assert probe.total_norm(scale=2.0) == pytest.approx(34 ** 0.5 / 2)


def test_probe_summary_reads_metrics_and_keeps_records(tmp_path, capsys):
    rows = [{"iteration": it, "w0.5/grad_norm": float(it), "w0.5/loss_cls": 1.0,
             "grad_norm": 2.0 * it} for it in range(19, 220, 20)]  # 19, 39, ..., 219
    (tmp_path / "metrics.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    summary = tool("probe_summary").main([str(tmp_path), "--from", "100"])[str(tmp_path)]
    assert summary["w0.5/grad_norm"] == {"median": 169.0, "p10": 129.0, "p90": 209.0,
                                         "count": 6}  # 119, 139, ..., 219
    assert sorted(summary) == ["grad_norm", "w0.5/grad_norm"]  # no loss
    assert "| `w0.5/grad_norm` | 169 | 129 to 209 | 6 |" in capsys.readouterr().out
    assert write_probe(str(tmp_path))
    (tmp_path / "metrics.json").unlink()
    assert read_probe(str(tmp_path))["grad_norm"][-1] == [219, 438.0]
    with pytest.raises(SystemExit, match="no gradient probe scalars"):
        tool("probe_summary").main([str(tmp_path / "missing")])


def test_gradient_probe_takes_a_students_loss_terms_apart():
    """Ground truth gradient (1, 1) (the two ground-truth losses together), a distillation term
    against it (-2, -2) and one across it (3, -3); the step's own backward still works."""
    p = nn.Parameter(torch.zeros(2))
    x = torch.ones(2)
    losses = {"loss_cls": p[0] * x[0], "loss_box_reg": p[1] * x[1],
              "distill_roi_cls": -2 * (p * x).sum(), "distill_rpn_cls": 3 * (p[0] - p[1])}
    stats = GradientProbe([p]).term_stats(losses)
    assert stats == pytest.approx({
        "grad_norm_gt": 2 ** 0.5, "grad_norm_distill_roi_cls": 8 ** 0.5,
        "grad_cos_gt_distill_roi_cls": -1.0, "grad_norm_distill_rpn_cls": 18 ** 0.5,
        "grad_cos_gt_distill_rpn_cls": 0.0})
    assert GradientProbe([p]).term_stats({"loss_cls": losses["loss_cls"]}) == {}
    sum(losses.values()).backward()
    assert p.grad.tolist() == [2.0, -4.0]


def test_distilled_step_logs_each_terms_gradient_per_student(tiny_data, tmp_path):
    cfg = tiny_train_cfg(tmp_path, "SOLVER.MAX_ITER", 1, "DATASETS.TEST", (),
                         "MODEL.SLIMMABLE.WIDTHS", [0.5, 1.0],
                         "MODEL.SLIMMABLE.GRAD_PROBE_PERIOD", 1,
                         "MODEL.SLIMMABLE.DISTILL.ENABLED", True)
    trainer = SlimmableTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    keys = set(trainer.storage.histories())
    for term in ("distill_rpn_cls", "distill_roi_cls", "distill_roi_loc"):
        assert {f"w0.5/grad_norm_{term}", f"w0.5/grad_cos_gt_{term}"} <= keys, sorted(keys)
        assert -1 <= trainer.storage.history(f"w0.5/grad_cos_gt_{term}").latest() <= 1
    assert "w0.5/grad_norm_gt" in keys and not any(k.startswith("w1/grad_norm_") for k in keys)


def _clipped_optimizer(tmp_path, clip_value, clip_type="full_model"):
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False))
    cfg = tiny_train_cfg(tmp_path, "SOLVER.CLIP_GRADIENTS.ENABLED", True,
                         "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", clip_type,
                         "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", clip_value, "SOLVER.BASE_LR", 1.0,
                         "SOLVER.MOMENTUM", 0.0, "SOLVER.WEIGHT_DECAY", 0.0)
    return model, SlimmableTrainer.build_optimizer(cfg, model)


@pytest.mark.parametrize("scale", [1.0, 0.1], ids=["clipped", "below-threshold"])
def test_full_model_clipping_caps_the_joint_norm_and_keeps_the_direction(tmp_path, scale):
    model, optimizer = _clipped_optimizer(tmp_path, 1.0)
    grads = [torch.tensor([[1.0, 2.0], [0.0, 0.0]]) * scale, torch.tensor([[0.0, 2.0]]) * scale]
    before = [p.detach().clone() for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()
    optimizer.step()
    norm = 3.0 * scale  # sqrt(1 + 4 + 4)
    assert optimizer.grad_norm == pytest.approx(norm)
    factor = min(1.0, 1.0 / (norm + 1e-6))
    for p, b, g in zip(model.parameters(), before, grads):
        assert torch.allclose(b - p.detach(), g * factor, rtol=1e-6)
    if scale < 1:  # nothing to clip: exactly plain SGD
        assert all(torch.equal(b - p.detach(), g) for p, b, g in
                   zip(model.parameters(), before, grads))


def test_clipping_types_and_bad_recipes_are_named(tiny_data, tmp_path):
    _, per_parameter = _clipped_optimizer(tmp_path, 1.0, clip_type="norm")
    assert "FullModelClipping" not in type(per_parameter).__name__  # Detectron2's own
    with pytest.raises(ValueError, match="CLIP_VALUE must be positive, got 0.0"):
        _clipped_optimizer(tmp_path, 0.0)
    with pytest.raises(ValueError, match="CLIP_VALUE must be positive, got -1.0"):
        SlimmableTrainer(tiny_train_cfg(tmp_path, "SOLVER.CLIP_GRADIENTS.ENABLED", True,
                                        "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "per_width",
                                        "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", -1.0))
    with pytest.raises(ValueError, match="per_width clips the L2 norm: NORM_TYPE must be 2.0"):
        SlimmableTrainer(tiny_train_cfg(tmp_path, "SOLVER.CLIP_GRADIENTS.ENABLED", True,
                                        "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "per_width",
                                        "SOLVER.CLIP_GRADIENTS.NORM_TYPE", 1.0))
    with pytest.raises(ValueError, match="PERCENTILE must be in \\(0, 100\\], got 0.0"):
        SlimmableTrainer(tiny_train_cfg(tmp_path, "SOLVER.CLIP_GRADIENTS.ENABLED", True,
                                        "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "per_width_percentile",
                                        "SOLVER.CLIP_GRADIENTS.PERCENTILE", 0.0))
    cfg = tiny_train_cfg(tmp_path, "MODEL.SLIMMABLE.LOSS_REDUCTION", "avg")
    with pytest.raises(ValueError, match="LOSS_REDUCTION must be 'sum' or 'mean', got 'avg'"):
        SlimmableTrainer(cfg)


class _Clock:
    """What WeightAverage reads of a trainer."""

    def __init__(self, max_iter: int):
        self.iter, self.max_iter = 0, max_iter


def test_weight_average_becomes_the_model_after_the_last_iteration_and_resumes():
    model = nn.Linear(1, 1, bias=False)
    hook = WeightAverage(model, decay=0.5, start_iter=1)
    hook.trainer = _Clock(max_iter=4)
    for it, value in enumerate([9.0, 1.0, 2.0]):  # iteration 0 is before START_ITER
        hook.trainer.iter = it
        model.weight.data.fill_(value)
        hook.after_step()
    assert model.weight.item() == 2.0 and hook.average["weight"].item() == 1.5
    resumed = WeightAverage(model, decay=0.5, start_iter=1)
    resumed.load_state_dict(hook.state_dict())
    resumed.trainer, resumed.trainer.iter = hook.trainer, 3
    model.weight.data.fill_(3.0)
    resumed.after_step()  # the last iteration: the model takes the average
    assert model.weight.item() == 0.5 * 1.5 + 0.5 * 3.0
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\)"):
        WeightAverage(model, decay=1.0)


def test_weight_average_hook_runs_before_the_final_checkpoint(tiny_data, tmp_path):
    cfg = tiny_train_cfg(tmp_path, "SOLVER.MAX_ITER", 2, "DATASETS.TEST", (),
                         "SOLVER.WEIGHT_AVERAGE.DECAY", 0.5)
    trainer = SlimmableTrainer(cfg)
    trainer.resume_or_load(resume=False)
    names = [type(h).__name__ for h in trainer._hooks]
    assert names.index("WeightAverage") < names.index("PeriodicCheckpointer")
    trainer.train()
    final = torch.load(tmp_path / "model_final.pth", weights_only=False)
    average = final["trainer"]["hooks"]["WeightAverage"]["average"]
    key = "roi_heads.box_predictor.cls_score.weight"
    assert torch.equal(final["model"][key], average[key])
