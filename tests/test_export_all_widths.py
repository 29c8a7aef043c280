"""Every width in one file: ``tools/export_width.py --all-widths`` writes one TorchScript or ONNX
file holding each weight once, and ``tools/run_exported.py`` runs it in a process that imports
neither slimdet nor Detectron2, with the detections of ``SlimmablePredictor`` at every width."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask

import slimdet
from helpers import REPO, randomize_norms, tool
from slimdet.export import check_exported, export_all_widths, match_failures
from slimdet.runtime import SlimmablePredictor
from slimdet.utils import load_slimmable_config
from slimdet_lite import (MODEL_JSON_VERSION, ExportedModel, LatencyController, decode_rle,
                          encode_rle)

SYNTHETIC = REPO / "configs" / "Synthetic"
COCO = REPO / "configs" / "COCO"
# Few proposals and detections keep the full-width mask/keypoint heads cheap on CPU; the
# threshold keeps the random model's detections.
SMALL = ["MODEL.DEVICE", "cpu", "MODEL.RPN.POST_NMS_TOPK_TEST", "20",
         "TEST.DETECTIONS_PER_IMAGE", "5", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]
COCO_SMALL = [*SMALL, "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96", "MODEL.WEIGHTS", ""]

_RUN_WITHOUT_SLIMDET = """
import runpy, sys
sys.argv = ["run_exported.py", *sys.argv[1:]]
runpy.run_path("tools/run_exported.py", run_name="__main__")
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"slimdet", "detectron2"})
assert not loaded, f"imported {loaded}"
"""


def _weights(tmp_path, config: str, opts: list[str]) -> str:
    """A checkpoint of the config's slimmable model with non-trivial norms (fresh norms are
    identity maps and leave every mask probability near 0.5)."""
    cfg = load_slimmable_config(config, opts)
    cfg.freeze()
    model = SlimmablePredictor(cfg).model
    randomize_norms(model)
    path = str(tmp_path / "slim.pth")
    torch.save({"model": model.state_dict()}, path)
    return path


def _image(height: int, width: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("config,fmt,opts", [
    (SYNTHETIC / "slim_mask_rcnn_R18_FPN.yaml", "onnx", SMALL),
    (SYNTHETIC / "slim_mask_rcnn_R18_FPN.yaml", "torchscript", SMALL),
    (SYNTHETIC / "slim_keypoint_rcnn_R18_FPN.yaml", "torchscript", SMALL),
    (SYNTHETIC / "clutter_faster_rcnn_R18_FPN.yaml", "torchscript", SMALL),
    (COCO / "slim_mask_rcnn_R50_FPN.yaml", "onnx", COCO_SMALL),
    (COCO / "slim_keypoint_rcnn_R50_FPN.yaml", "torchscript", COCO_SMALL),
    (COCO / "slim_faster_rcnn_R50_FPN.yaml", "onnx", COCO_SMALL),
])
def test_one_file_holds_every_width_and_matches_the_predictor(tmp_path, config, fmt, opts):
    config = str(config)
    weights = _weights(tmp_path, config, opts)
    out = tmp_path / "export"
    image = _image(70, 90)  # another size than the tracing image's, resized by the test resize
    cv2.imwrite(str(tmp_path / "image.png"), image)
    report = tool("export_width").main([
        "--config-file", config, "--weights", weights, "--all-widths", "--format", fmt,
        "--output", str(out), "--input-size", "64", "96", "--image", str(tmp_path / "image.png"),
        *opts])
    assert not report["failures"]
    assert report["size_vs_state_dict"] <= 1.3  # the weights once, not once per width
    description = json.loads((out / "model.json").read_text())
    assert description["widths"] == [0.25, 0.5, 0.75, 1.0]

    cfg = load_slimmable_config(config, [*opts, "MODEL.WEIGHTS", weights])
    predictor = SlimmablePredictor(cfg)
    for width in description["widths"]:
        result = out / f"w{width:g}.json"
        run = subprocess.run([sys.executable, "-c", _RUN_WITHOUT_SLIMDET, report["file"],
                              "--width", str(width), "--input", str(tmp_path / "image.png"),
                              "--output", str(result), "--draw", str(tmp_path / "drawn.png")],
                             capture_output=True, text=True, cwd=REPO, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        got = json.loads(result.read_text())
        expected = predictor.predict_at(width, image)
        assert got["width"] == width and len(got["instances"]) == len(expected) > 0
        boxes = np.array([i["bbox"] for i in got["instances"]])
        assert np.abs(boxes - expected.pred_boxes.tensor.numpy()).max() <= 0.01
        scores = np.array([i["score"] for i in got["instances"]])
        assert np.abs(scores - expected.scores.numpy()).max() <= 1e-4
        assert [i["category_id"] for i in got["instances"]] == [
            description["category_ids"][c] for c in expected.pred_classes.tolist()]
        if expected.has("pred_masks"):
            for instance, mask in zip(got["instances"], expected.pred_masks.numpy()):
                got_mask = decode_rle(instance["segmentation"])  # == pycocotools' decoding
                union = np.logical_or(got_mask, mask).sum()  # both empty: the same mask
                assert union == 0 or np.logical_and(got_mask, mask).sum() / union >= 0.99
        if expected.has("pred_keypoints"):
            keypoints = np.array([i["keypoints"] for i in got["instances"]]).reshape(
                len(expected), -1, 3)
            # COCO's convention, as Detectron2's COCO results: pixel centres at integers
            assert np.abs(keypoints[..., :2] + 0.5
                          - expected.pred_keypoints.numpy()[..., :2]).max() <= 0.01
    assert cv2.imread(str(tmp_path / "drawn.png")).shape[1] == image.shape[1]


@pytest.mark.slow
def test_universal_model_exports_the_widths_asked_for(tmp_path):
    opts = [*SMALL, "MODEL.SLIMMABLE.UNIVERSAL", "True", "MODEL.SLIMMABLE.WIDTHS",
            "[0.25, 1.0]"]
    config = str(SYNTHETIC / "slim_mask_rcnn_R18_FPN.yaml")
    cfg = load_slimmable_config(config, opts)
    cfg.freeze()
    predictor = SlimmablePredictor(cfg)
    randomize_norms(predictor.model)
    widths = [0.25, 0.375, 0.6875, 1.0]  # between the listed ones too
    description = export_all_widths(cfg, predictor.model, widths, "torchscript", str(tmp_path),
                                    (64, 96))
    assert description["version"] == MODEL_JSON_VERSION
    checks = check_exported(str(tmp_path / "model.pt"), predictor.predict_at, _image(64, 96))
    assert sorted(checks) == widths
    assert all(not match_failures(c) and c["count"] > 0 for c in checks.values()), checks
    assert slimdet.get_width(predictor.model) == 1.0  # exporting leaves the model's width
    with pytest.raises(ValueError, match=r"holds widths \[0.25, 0.375, 0.6875, 1.0\], not 0.5"):
        ExportedModel(str(tmp_path / "model.pt")).index(0.5)


def test_rle_matches_pycocotools_and_decodes():
    rng = np.random.default_rng(0)
    for trial in range(100):
        h, w = rng.integers(1, 50, 2)
        mask = rng.random((h, w)) < rng.random()
        if trial % 4 == 0:  # long runs: counts of several 5-bit groups, differences < 0
            mask = np.zeros((h, w), bool)
            mask[rng.integers(0, h):, rng.integers(0, w):] = True
        rle = encode_rle(mask)
        reference = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert rle["counts"] == reference["counts"].decode() and rle["size"] == [h, w]
        assert (decode_rle(rle) == mask).all()


def test_exported_model_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="expected an exported model.pt or model.onnx"):
        ExportedModel(str(tmp_path / "model.pth"))
    with pytest.raises(FileNotFoundError, match="model.json not found"):
        ExportedModel(str(tmp_path / "model.onnx"))
    with pytest.raises(ValueError, match=r"unknown export format 'tflite'"):
        export_all_widths(None, None, [1.0], "tflite", str(tmp_path), (64, 64))


def test_run_exported_names_the_file_or_flag_in_one_line(tmp_path):
    """A damaged description, a truncated model file, a width the file lacks: each stops
    tools/run_exported.py with one line naming the file or the flag, no traceback."""
    run_exported = tool("run_exported")
    folder = tmp_path / "export"
    folder.mkdir()
    cv2.imwrite(str(tmp_path / "image.png"), _image(32, 32))
    image = ["--input", str(tmp_path / "image.png")]
    (folder / "model.json").write_text('{"widths": [0.5, 1.0], ')  # cut short
    (folder / "model.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SystemExit, match=r"model.json is not the description tools/export_width"
                       r".py --all-widths writes \(JSONDecodeError"):
        run_exported.main([str(folder / "model.pt"), *image])
    (folder / "model.json").write_text(json.dumps({"widths": [0.5, 1.0], "outputs": []}))
    with pytest.raises(SystemExit, match=r"model.pt cannot be loaded \(.*\): the file is "
                       "damaged or incomplete") as error:
        run_exported.main([str(folder / "model.pt"), *image])
    assert "\n" not in str(error.value)
    (folder / "model.json").write_text(json.dumps({"version": 2, "widths": [1.0], "outputs": []}))
    with pytest.raises(SystemExit, match=r"model.json is version 2 of the export format; this "
                       "slimdet_lite reads versions up to 1: update it"):
        run_exported.main([str(folder / "model.pt"), *image])
    (folder / "model.json").write_text(json.dumps({"widths": [0.5, 1.0], "outputs": []}))
    torch.jit.script(torch.nn.Identity()).save(str(folder / "model.pt"))
    with pytest.raises(SystemExit, match=r"model.pt loads but does not run as an all-widths "
                       "export"):
        run_exported.main([str(folder / "model.pt"), *image])
    torch.jit.script(_Echo()).save(str(folder / "model.pt"))
    with pytest.raises(SystemExit, match=r"--width 0.3: .*model.pt holds widths \[0.5, 1.0\], "
                       "not 0.3"):
        run_exported.main([str(folder / "model.pt"), "--width", "0.3", *image])


class _Echo(torch.nn.Module):
    """The signature of an all-widths export, returning its image."""

    def forward(self, image: torch.Tensor, height: torch.Tensor, width: torch.Tensor,
                index: torch.Tensor) -> list[torch.Tensor]:
        return [image]


def test_latency_controller_steps_down_under_load_and_back_up():
    switched = []
    controller = LatencyController([0.25, 0.5, 1.0], 50, {0.25: 10, 0.5: 20, 1.0: 40},
                                   on_switch=switched.append, patience_up=3)
    assert controller.width == 1.0
    for _ in range(8):  # another process takes the cores: every width 3x slower
        controller.observe(3 * controller.reference_ms[controller.width])
    assert controller.width == 0.25
    for _ in range(30):
        controller.observe(controller.reference_ms[controller.width])  # the load is gone
    assert controller.width == 1.0 and switched[0] == 1.0 and 0.25 in switched



def test_onnx_export_of_keypoints_is_a_clear_error(tmp_path):
    cfg = load_slimmable_config(str(SYNTHETIC / "slim_keypoint_rcnn_R18_FPN.yaml"), SMALL)
    with pytest.raises(ValueError, match="keypoint models export to TorchScript only"):
        export_all_widths(cfg, None, [1.0], "onnx", str(tmp_path), (64, 64))


def test_runner_resize_is_detectron2s():
    from detectron2.data.transforms import ResizeShortestEdge

    from slimdet_lite.exported import resized_size

    sizes = [(480, 640), (640, 480), (333, 1000), (1000, 333), (1, 7), (799, 800), (64, 64),
             (427, 640), (183, 275), (500, 1333)]
    for h, w in sizes:
        for short, longest in [(800, 1333), (128, 128), (96, 128), (640, 1000), (0, 1333)]:
            expected = ((h, w) if short == 0 else
                        ResizeShortestEdge.get_output_shape(h, w, short, longest))
            assert resized_size(h, w, short, longest) == tuple(expected), (h, w, short, longest)
