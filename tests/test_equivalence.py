"""At width w the slimmable model is the stock Detectron2 model of stock_config(cfg, w) whose
weights are the leading slices: backbone features and full inference outputs must match."""
from __future__ import annotations

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone, build_model

import slimdet
from helpers import (REPO, WIDTHS, build_with_gn_rule, image_inputs, load_leading_slices,
                      randomize_norms, slim_cfg, stock_model_at, universal_gn_groups)
from slimdet.layers import SlimConv2d, SlimmableModule
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
    "R50-FPN-backbone-only": ("MODEL.SLIMMABLE.SLIM_FPN", False),
    "R50-FPN-universal": ("MODEL.SLIMMABLE.UNIVERSAL", True),
    "R50-FPN-GN-universal": ("MODEL.RESNETS.NORM", "GN", "MODEL.FPN.NORM", "GN",
                             "MODEL.SLIMMABLE.UNIVERSAL", True),
    "R101-FPN-P6P7": ("MODEL.RESNETS.DEPTH", 101,
                      "MODEL.BACKBONE.NAME", "build_slimmable_retinanet_resnet_fpn_backbone"),
    "X50-32x4d-C4-dilated": ("MODEL.RESNETS.NUM_GROUPS", 32, "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
                             "MODEL.RESNETS.RES5_DILATION", 2, "MODEL.RESNETS.STRIDE_IN_1X1", True,
                             "MODEL.RESNETS.OUT_FEATURES", ["res4", "res5"],
                             "MODEL.BACKBONE.NAME", "build_slimmable_resnet_backbone"),
}


@pytest.mark.parametrize("variant", list(BACKBONES))
def test_backbone_features_equal_stock_at_every_width(variant):
    cfg = slim_cfg("slim_faster_rcnn_R50_FPN.yaml", "MODEL.BACKBONE.FREEZE_AT", 0,
                   *BACKBONES[variant])
    backbone = build_backbone(cfg).eval()
    randomize_norms(backbone)
    x = torch.randn(2, 3, 64, 96)
    unlisted = [0.3, 0.6, 0.9] if variant.endswith("universal") else []  # any width in range
    for width in WIDTHS + unlisted:
        slimdet.set_width(backbone, width)
        groups = universal_gn_groups(width) if variant == "R50-FPN-GN-universal" else None
        stock = build_with_gn_rule(lambda c: build_stock_backbone(c, ShapeSpec(channels=3)),
                                   slimdet.stock_config(cfg, width), groups).eval()
        load_leading_slices(stock, backbone, width)
        with torch.no_grad():
            out, ref = backbone(x), stock(x)
        assert out.keys() == ref.keys()
        if variant.endswith("backbone-only"):  # the paper's setting: FPN at full width
            assert {out[k].shape[1] for k in out} == {cfg.MODEL.FPN.OUT_CHANNELS}
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


PAPER = REPO / "configs" / "COCO" / "paper"


@pytest.mark.parametrize("config,slim_heads,extra", [
    ("slim_mask_rcnn_R50_FPN.yaml", False, ()),
    (str(PAPER / "faster_rcnn_R50_FPN_1x.yaml"), False, ()),
    (str(PAPER / "mask_rcnn_R50_FPN_1x.yaml"), False, ()),
    (str(PAPER / "keypoint_rcnn_R50_FPN_1x.yaml"), False, ()),
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


def test_paper_setting_slims_the_backbone_only():
    """configs/COCO/paper: the FPN's lateral convs read the backbone's leading channels and
    everything after them is one full-width network shared by every width."""
    cfg = slim_cfg(str(PAPER / "mask_rcnn_R50_FPN_1x.yaml"))
    model = build_model(cfg)
    fpn = model.backbone
    laterals = fpn.lateral_convs  # res5 first
    assert all(isinstance(c, SlimConv2d) and set(c.out_channels_list) == {256} for c in laterals)
    assert [c.in_channels_list for c in laterals] == [
        tuple(int(w * c) for w in WIDTHS) for c in (2048, 1024, 512, 256)]
    shared = [*fpn.output_convs, model.proposal_generator, model.roi_heads]
    assert not [m for part in shared for m in part.modules() if isinstance(m, SlimmableModule)]
