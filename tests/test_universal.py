"""Universally slimmable models: any width of the range is the stock model of stock_config(cfg, w),
norms shared and sliced (BN calibrated after training), sandwich rule, inplace distillation.
(Backbones at unlisted widths: the universal variants of tests/test_equivalence.py.)"""
from __future__ import annotations

import json

import pytest
import torch
from detectron2.data import build_detection_train_loader
from detectron2.modeling import build_backbone, build_model
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

import slimdet
from helpers import (DETERMINISTIC, GN_R50, build_with_gn_rule, image_inputs,
                      load_leading_slices, randomize_norms, slim_cfg, synthetic_cfg,
                      tiny_train_cfg, universal_gn_groups)
from slimdet.engine import (FixedWidths, InplaceDistillation, SandwichWidths, SlimmableTrainer,
                            calibrate_norms, width_schedule)
from slimdet.checkpoint.state_dict import check_state_dict_fits
from slimdet.engine import forward_backward_widths
from slimdet.engine.distillation import (GROUND_TRUTH_CLS, _predicted_class_l1,
                                        distillation_from_config,
                                        teacher_bounded_l2)
from slimdet.layers import ChannelRule, SlicedGroupNorm, SlimConv2d, SlimmableModule
from slimdet.layers.sliced_norm import add_width_offsets
from slimdet.modeling.conversion import build_slimmable
from slimdet.modeling.stock_config import stock_group_norm_groups

UNIVERSAL = ("MODEL.SLIMMABLE.UNIVERSAL", True)
UNLISTED = [0.3, 0.6, 0.9]


def test_full_model_equals_stock_at_unlisted_widths():
    cfg = slim_cfg("slim_mask_rcnn_R50_FPN.yaml", *GN_R50, *UNIVERSAL,
                   "MODEL.SLIMMABLE.SLIM_HEADS", True)
    model = build_model(cfg).eval()
    randomize_norms(model)
    for width in UNLISTED + [0.25, 1.0]:
        slimdet.set_width(model, width)
        assert slimdet.get_width(model) == width
        stock = build_with_gn_rule(build_model, slimdet.stock_config(cfg, width),
                                   universal_gn_groups(width)).eval()
        load_leading_slices(stock, model, width)
        assert sum(p.numel() for p in stock.parameters()) < sum(
            p.numel() for p in model.parameters()) or width == 1.0
        with torch.no_grad():
            out = model(image_inputs())[0]["instances"]
            ref = stock(image_inputs())[0]["instances"]
        assert len(out) == len(ref) > 0, width
        assert torch.allclose(out.pred_boxes.tensor, ref.pred_boxes.tensor, atol=1e-3), width
        assert torch.equal(out.pred_masks, ref.pred_masks), width


def test_rounding_rule_follows_the_config_values():
    """Width w scales each config value V to int(V * w) and Detectron2 multiplies it in: R50's
    res5 at 0.3 has 8 * int(256 * 0.3) = 608 channels, not int(2048 * 0.3) = 614."""
    cfg = slim_cfg("slim_faster_rcnn_R50_FPN.yaml", *UNIVERSAL)
    assert slimdet.stock_config(cfg, 0.3).MODEL.RESNETS.RES2_OUT_CHANNELS == 76
    backbone = build_backbone(cfg)
    slimdet.set_width(backbone, 0.3)
    bottom_up = backbone.bottom_up
    assert bottom_up.res5[-1].conv3.active_channels() == (8 * int(64 * 0.3), 608)
    assert bottom_up.stem.conv1.active_channels() == (3, 19)
    assert bottom_up.stem(torch.randn(1, 3, 32, 32)).shape[1] == 19
    with pytest.raises(ValueError, match=r"width 0.2 is outside the universal range \[0.25, 1\]"):
        slimdet.set_width(backbone, 0.2)


