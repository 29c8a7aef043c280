"""Synthetic dataset: determinism, masks/keypoints matching the pixels, Detectron2 loading."""
from __future__ import annotations

import contextlib
import io
import pathlib

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from pycocotools.coco import COCO

from slimdet.data.datasets import KEYPOINT_NAMES, register_generated
from slimdet.data.synthetic import generate

SIZE = 96


def _generate(root: pathlib.Path) -> pathlib.Path:
    generate(str(root), num_train=6, num_val=3, image_size=SIZE, seed=0)
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return _generate(tmp_path_factory.mktemp("synthetic"))


def _coco(root: pathlib.Path, task: str, split: str) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(root / "annotations" / f"{task}_{split}.json"))


def test_same_seed_gives_identical_files(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    again = _generate(tmp_path / "again")
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert len(files) == 2 * 2 + 6 + 3
    for rel in files:
        assert (root / rel).read_bytes() == (again / rel).read_bytes(), rel


@pytest.mark.parametrize("split", ["train", "val"])
def test_masks_boxes_and_areas_match_drawn_pixels(root: pathlib.Path, split: str) -> None:
    coco = _coco(root, "instances", split)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [
        "person",
        "circle",
        "rectangle",
        "triangle",
    ]
    for img in coco.loadImgs(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        assert 1 <= len(anns) <= 4
        rgb = cv2.imread(str(root / "images" / split / img["file_name"]))[:, :, ::-1]
        assert rgb.shape == (SIZE, SIZE, 3)
        union = np.zeros((SIZE, SIZE), bool)
        for ann in anns:
            mask = coco.annToMask(ann).astype(bool)
            assert not (union & mask).any(), "objects must not overlap"
            union |= mask
            assert abs(mask.sum() - ann["area"]) <= 0.15 * ann["area"]
            ys, xs = np.nonzero(mask)
            x, y, w, h = ann["bbox"]
            assert x <= xs.min() + 0.5 and xs.max() + 0.5 <= x + w
            assert y <= ys.min() + 0.5 and ys.max() + 0.5 <= y + h
        # Drawn objects differ strongly from the background; the masks cover exactly them.
        background = np.median(rgb[~union], axis=0)
        drawn = np.abs(rgb.astype(int) - background).sum(-1) > 60
        assert (drawn == union).mean() > 0.995


def test_keypoints_lie_on_people(root: pathlib.Path) -> None:
    coco = _coco(root, "person_keypoints", "train")
    (category,) = coco.loadCats(coco.getCatIds())
    assert category["name"] == "person" and category["keypoints"] == list(KEYPOINT_NAMES)
    assert len(coco.getImgIds()) == 6, "images without people are listed too"
    anns = coco.loadAnns(coco.getAnnIds())
    assert anns, "seed 0 must produce people"
    for ann in anns:
        kp = np.array(ann["keypoints"]).reshape(17, 3)
        assert ann["num_keypoints"] == 17 and (kp[:, 2] == 2).all()
        mask = coco.annToMask(ann).astype(bool)
        centres = np.floor(kp[:, :2] + 0.5).astype(int)  # pixel indices -> containing pixel
        assert mask[centres[:, 1], centres[:, 0]].all()
        x, y, w, h = ann["bbox"]
        px, py = kp[:, 0] + 0.5, kp[:, 1] + 0.5  # continuous coordinates, like the bbox
        assert ((px >= x) & (px <= x + w) & (py >= y) & (py <= y + h)).all()
        # "left" is the figure's left, i.e. the image right of a figure facing the camera.
        assert (kp[1::2, 0] > kp[2::2, 0]).all()  # every left_* keypoint vs its right_* twin


def test_detectron2_registration_and_loading(root: pathlib.Path) -> None:
    register_generated(str(root), prefix="synthtest")
    register_generated(str(root), prefix="synthtest")  # second call is a no-op
    dicts = DatasetCatalog.get("synthtest_instances_train")
    assert len(dicts) == 6
    assert all("segmentation" in a for d in dicts for a in d["annotations"])
    assert MetadataCatalog.get("synthtest_instances_val").evaluator_type == "coco"
    kp_dicts = DatasetCatalog.get("synthtest_keypoints_val")
    assert len(kp_dicts) == 3
    people = [a for d in kp_dicts for a in d["annotations"]]
    assert people and all(len(a["keypoints"]) == 51 and "segmentation" in a for a in people)
    meta = MetadataCatalog.get("synthtest_keypoints_val")
    assert list(meta.keypoint_names) == list(KEYPOINT_NAMES) and meta.thing_classes == ["person"]
    assert ("left_wrist", "right_wrist") in meta.keypoint_flip_map


def test_missing_files_fail_with_instructions(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nowhere"
    register_generated(str(missing), prefix="synthmissing")
    assert not missing.exists(), "registration must not touch the files"
    with pytest.raises(FileNotFoundError) as error:
        DatasetCatalog.get("synthmissing_keypoints_train")
    message = str(error.value)
    assert str(missing / "annotations" / "person_keypoints_train.json") in message
    assert f"python -m slimdet.data.synthetic --out {missing}" in message
