"""Bad training data and bad configurations: each gets a clear error that names it, or is
handled the way Detectron2 handles it (filtered or clipped) and trains without a crash."""
from __future__ import annotations

import json
import logging
import shutil
import uuid

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data.datasets import register_coco_instances
from detectron2.engine import default_argument_parser
from detectron2.modeling import ROI_BOX_HEAD_REGISTRY, build_model
from detectron2.utils.events import EventStorage
from PIL import Image
from torch import nn

import slimdet
from helpers import SYNTHETIC_CONFIG
from slimdet.data.datasets import KEYPOINT_FLIP_MAP, KEYPOINT_NAMES
from slimdet.data.synthetic import generate
from slimdet.engine import SlimmableTrainer
from slimdet.engine.run_setup import check_devices, setup_run

KEYPOINT_CONFIG = SYNTHETIC_CONFIG.with_name("slim_keypoint_rcnn_R18_FPN.yaml")
SMALL = ["INPUT.MIN_SIZE_TRAIN", (64,), "INPUT.MAX_SIZE_TRAIN", 64, "SOLVER.IMS_PER_BATCH", 4,
         "DATALOADER.NUM_WORKERS", 0, "MODEL.FPN.OUT_CHANNELS", 64,
         "MODEL.ROI_BOX_HEAD.FC_DIM", 64, "SEED", 0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate(str(root), num_train=4, num_val=1, image_size=64, seed=0)
    return root


def _cfg(config=SYNTHETIC_CONFIG, *opts):
    cfg = get_cfg()
    slimdet.add_slimmable_config(cfg)
    cfg.merge_from_file(str(config))
    cfg.merge_from_list([*SMALL, *opts])
    return cfg


def _dataset(data, tmp_path, task: str, edit) -> str:
    """Register a copy of the 4 training images, with ``edit(coco_json, image_dir)`` applied."""
    images = tmp_path / "images"
    shutil.copytree(data / "images" / "train", images)
    coco = json.loads((data / "annotations" / f"{task}_train.json").read_text())
    edit(coco, images)
    (tmp_path / "train.json").write_text(json.dumps(coco))
    name = f"bad_{uuid.uuid4().hex[:8]}"
    metadata = {"keypoint_names": KEYPOINT_NAMES, "keypoint_flip_map": KEYPOINT_FLIP_MAP}
    register_coco_instances(name, metadata if task == "person_keypoints" else {},
                            str(tmp_path / "train.json"), str(images))
    return name


def _first(coco: dict, key: str = "annotations") -> dict:
    """The first record of image 1 (which every first batch of 4 holds)."""
    return next(r for r in coco[key] if r.get("image_id", r.get("id")) == 1)


def _image_1(images) -> str:
    return str(images / "000001.png")


def _rewrite_image(mode: str):
    def edit(coco, images):
        Image.open(_image_1(images)).convert(mode).save(_image_1(images))
    return edit


def _set(key: str, value):
    def edit(coco, _):
        _first(coco)[key] = value
    return edit


def _no_annotations(coco, _):
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != 1]


def _keypoints_outside(coco, _):
    annotation = next(a for a in coco["annotations"] if a["num_keypoints"] > 0)
    annotation["keypoints"][:3] = [500.0, -40.0, 2]


def _broken_file(coco, images):
    open(_image_1(images), "w").write("not a png")


def _missing_file(coco, images):
    _first(coco, "images")["file_name"] = "missing.png"


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


# (case, task, edit, expected error or None, log message Detectron2 writes for a filter)
CASES = [
    ("missing image", "instances", _missing_file,
     r"training record \d+ \(file_name='.*missing\.png'.*failed to load: FileNotFoundError", None),
    ("unreadable image", "instances", _broken_file,
     r"training record \d+ \(file_name='.*000001\.png'.*UnidentifiedImageError", None),
    ("degenerate box", "instances", _set("bbox", [10.0, 10.0, 0.0, 0.0]), None, None),
    ("box outside the image", "instances", _set("bbox", [200.0, 200.0, 30.0, 30.0]), None, None),
    ("invalid polygon", "instances", _set("segmentation", [[1.0, 1.0, 5.0, 5.0]]), None,
     "Filtered out 1 instances without valid segmentation"),
    ("grayscale image", "instances", _rewrite_image("L"), None, None),
    ("RGBA image", "instances", _rewrite_image("RGBA"), None, None),
    ("image without annotations", "instances", _no_annotations, None,
     "Removed 1 images with no usable annotations. 3 images left."),
    ("keypoints outside the image", "person_keypoints", _keypoints_outside, None, None),
]