def test_group_norm_keeps_its_group_size():
    """With GroupNorm, width w runs as floor(32 w) / 32 and every GN layer keeps the group size
    of width 1, so a group normalises the same channels at every width: at 0.3 (= 9/32) the stem
    has 18 channels in 9 groups of 2 and equals the leading channels of the full-width GN."""
    cfg = slim_cfg("slim_faster_rcnn_R50_FPN.yaml", "MODEL.RESNETS.NORM", "GN", *UNIVERSAL)
    assert slimdet.stock_config(cfg, 0.3) == slimdet.stock_config(cfg, 9 / 32)
    assert slimdet.stock_config(cfg, 0.3).MODEL.RESNETS.RES2_OUT_CHANNELS == 72
    assert stock_group_norm_groups(cfg, 0.3) == 9
    backbone = build_backbone(cfg)
    randomize_norms(backbone)
    norm = backbone.bottom_up.stem.conv1.norm
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        full = norm(x)
        slimdet.set_width(backbone, 0.3)
        assert norm.active_channels == 18
        assert torch.allclose(norm(x[:, :18]), full[:, :18], atol=1e-5)
    bad = slim_cfg("slim_faster_rcnn_R50_FPN.yaml", "MODEL.RESNETS.NORM", "GN", *UNIVERSAL,
                   "MODEL.SLIMMABLE.WIDTHS", [0.3, 1.0])
    with pytest.raises(ValueError, match=r"WIDTHS \[0.3, 1.0\] must be such multiples"):
        build_backbone(bad)
    frozen_bn = slim_cfg("slim_faster_rcnn_R50_FPN.yaml", *UNIVERSAL)  # a GN no NORM key names
    with pytest.raises(ValueError, match=r"GroupNorm layers, but none of the MODEL.\*.NORM"):
        build_slimmable(frozen_bn, lambda c: torch.nn.Sequential(
            torch.nn.Conv2d(3, c.MODEL.FPN.OUT_CHANNELS, 1),
            torch.nn.GroupNorm(32, c.MODEL.FPN.OUT_CHANNELS)))


def test_a_new_width_costs_no_cache():
    cfg = synthetic_cfg(*UNIVERSAL)
    model = build_model(cfg).eval()
    convs = [m for m in model.modules() if isinstance(m, SlimConv2d)]
    with torch.no_grad():
        for i in range(12):
            slimdet.set_width(model, 0.25 + 0.06 * i)
            model(image_inputs(height=128))
    assert max(len(c._dense) for c in convs) == 1


def _bn_cfg(*opts):
    """The tiny training config with BatchNorm in an R50 backbone (narrow R18 is no stock
    Detectron2 model)."""
    return tiny_train_cfg("/tmp/unused", "MODEL.RESNETS.DEPTH", 50, "MODEL.RESNETS.NORM", "BN",
                          "MODEL.RESNETS.RES2_OUT_CHANNELS", 256, "MODEL.FPN.NORM", "",
                          "MODEL.ROI_MASK_HEAD.NORM", "", *UNIVERSAL, *opts)


