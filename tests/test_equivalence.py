"""At width w the slimmable model is the stock Detectron2 model of stock_config(cfg, w) whose
weights are the leading slices: backbone features and full inference outputs must match."""
from __future__ import annotations

import math

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone, build_model

import slimdet
from conftest import (WIDTHS, image_inputs, load_leading_slices, randomize_norms, slim_cfg,
                      stock_model_at)
from slimdet.modeling.backbone import build_stock_backbone

ATOL = 1e-4


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item() if a.numel() else 0.0


BACKBONES = {
    "R50-FPN": (),
    "R50-FPN-GN": ("MODEL.RESNETS.NORM", "GN", "MODEL.FPN.NORM", "GN"),
    "R50-FPN-BN": ("MODEL.RESNETS.NORM", "BN"),
    "R18-FPN-GN": ("MODEL.RESNETS.DEPTH", 18, "MODEL.RESNETS.RES2_OUT_CHANNELS", 64,
                   "MODEL.RESNETS.NORM", "GN", "MODEL.FPN.NORM", "GN"),
    "R34-FPN": ("MODEL.RESNETS.DEPTH", 34, "MODEL.RESNETS.RES2_OUT_CHANNELS", 64),
    "R101-FPN-P6P7": ("MODEL.RESNETS.DEPTH", 101,
                      "MODEL.BACKBONE.NAME", "build_slimmable_retinanet_resnet_fpn_backbone"),
    "X50-32x4d-C4-dilated": ("MODEL.RESNETS.NUM_GROUPS", 32, "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
                             "MODEL.RESNETS.RES5_DILATION", 2, "MODEL.RESNETS.STRIDE_IN_1X1", True,
                             "MODEL.RESNETS.OUT_FEATURES", ["res4", "res5"],
                             "MODEL.BACKBONE.NAME", "build_slimmable_resnet_backbone"),
}


def _stock_backbone_with_gn_rule(stock_cfg):
    """Stock backbone; with GN, the documented rule: GroupNorm(gcd(32, C), C), since stock GN
    (always 32 groups) cannot exist at e.g. 16 channels."""
    if "GN" not in (stock_cfg.MODEL.RESNETS.NORM, stock_cfg.MODEL.FPN.NORM):
        return build_stock_backbone(stock_cfg, ShapeSpec(channels=3))
    c = stock_cfg.clone()
    c.defrost()
    c.MODEL.RESNETS.NORM = c.MODEL.FPN.NORM = "BN"
    stock = build_stock_backbone(c, ShapeSpec(channels=3))
    for module in list(stock.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.BatchNorm2d):
                n = child.num_features
                setattr(module, name, torch.nn.GroupNorm(math.gcd(32, n), n))
    return stock


@pytest.mark.parametrize("variant", list(BACKBONES))
def test_backbone_features_equal_stock_at_every_width(variant):
    cfg = slim_cfg("slim_faster_rcnn_R50_FPN.yaml", "MODEL.BACKBONE.FREEZE_AT", 0,
                   *BACKBONES[variant])
    backbone = build_backbone(cfg).eval()
    randomize_norms(backbone)
    x = torch.randn(2, 3, 64, 96)
    for width in WIDTHS:
        slimdet.set_width(backbone, width)
        stock = _stock_backbone_with_gn_rule(slimdet.stock_config(cfg, width)).eval()
        load_leading_slices(stock, backbone, width)
        with torch.no_grad():
            out, ref = backbone(x), stock(x)
        assert out.keys() == ref.keys()
        for k in ref:
            assert out[k].shape == ref[k].shape, (variant, width, k)
            assert _max_err(out[k], ref[k]) < ATOL, (variant, width, k, _max_err(out[k], ref[k]))


def test_stock_config_uses_detectron2_builders_for_r50():
    """The stock reference for R50 is Detectron2's own builder output."""
    cfg = slim_cfg("slim_faster_rcnn_R50_FPN.yaml")
    stock_cfg = slimdet.stock_config(cfg, 0.5)
    assert stock_cfg.MODEL.BACKBONE.NAME == "build_resnet_fpn_backbone"
    assert "SLIMMABLE" not in stock_cfg.MODEL
    ours = build_stock_backbone(stock_cfg, ShapeSpec(channels=3))
    theirs = build_backbone(stock_cfg)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in theirs.state_dict().items()}
    assert theirs.output_shape()["p2"].channels == 128
    assert theirs.bottom_up.res2[0].conv2.weight.shape == (32, 32, 3, 3)


def _compare_instances(out, ref, width, tag):
    a, b = out["instances"], ref["instances"]
    assert len(a) == len(b) > 0, (tag, width, len(a), len(b))
    errs = {"boxes": _max_err(a.pred_boxes.tensor, b.pred_boxes.tensor),
            "scores": _max_err(a.scores, b.scores)}
    assert torch.equal(a.pred_classes, b.pred_classes)
    if b.has("pred_masks"):
        errs["masks"] = (a.pred_masks != b.pred_masks).float().mean().item()
    if b.has("pred_keypoints"):
        errs["keypoints"] = _max_err(a.pred_keypoints, b.pred_keypoints)
    for k, e in errs.items():
        assert e < (1e-3 if k != "masks" else 1e-4), (tag, width, k, e)
    return errs


@pytest.mark.parametrize("config,slim_heads,extra", [
    ("slim_mask_rcnn_R50_FPN.yaml", False, ()),
    ("slim_mask_rcnn_R50_FPN.yaml", True, ("MODEL.ROI_MASK_HEAD.NORM", "GN")),
    ("slim_keypoint_rcnn_R50_FPN.yaml", False, ()),
    ("slim_keypoint_rcnn_R50_FPN.yaml", True, ()),
])
def test_full_model_inference_equals_stock(config, slim_heads, extra):
    cfg = slim_cfg(config, "MODEL.SLIMMABLE.SLIM_HEADS", slim_heads, *extra)
    model = build_model(cfg).eval()
    randomize_norms(model)
    inputs = image_inputs()
    for width in WIDTHS:
        slimdet.set_width(model, width)
        stock = stock_model_at(cfg, model, width)
        with torch.no_grad():
            out, ref = model(inputs)[0], stock(inputs)[0]
        _compare_instances(out, ref, width, config)
