"""Exporting a width: a plain Detectron2 model equal to the slimmable model at that width, files
that plain Detectron2 loads (in a process that never imports slimdet), TorchScript by tracing,
and clear errors for widths plain Detectron2 cannot build."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from detectron2.modeling import GeneralizedRCNN, build_model

import slimdet
from helpers import REPO, image_inputs, randomize_norms, slim_cfg, tool
from slimdet.benchmark import random_images
from slimdet.export import max_output_difference
from slimdet.utils import load_slimmable_model

ATOL = 1e-4
# Few proposals and detections keep the full-width mask/keypoint heads cheap on CPU.
SMALL = ("MODEL.RPN.POST_NMS_TOPK_TEST", 20, "TEST.DETECTIONS_PER_IMAGE", 5)


def _assert_plain_detectron2(model: torch.nn.Module) -> None:
    assert type(model) is GeneralizedRCNN
    foreign = {type(m).__module__ + "." + type(m).__name__ for m in model.modules()
               if not type(m).__module__.startswith(("detectron2.", "torch.", "torchvision."))}
    assert not foreign, foreign
    assert all(p.is_contiguous() for p in model.parameters())


def _assert_same_outputs(a: list[dict], b: list[dict]) -> None:
    assert len(a[0]["instances"]) == len(b[0]["instances"]) > 0
    assert max_output_difference(a, b) < ATOL


# Every model and SLIM_HEADS setting, each at two widths; together every width for every model.
@pytest.mark.parametrize("config,slim_heads,widths", [
    ("slim_faster_rcnn_R50_FPN.yaml", False, (0.25, 1.0)),
    ("slim_faster_rcnn_R50_FPN.yaml", True, (0.5, 0.75)),
    ("slim_mask_rcnn_R50_FPN.yaml", False, (0.5, 0.75)),
    ("slim_mask_rcnn_R50_FPN.yaml", True, (0.25, 1.0)),
    ("slim_keypoint_rcnn_R50_FPN.yaml", False, (0.25, 0.75)),
    ("slim_keypoint_rcnn_R50_FPN.yaml", True, (0.5, 1.0)),
])
def test_exported_model_is_plain_detectron2_and_equals_slimmable(config, slim_heads, widths):
    cfg = slim_cfg(config, "MODEL.SLIMMABLE.SLIM_HEADS", slim_heads, *SMALL)
    model = build_model(cfg).eval()
    randomize_norms(model)
    inputs = image_inputs(height=64, width=96)
    for width in widths:
        cfg_w, exported = slimdet.export_at_width(cfg, model, width)
        assert slimdet.get_width(model) == 1.0  # exporting does not switch the model
        assert "SLIMMABLE" not in cfg_w.MODEL and not exported.training
        _assert_plain_detectron2(exported)
        with torch.no_grad(), slimdet.width_scope(model, width):
            _assert_same_outputs(exported(inputs), model(inputs))


_LOAD_IN_PLAIN_DETECTRON2 = """
import sys, torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model
cfg = get_cfg()
cfg.merge_from_file(sys.argv[1])
model = build_model(cfg).eval()
DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
with torch.no_grad():
    out = model([{"image": torch.load(sys.argv[2])}])
torch.save(out[0]["instances"].get_fields(), sys.argv[3])
assert not any(m.startswith("slimdet") for m in sys.modules)
"""


def test_export_tool_files_load_into_plain_detectron2_and_torchscript_matches(tmp_path):
    opts = ["MODEL.SLIMMABLE.SLIM_HEADS", "True", "MODEL.DEVICE", "cpu",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", *map(str, SMALL)]
    config = str(REPO / "configs" / "COCO" / "slim_mask_rcnn_R50_FPN.yaml")
    cfg, model = load_slimmable_model(config, opts, None)
    randomize_norms(model)
    torch.save({"model": model.state_dict()}, tmp_path / "slim.pth")

    report = tool("export_width").main(["--config-file", config, "--width", "0.5", "--weights",
                                str(tmp_path / "slim.pth"), "--output", str(tmp_path / "out"),
                                "--torchscript", "--input-size", "64", "96", *opts])
    assert report["detections_compared"] > 0
    assert report["max_error_vs_slimmable"] < ATOL and report["max_error_torchscript"] < ATOL

    inputs = random_images(64, 96, torch.device("cpu"))  # the tool's sample image
    torch.save(inputs[0]["image"], tmp_path / "image.pt")
    run = subprocess.run([sys.executable, "-c", _LOAD_IN_PLAIN_DETECTRON2, report["config"],
                          str(tmp_path / "image.pt"), str(tmp_path / "fields.pt")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    plain = torch.load(tmp_path / "fields.pt", weights_only=False)
    with torch.no_grad(), slimdet.width_scope(model, 0.5):
        expected = model(inputs)
    assert max_output_difference(plain, expected[0]["instances"].get_fields()) < ATOL

    traced = torch.jit.load(report["torchscript"])
    assert max_output_difference(traced(inputs[0]["image"]), expected) < ATOL


def test_unknown_width_is_a_clear_error():
    cfg = slim_cfg("slim_faster_rcnn_R50_FPN.yaml")
    model = build_model(cfg)
    with pytest.raises(ValueError, match=r"width 0.3 is not supported; allowed widths"):
        slimdet.export_at_width(cfg, model, 0.3)


@pytest.mark.parametrize("opts,message", [
    (("MODEL.RESNETS.DEPTH", 18, "MODEL.RESNETS.RES2_OUT_CHANNELS", 64),
     r"cannot export width 0.25: plain Detectron2 builds R18 only with "
     r"MODEL.RESNETS.RES2_OUT_CHANNELS = 64, but this width has 16"),
    (("MODEL.RESNETS.NORM", "GN", "MODEL.FPN.NORM", "GN"),
     r"cannot export width 0.25: layer backbone.bottom_up.stem.conv1.norm has 16 channels"),
])
def test_widths_plain_detectron2_cannot_build_are_clear_errors(opts, message):
    cfg = slim_cfg("slim_faster_rcnn_R50_FPN.yaml", *opts)
    model = build_model(cfg)
    with pytest.raises(ValueError, match=message):
        slimdet.export_at_width(cfg, model, 0.25)