def test_calibration_reproduces_batch_statistics_computed_directly(tiny_data, tmp_path):
    cfg = _bn_cfg(*DETERMINISTIC)
    model = build_model(cfg)
    loader = iter(build_detection_train_loader(cfg))
    batches = [next(loader) for _ in range(3)]
    calibrate_norms(model, [0.6], batches, num_batches=3)

    stock = build_model(slimdet.stock_config(cfg, 0.6)).train()
    with torch.no_grad():  # the stock model's BN statistics, directly: cumulative averages
        slimdet.set_width(model, 0.6)
        load_leading_slices(stock, model, 0.6)
        for m in stock.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        with EventStorage():
            for batch in batches:
                stock(batch)
    ours = {n: m for n, m in model.named_modules() if hasattr(m, "calibrated_mean")}
    theirs = {n: m for n, m in stock.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert ours.keys() == theirs.keys() and len(ours) > 10
    for name, norm in ours.items():
        c = theirs[name].num_features
        assert torch.allclose(norm.calibrated_mean[0, :c], theirs[name].running_mean, atol=1e-5)
        assert torch.allclose(norm.calibrated_var[0, :c], theirs[name].running_var, rtol=1e-4)

    model.eval()
    with torch.no_grad():
        model([{"image": torch.rand(3, 64, 64) * 255}])  # calibrated: runs
        slimdet.set_width(model, 0.7)
        with pytest.raises(RuntimeError, match=r"no statistics for width 0.7.*calibrate_norms"):
            model([{"image": torch.rand(3, 64, 64) * 255}])
    # The statistics are part of the checkpoint.
    fresh = build_model(cfg)
    fresh.load_state_dict(model.state_dict())
    assert fresh.backbone.bottom_up.stem.conv1.norm.calibrated_widths.tolist() == [0.6]


def test_universal_model_with_train_widths_trains_that_list_instead_of_sampling():
    listed = synthetic_cfg(*UNIVERSAL, "MODEL.SLIMMABLE.TRAIN_WIDTHS", [0.25, 0.5, 0.75, 1.0])
    schedule = width_schedule(listed, seed=3)
    assert isinstance(schedule, FixedWidths) and schedule(0) == schedule(7) == [1.0, 0.75, 0.5,
                                                                                 0.25]
    assert isinstance(width_schedule(synthetic_cfg(*UNIVERSAL), seed=3), SandwichWidths)
    with pytest.raises(ValueError, match=r"TRAIN_WIDTHS has widths \[0.2\] not in the universal"):
        width_schedule(synthetic_cfg(*UNIVERSAL, "MODEL.SLIMMABLE.TRAIN_WIDTHS", [0.2, 1.0]), 3)


def test_sandwich_rule_is_a_function_of_seed_and_iteration():
    rule = SandwichWidths(0.25, 1.0, 4, seed=3)
    widths = rule(7)
    assert widths == SandwichWidths(0.25, 1.0, 4, seed=3)(7)
    assert widths[0] == 1.0 and widths[-1] == 0.25 and len(widths) == 4
    assert all(0.25 < w < 1.0 for w in widths[1:-1])
    assert rule(8) != widths and SandwichWidths(0.25, 1.0, 4, seed=4)(7) != widths
    drawn = [w for i in range(500) for w in rule(i)[1:-1]]
    assert abs(sum(drawn) / len(drawn) - 0.625) < 0.02  # uniform between the ends


def _batch() -> list[dict]:
    """One 128x128 image with two objects, boxes and masks."""
    image = torch.rand(3, 128, 128) * 255
    gt = Instances((128, 128), gt_classes=torch.tensor([1, 2]),
                   gt_boxes=Boxes(torch.tensor([[10.0, 10, 60, 70], [70, 20, 120, 90]])))
    masks = torch.zeros(2, 128, 128, dtype=torch.bool)
    masks[0, 10:70, 10:60] = masks[1, 20:90, 70:120] = True
    gt.gt_masks = BitMasks(masks)
    return [{"image": image, "instances": gt}]


def _distillation_run(width: float, edit_teacher=None, train_heads: bool = True):
    """One widest (teacher) forward and one student forward at ``width``, same batch;
    ``edit_teacher(distill)`` may change the teacher before the losses are computed."""
    cfg = synthetic_cfg(*DETERMINISTIC, "MODEL.SLIMMABLE.DISTILL.FPN", 1.0)
    torch.manual_seed(0)  # the same model, anchors and regions in every call
    model = build_model(cfg).train()
    batch = _batch()
    distill = InplaceDistillation({"rpn_cls": 1, "rpn_loc": 1, "roi_cls": 1, "roi_loc": 1,
                                   "fpn": 1}, train_heads=train_heads)
    with EventStorage():
        with distill.capturing(model):
            model(batch)
        distill.keep_teacher()
        slimdet.set_width(model, width)
        with distill.capturing(model):
            model(batch)
            if edit_teacher is not None:
                edit_teacher(distill)
            losses = distill.student_losses(model)
    return model, distill, losses


def test_distillation_losses_vanish_when_student_is_teacher():
    _, distill, losses = _distillation_run(1.0)
    assert set(losses) == {"distill_rpn_cls", "distill_rpn_loc", "distill_roi_cls",
                           "distill_roi_loc", "distill_fpn"}
    for name, value in losses.items():
        assert abs(value.item()) < 1e-5, (name, value)


def test_rpn_distillation_has_the_scale_of_the_rpn_loss():
    """A teacher sure of one anchor only, whose deltas differ from the student's by 1: the loss
    is normalised by the anchors the RPN samples (as its ground-truth loss), not by that one
    anchor, which made training diverge."""
    def one_confident_anchor(distill):
        logits, deltas = distill._seen["rpn"]
        t_logits = [torch.full_like(x, -30.0) for x in logits]
        t_deltas = [x.detach().clone() for x in deltas]
        t_logits[0][0, 0, 3, 4] = 30.0
        t_deltas[0][0, 0:4, 3, 4] += 1.0  # anchor 0's four deltas
        distill.teacher["rpn"] = (t_logits, t_deltas)

    model, _, losses = _distillation_run(0.5, one_confident_anchor)
    sampled = model.proposal_generator.batch_size_per_image  # one image
    assert losses["distill_rpn_loc"].item() == pytest.approx(4.0 / sampled, rel=1e-4)


def test_roi_box_distillation_uses_the_predicted_class_deltas():
    """Only the four deltas of the class the teacher predicts count (the other classes' deltas
    are untrained), on the regions it calls foreground, normalised by all regions."""
    t_scores = torch.tensor([[0.0, 0.0, 5.0, 0.0], [0.0, 0.0, 0.0, 5.0]])  # class 2; background
    t_deltas = torch.zeros(2, 12)
    student = t_deltas.clone()
    student[:, 0:4] = 3.0  # class 0: not predicted anywhere
    student[1, :] += 1.0  # the background region
    assert _predicted_class_l1(student, t_deltas, t_scores).item() == 0.0
    student[0, 8:12] += 1.0  # class 2 on the foreground region
    assert _predicted_class_l1(student, t_deltas, t_scores).item() == pytest.approx(4.0 / 2)


def test_soft_targets_replace_or_mix_with_the_students_ground_truth_classification():
    """GT_CLS_WEIGHT scales a student's loss_cls and loss_rpn_cls (0: the soft targets alone,
    as the reference loop trains a width with a soft target); the teacher and the other
    ground-truth losses are left alone."""
    model = build_model(synthetic_cfg(*DETERMINISTIC)).train()
    batch = _batch()

    def losses(gt_cls_weight: float) -> dict:
        torch.manual_seed(0)  # the same sampled anchors and regions in every call
        distill = InplaceDistillation({"rpn_cls": 1, "roi_cls": 1}, gt_cls_weight=gt_cls_weight)
        with EventStorage():
            out = forward_backward_widths(model, batch, [1.0, 0.5], distillation=distill)
        model.zero_grad()
        return out

    full, half, none = losses(1.0), losses(0.5), losses(0.0)
    for name in GROUND_TRUTH_CLS:
        assert full[0.5][name] > 0 and none[0.5][name] == 0
        assert half[0.5][name].item() == pytest.approx(full[0.5][name].item() / 2, rel=1e-5)
        assert none[1.0][name] == full[1.0][name]  # the teacher learns from the ground truth
    for name in ("loss_box_reg", "loss_mask", "distill_roi_cls", "distill_rpn_cls"):
        assert none[0.5][name].item() == pytest.approx(full[0.5][name].item(), rel=1e-5)
    with pytest.raises(ValueError, match="ground-truth classification weight must be >= 0"):
        InplaceDistillation({}, gt_cls_weight=-1)


def test_bounded_box_distillation_counts_only_errors_above_the_teachers():
    """Chen et al.'s bound: one foreground region (class 1 of 2) and one background region;
    the student's squared error to the ground-truth deltas counts where it exceeds the
    teacher's (minus the margin), normalised by both regions."""
    transform = Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0))
    sampled = Instances((64, 64), proposal_boxes=Boxes(torch.tensor([[0.0, 0, 20, 20],
                                                                       [30, 30, 40, 40]])),
                        gt_boxes=Boxes(torch.tensor([[2.0, 2, 22, 22], [0, 0, 1, 1]])),
                        gt_classes=torch.tensor([1, 2]))
    target = transform.get_deltas(sampled.proposal_boxes.tensor[:1], sampled.gt_boxes.tensor[:1])
    teacher = torch.zeros(2, 8)
    teacher[0, 4:8] = target[0] + 0.5  # error 4 * 0.25 = 1
    student = teacher.clone()
    student[0, 4:8] = target[0] + 1.0  # error 4: above the teacher's
    student[1] += 100.0  # the background region and class 0's deltas do not count
    loss = teacher_bounded_l2(student, teacher, [sampled], transform, num_classes=2)
    assert loss.item() == pytest.approx(4.0 / 2)
    student[0, 4:8] = target[0] + 0.25  # error 0.25: better than the teacher
    assert teacher_bounded_l2(student, teacher, [sampled], transform, 2).item() == 0.0
    assert teacher_bounded_l2(student, teacher, [sampled], transform, 2, margin=1.0).item() == (
        pytest.approx(0.25 / 2))
    with pytest.raises(ValueError, match="unknown ROI box distillation 'copy'"):
        InplaceDistillation({}, roi_loc_mode="copy")


