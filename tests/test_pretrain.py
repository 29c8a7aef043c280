"""Pretraining backbones: the slimmable ResNet classifier is the stock classifier of every
width, learns, trains and evaluates per width through tools/pretrain_backbone.py, and its
backbone loads into a detector."""
from __future__ import annotations

import json

import pytest
import torch
from detectron2.engine import default_argument_parser
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

import slimdet
from helpers import REPO, WIDTHS, load_leading_slices, randomize_norms, tool
from slimdet.checkpoint import SlimmableCheckpointer
from slimdet.data import clutter_classes
from slimdet.data.datasets import CLUTTER_CLASSES
from slimdet.data.image_folder import register_image_folder
from slimdet.engine import forward_backward_widths
from slimdet.engine.classification_trainer import ClassificationTrainer
from slimdet.engine.classifier_distillation import SoftLabelDistillation
from slimdet.modeling.classifier import build_stock_resnet_classifier
from slimdet.utils import load_slimmable_config

CONFIG = str(REPO / "configs" / "Pretrain" / "clutter_classes_R18.yaml")


def _batch(count: int = 9, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.rand(3, 64, 64, generator=g) * 255, "label": i % 9}
            for i in range(count)]


@pytest.mark.parametrize("width", WIDTHS)
def test_classifier_is_the_stock_resnet_classifier_of_each_width(width):
    cfg = load_slimmable_config(CONFIG)
    model = build_model(cfg).eval()
    randomize_norms(model)
    stock = build_stock_resnet_classifier(slimdet.stock_config(cfg, width)).eval()
    load_leading_slices(stock, model.backbone, width)
    batch = _batch(2)
    with torch.no_grad(), slimdet.width_scope(model, width):
        logits = torch.stack([out["logits"] for out in model(batch)])
        images = torch.stack([(x["image"] - model.pixel_mean) / model.pixel_std for x in batch])
        assert torch.allclose(logits, stock(images)["linear"], atol=1e-5)
    assert stock.linear.in_features == int(512 * width)


def test_classifier_learns_at_every_width():
    cfg = load_slimmable_config(CONFIG, ["MODEL.SLIMMABLE.WIDTHS", [0.25, 1.0]])
    torch.manual_seed(0)
    model = build_model(cfg).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batch = _batch()
    losses = []
    with EventStorage():
        for _ in range(25):
            optimizer.zero_grad()
            losses.append(forward_backward_widths(model, batch, [1.0, 0.25]))
            optimizer.step()
    for width in (1.0, 0.25):
        first, last = losses[0][width]["loss_cls"].item(), losses[-1][width]["loss_cls"].item()
        assert last < first / 4, (width, first, last)


@pytest.mark.parametrize("gt_cls_weight", [0.0, 0.5])
def test_students_learn_from_the_widest_widths_soft_labels(gt_cls_weight):
    """The students' distill_cls is the cross entropy against the widest width's detached
    class distribution (computed here from the logits of each width), their ground-truth
    loss_cls weighted by GT_CLS_WEIGHT; the widest width keeps its own loss."""
    cfg = load_slimmable_config(CONFIG, ["MODEL.SLIMMABLE.WIDTHS", [0.25, 1.0],
                                         "MODEL.SLIMMABLE.DISTILL.ENABLED", True,
                                         "MODEL.SLIMMABLE.DISTILL.GT_CLS_WEIGHT", gt_cls_weight])
    distillation = ClassificationTrainer.build_distillation(cfg)
    assert isinstance(distillation, SoftLabelDistillation)
    model = build_model(cfg).train()
    batch = _batch(4)
    with EventStorage():
        losses = forward_backward_widths(model, batch, [1.0, 0.25], distillation=distillation)
        logits = {}
        for width in (1.0, 0.25):
            with slimdet.width_scope(model, width), torch.no_grad():
                images = torch.stack([(x["image"] - model.pixel_mean) / model.pixel_std
                                      for x in batch])
                logits[width] = model.backbone(images)["linear"]
    labels = torch.tensor([x["label"] for x in batch])
    soft = -(logits[1.0].softmax(1) * logits[0.25].log_softmax(1)).sum(1).mean()
    assert torch.allclose(losses[0.25]["distill_cls"], soft, atol=1e-5)
    gt = torch.nn.functional.cross_entropy(logits[0.25], labels)
    assert torch.allclose(losses[0.25]["loss_cls"], gt_cls_weight * gt, atol=1e-5)
    assert sorted(losses[1.0]) == ["loss_cls"]
    detector = build_model(load_slimmable_config(
        str(REPO / "configs" / "Synthetic" / "clutter_mask_rcnn_R18_FPN.yaml")))
    with pytest.raises(ValueError, match="needs a SlimmableImageClassifier"):
        distillation.check_model(detector)


@pytest.mark.slow
def test_pretrain_tool_reports_top1_per_width_and_its_backbone_loads_into_a_detector(tmp_path):
    root = tmp_path / "classes"
    clutter_classes.generate(str(root), num_train=36, num_val=18)
    for split in ("train", "val"):
        register_image_folder(f"pretrain_test_{split}", str(root / split), CLUTTER_CLASSES)
    out, pretrain = tmp_path / "out", tool("pretrain_backbone")
    pretrain.main(default_argument_parser().parse_args(
        ["--config-file", CONFIG, "DATASETS.TRAIN", "('pretrain_test_train',)",
         "DATASETS.TEST", "('pretrain_test_val',)", "SOLVER.MAX_ITER", "2",
         "SOLVER.IMS_PER_BATCH", "6", "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(out)]))
    rows = json.loads((out / "per_width_results.json").read_text())["rows"]
    assert [r["width"] for r in rows] == WIDTHS and all(0 <= r["top-1"] <= 100 for r in rows)
    metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert "w0.25/cls_accuracy" in metrics[-2] and "w0.25/classification/top1" in metrics[-1]

    detector = build_model(load_slimmable_config(
        str(REPO / "configs" / "Synthetic" / "clutter_mask_rcnn_R18_FPN.yaml"),
        ["MODEL.RESNETS.NORM", "FrozenBN", "MODEL.SLIMMABLE.SLIM_FPN", False]))
    SlimmableCheckpointer(detector).load(str(out / "backbone.pth"))
    trained = torch.load(out / "model_final.pth", weights_only=False)["model"]
    resnet = detector.backbone.bottom_up
    assert torch.equal(resnet.res4[1].conv2.weight, trained["backbone.res4.1.conv2.weight"])
    assert torch.equal(resnet.stem.conv1.norm[2].running_var,
                       trained["backbone.stem.conv1.norm.2.running_var"])