@pytest.mark.parametrize("case,task,edit,error,log", CASES, ids=[c[0] for c in CASES])
def test_bad_training_record(data, tmp_path, case, task, edit, error, log):
    name = _dataset(data, tmp_path, task, edit)
    cfg = _cfg(KEYPOINT_CONFIG if task == "person_keypoints" else SYNTHETIC_CONFIG,
               "DATASETS.TRAIN", (name,))
    records, d2_logger = _Records(), logging.getLogger("detectron2")
    level = d2_logger.level
    d2_logger.addHandler(records)
    d2_logger.setLevel(logging.INFO)
    try:
        loader = SlimmableTrainer.build_train_loader(cfg)
        if error:
            with pytest.raises(RuntimeError, match=error):
                next(iter(loader))
            return
        batch = next(iter(loader))
    finally:
        d2_logger.removeHandler(records)
        d2_logger.setLevel(level)
    if log:
        assert any(log in m for m in records.messages), records.messages
    assert all(item["image"].shape[0] == 3 for item in batch)  # gray and RGBA became RGB
    for item in batch:  # what Detectron2 keeps of a box lies inside the image and is not empty
        boxes = item["instances"].gt_boxes
        assert boxes.nonempty().all() and (boxes.tensor[:, 2:] <= 64).all()
    if task == "person_keypoints":
        keypoints = torch.cat([item["instances"].gt_keypoints.tensor for item in batch])
        outside = (keypoints[..., :2] < 0).any(-1) | (keypoints[..., :2] > 64).any(-1)
        assert (keypoints[..., 2][outside] == 0).all()  # marked unlabeled, not trained on
    model = build_model(cfg).train()
    with EventStorage():
        losses = model(batch)
    assert all(torch.isfinite(v) for v in losses.values())


def test_unregistered_dataset_is_named(data):
    with pytest.raises(KeyError, match="Dataset 'no_such_dataset' is not registered"):
        SlimmableTrainer.build_train_loader(_cfg(SYNTHETIC_CONFIG,
                                                 "DATASETS.TRAIN", ("no_such_dataset",)))


@ROI_BOX_HEAD_REGISTRY.register()
class UnslimmableBoxHead(nn.Module):
    """A box head with a per-channel parameter that is no conv, linear or norm."""

    def __init__(self, cfg, input_shape):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(cfg.MODEL.ROI_BOX_HEAD.FC_DIM))
        self.output_shape = cfg.MODEL.ROI_BOX_HEAD.FC_DIM

    def forward(self, x):
        return x.flatten(1)[:, : self.scale.numel()] * self.scale


@pytest.mark.parametrize("opts,message", [
    (["MODEL.SLIMMABLE.WIDTHS", "[0.0, 1.0]"], r"WIDTHS must be distinct values in \(0, 1\]"),
    (["MODEL.SLIMMABLE.WIDTHS", "[0.5, 1.5]"], r"WIDTHS must be distinct values in \(0, 1\]"),
    (["MODEL.SLIMMABLE.TRAIN_WIDTHS", "[0.3]"],
     r"TRAIN_WIDTHS has widths \[0.3\] not in MODEL.SLIMMABLE.WIDTHS"),
    (["MODEL.SLIMMABLE.TEST_WIDTHS", "[0.6]"], r"TEST_WIDTHS has widths \[0.6\] not in"),
    (["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE",
      "per_width_percentile", "SOLVER.CLIP_GRADIENTS.PERCENTILE", "150.0"],
     r"PERCENTILE must be in \(0, 100\], got 150.0"),
    (["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "per_width",
      "SOLVER.CLIP_GRADIENTS.NORM_TYPE", "1.0"], r"per_width clips the L2 norm"),
])
def test_bad_widths_fail_before_the_output_folder_is_made(tmp_path, opts, message):
    args = default_argument_parser().parse_args(
        ["--config-file", str(SYNTHETIC_CONFIG), *opts, "OUTPUT_DIR", str(tmp_path / "out")])
    with pytest.raises(ValueError, match=message):
        setup_run(args)
    assert not (tmp_path / "out").exists()


def test_slim_heads_with_a_head_that_cannot_slim_names_it():
    cfg = _cfg(SYNTHETIC_CONFIG, "MODEL.ROI_BOX_HEAD.NAME", "UnslimmableBoxHead")
    with pytest.raises(TypeError, match=r"cannot slim UnslimmableBoxHead: parameter 'scale' .*"
                                        r"set SLIM_HEADS False"):
        build_model(cfg)


def test_checkpoint_of_another_architecture_fails_before_training(data, tmp_path):
    other = build_model(_cfg(SYNTHETIC_CONFIG, "MODEL.ROI_HEADS.NUM_CLASSES", 3))
    torch.save({"model": other.state_dict()}, tmp_path / "other.pth")
    name = _dataset(data, tmp_path, "instances", lambda coco, images: None)
    trainer_cfg = _cfg(SYNTHETIC_CONFIG, "MODEL.WEIGHTS", str(tmp_path / "other.pth"),
                       "DATASETS.TRAIN", (name,), "OUTPUT_DIR", str(tmp_path / "out"))
    with pytest.raises(ValueError, match=r"mismatched shapes:\n  roi_heads\.box_predictor"):
        SlimmableTrainer(trainer_cfg).resume_or_load(resume=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpus_this_machine_lacks_fail_before_launch():
    check = check_devices
    with pytest.raises(SystemExit, match=r"--num-gpus 4: this machine has 0 CUDA device\(s\); "
                                         r"pass --num-gpus 1"):
        check("cpu", 4)
    with pytest.raises(SystemExit, match="MODEL.DEVICE cuda: PyTorch sees no CUDA device here"):
        check("cuda", 1)
    check("cpu", 1)