def test_bounded_box_distillation_trains_a_student():
    model = build_model(synthetic_cfg(*DETERMINISTIC)).train()
    distill = InplaceDistillation({"roi_loc": 1.0}, roi_loc_mode="bounded")
    torch.manual_seed(0)
    with EventStorage():
        losses = forward_backward_widths(model, _batch(), [1.0, 0.5], distillation=distill)
    value = losses[0.5]["distill_roi_loc"]
    assert torch.isfinite(value) and value >= 0 and "distill_roi_loc" not in losses[1.0]


def test_distillation_gradients_miss_the_teachers_outputs_but_reach_its_shared_weights():
    """The teacher's outputs are detached and the channels only it uses get no distillation
    gradient; but a student's weights are leading slices of the teacher's, so the distillation
    gradient moves weights the teacher computes with (here the box predictor's class bias)."""
    model, distill, losses = _distillation_run(0.5)
    assert all(v.item() > 0 for k, v in losses.items() if k != "distill_rpn_loc")
    teacher = [t for part in ("rpn", "roi") for level in distill.teacher[part]
               for t in (level if isinstance(level, list) else [level])]
    assert teacher and not any(t.requires_grad for t in teacher)
    model.zero_grad()
    sum(losses.values()).backward()
    # Channels that only the widest width uses get gradients only through the teacher's pass.
    checked = 0
    for m in model.modules():
        if isinstance(m, SlimConv2d) and m.weight.grad is not None:
            i = m.widths.index(0.5)
            c_in, c_out = m.in_channels_list[i] // m.groups, m.out_channels_list[i]
            assert not m.weight.grad[c_out:].any() and not m.weight.grad[:, c_in:].any()
            assert m.weight.grad[:c_out, :c_in].any()
            checked += 1
    assert checked > 10
    shared = model.roi_heads.box_predictor.cls_score
    assert shared.bias.grad.abs().sum() > 0 and shared.weight.grad.abs().sum() > 0


def test_distillation_can_leave_the_shared_heads_out_of_reach():
    """TRAIN_HEADS False: the same losses, but their gradients reach only the features the
    heads read (backbone, FPN), none the RPN head, box head or box predictor."""
    heads = ("proposal_generator.rpn_head.", "roi_heads.box_head.", "roi_heads.box_predictor.")

    def grads(train_heads: bool):
        model, _, losses = _distillation_run(0.5, train_heads=train_heads)
        model.zero_grad()
        sum(losses.values()).backward()
        return losses, {name: p.grad for name, p in model.named_parameters()}

    (losses, trained), (frozen_losses, frozen) = grads(True), grads(False)
    for name, value in losses.items():
        assert frozen_losses[name].item() == pytest.approx(value.item(), rel=1e-5), name
    for name, grad in frozen.items():
        if name.startswith(heads):
            assert trained[name] is not None and trained[name].any(), name
            assert grad is None or not grad.any(), name
    features = [g for name, g in frozen.items() if name.startswith("backbone.") and g is not None]
    assert len(features) > 10 and all(g.any() for g in features[:10])
    cfg = synthetic_cfg("MODEL.SLIMMABLE.DISTILL.ENABLED", True,
                        "MODEL.SLIMMABLE.DISTILL.TRAIN_HEADS", False)
    assert distillation_from_config(cfg).train_heads is False


def test_universal_training_with_distillation_logs_and_evaluates(tiny_data, tmp_path):
    cfg = tiny_train_cfg(tmp_path, *UNIVERSAL, "MODEL.SLIMMABLE.DISTILL.ENABLED", True,
                         "MODEL.SLIMMABLE.DISTILL.START_ITER", 1,
                         "MODEL.SLIMMABLE.TEST_WIDTHS", [0.3, 1.0], "SOLVER.MAX_ITER", 2,
                         "TEST.EVAL_PERIOD", 2)
    trainer = SlimmableTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    history = trainer.storage.histories()
    for key in ("w1/loss_cls", "w0.25/distill_roi_cls", "sampled/distill_rpn_cls",
                "sampled/loss_mask"):
        assert key in history, sorted(history)
    assert "w1/distill_roi_cls" not in history  # the widest learns from the ground truth
    assert [i for _, i in history["w0.25/distill_roi_cls"].values()] == [1]  # START_ITER
    assert [i for _, i in history["w0.25/loss_cls"].values()] == [0, 1]
    assert trainer.state_dict()["width_seed"] == 1
    rows = json.loads((tmp_path / "per_width_results.json").read_text())["rows"]
    assert [r["width"] for r in rows] == [0.28125, 1.0]  # with GN, 0.3 runs as 9/32
    assert rows[0]["GFLOPs"] < rows[1]["GFLOPs"] / 4


def test_universal_modules_are_slimmable_modules():
    model = build_model(synthetic_cfg(*UNIVERSAL))
    mods = [m for m in model.modules() if isinstance(m, SlimmableModule)]
    assert mods and all(m.width_range == (0.25, 1.0) for m in mods)
    assert not any(isinstance(m, slimdet.layers.SwitchableNorm) for m in mods)


def test_export_at_an_unlisted_width():
    cfg = slim_cfg("slim_mask_rcnn_R50_FPN.yaml", *UNIVERSAL)
    model = build_model(cfg).eval()
    randomize_norms(model)
    cfg_w, exported = slimdet.export_at_width(cfg, model, 0.6)
    assert cfg_w.MODEL.RESNETS.RES2_OUT_CHANNELS == int(256 * 0.6)
    slimdet.set_width(model, 0.6)
    with torch.no_grad():
        out = model(image_inputs())[0]["instances"]
        ref = exported.eval()(image_inputs())[0]["instances"]
    assert len(out) == len(ref) > 0 and torch.equal(out.pred_masks, ref.pred_masks)
    assert torch.allclose(out.pred_boxes.tensor, ref.pred_boxes.tensor, atol=1e-3)
    gn = slim_cfg("slim_mask_rcnn_R50_FPN.yaml", *GN_R50, *UNIVERSAL)
    with pytest.raises(ValueError, match=r"keep their group size, so they have 19 groups"):
        slimdet.export_at_width(gn, build_model(gn), 0.6)


def test_per_width_affine_offsets_interpolate_between_listed_widths():
    """Offsets start at zero (the shared model); each listed width's row acts at that width
    only, and a width between two listed ones mixes their rows linearly."""
    norm = SlicedGroupNorm(16, 64)
    norm.channel_rule = ChannelRule(1, 64)
    norm._init_widths([0.25, 0.5, 0.75, 1.0], (0.25, 1.0))
    assert add_width_offsets(torch.nn.Sequential(norm)) == 1
    x = torch.randn(2, 64, 5, 5)
    shared = norm(x)
    with torch.no_grad():
        norm.weight_offset.normal_()
        norm.bias_offset.normal_()
        norm.weight_offset[0] = norm.bias_offset[0] = 0  # width 0.25 keeps the shared affine
    for width, rows in ((0.5, {1: 1.0}), (0.625, {1: 0.5, 2: 0.5}), (0.7, {1: 0.2, 2: 0.8})):
        slimdet.set_width(norm, width)
        c = norm.active_channels
        weight = norm.weight + sum(t * norm.weight_offset[i] for i, t in rows.items())
        bias = norm.bias + sum(t * norm.bias_offset[i] for i, t in rows.items())
        expected = torch.nn.functional.group_norm(x[:, :c], c // 4, weight[:c], bias[:c])
        assert torch.allclose(norm(x[:, :c]), expected, atol=1e-6), width
    slimdet.set_width(norm, 1.0)
    assert not torch.allclose(norm(x), shared)
    slimdet.set_width(norm, 0.25)
    assert torch.allclose(norm(x[:, :16]), torch.nn.functional.group_norm(
        x[:, :16], 4, norm.weight[:16], norm.bias[:16]), atol=1e-6)


def test_per_width_affine_trains_only_the_rows_of_the_width_and_exports_stock():
    cfg = slim_cfg("slim_mask_rcnn_R50_FPN.yaml", *GN_R50, *UNIVERSAL)  # per_width: the default
    model = build_model(cfg)
    norm = model.backbone.bottom_up.res2[0].conv1.norm
    assert norm.weight_offset.shape == (4, 64) and not norm.weight_offset.any()
    slimdet.set_width(model, 0.75)
    norm(torch.randn(2, 48, 4, 4)).square().sum().backward()
    rows = norm.weight_offset.grad.abs().sum(1)
    assert rows[2] > 0 and rows[[0, 1, 3]].eq(0).all()  # WIDTHS [0.25, 0.5, 0.75, 1.0]

    model.eval()
    randomize_norms(model)
    with torch.no_grad():
        for m in model.modules():
            if "weight_offset" in m._parameters:
                m.weight_offset.normal_(std=0.3)
                m.bias_offset.normal_(std=0.3)
    cfg_w, exported = slimdet.export_at_width(cfg, model, 1.0)
    slimdet.set_width(model, 1.0)
    with torch.no_grad():
        out = model(image_inputs())[0]["instances"]
        ref = exported.eval()(image_inputs())[0]["instances"]
        slimdet.set_width(model, 0.5)
        narrow = model(image_inputs())[0]["instances"]
    assert len(out) == len(ref) > 0 and torch.equal(out.pred_masks, ref.pred_masks)
    assert torch.allclose(out.pred_boxes.tensor, ref.pred_boxes.tensor, atol=1e-3)
    assert len(narrow) > 0
    # A checkpoint without offsets (the shared model, a stock one) fits; offsets stay zero.
    shared = build_model(slim_cfg("slim_mask_rcnn_R50_FPN.yaml", *GN_R50, *UNIVERSAL,
                                  "MODEL.SLIMMABLE.UNIVERSAL_AFFINE", "shared"))
    assert not any("weight_offset" in name for name, _ in shared.named_parameters())
    check_state_dict_fits(model, shared.state_dict())
    with pytest.raises(ValueError, match="UNIVERSAL_AFFINE must be 'shared' or 'per_width'"):
        build_model(slim_cfg("slim_mask_rcnn_R50_FPN.yaml", "MODEL.SLIMMABLE.UNIVERSAL_AFFINE",
                             "per_channel"))
