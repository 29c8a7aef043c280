"""The cluttered benchmark dataset: deterministic, COCO-valid, hard in the intended ways, and
not solvable by colour."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from pycocotools import mask as mask_util
from torchvision.datasets import ImageFolder

from helpers import tool
from slimdet.data import clutter, clutter_classes, synthetic
from slimdet.data.datasets import CLUTTER_CLASSES, annotation_path, image_dir, register_generated


def _digest(root: Path) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return hashlib.sha1(b"".join(p.read_bytes() for p in files)).hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clutter")
    clutter.generate(str(root), num_train=160, num_val=80, seed=0)
    return root


def _coco(root: Path, split: str, task: str = "instances") -> dict:
    return json.loads(Path(annotation_path(str(root), task, split)).read_text())


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        clutter.generate(str(tmp_path / name), num_train=3, num_val=2, seed=seed)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_annotations_are_the_visible_objects(data):
    coco = _coco(data, "train")
    assert [c["name"] for c in coco["categories"]] == list(CLUTTER_CLASSES)
    anns = coco["annotations"]
    assert set(Counter(a["category_id"] for a in anns)) == set(range(1, 10))
    for a in anns:
        mask = mask_util.decode(a["segmentation"])
        assert a["area"] == mask.sum() >= 24
        assert a["bbox"] == pytest.approx(list(mask_util.toBbox(a["segmentation"])))
    per_image = Counter(a["image_id"] for a in anns)
    assert min(per_image.values()) == 1 and max(per_image.values()) == 6  # up to crowded
    areas = np.array([a["area"] for a in anns])
    assert (areas < 32 ** 2).mean() > 0.3 and areas.max() > 48 ** 2  # small and large objects
    # occlusion: the visible masks of an image are disjoint, while their boxes overlap
    by_image: dict[int, list] = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    assert all(np.sum([mask_util.decode(a["segmentation"]) for a in group], axis=0).max() <= 1
               for group in by_image.values())
    ious = [mask_util.iou([a["bbox"] for a in group], [a["bbox"] for a in group],
                          [0] * len(group)) for group in by_image.values()]
    assert sum(((iou - np.eye(len(iou))) > 0.1).any() for iou in ious) > len(ious) / 3
    people = _coco(data, "train", "person_keypoints")["annotations"]
    flags = Counter(v for p in people for v in p["keypoints"][2::3])
    assert set(flags) == {1, 2} and flags[1] > 0  # some keypoints are hidden by occluders


def _mean_colours(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean RGB of every object's mask, and its category id."""
    import cv2

    coco = _coco(root, split)
    images = {i["id"]: cv2.imread(str(Path(image_dir(str(root), split)) / i["file_name"]))
              for i in coco["images"]}
    features, labels = [], []
    for a in coco["annotations"]:
        segm = a["segmentation"]
        if isinstance(segm, list):  # polygons (the shapes dataset)
            segm = mask_util.merge(mask_util.frPyObjects(segm, *images[a["image_id"]].shape[:2]))
        mask = mask_util.decode(segm).astype(bool)
        features.append(images[a["image_id"]][mask].mean(0))
        labels.append(a["category_id"])
    return np.array(features), np.array(labels)


def _colour_classifier_accuracy(root: Path) -> tuple[float, float]:
    """Accuracy of 15-nearest-neighbour classification by mean colour (train -> val), and the
    accuracy of always answering the most frequent class."""
    x_train, y_train = _mean_colours(root, "train")
    x_val, y_val = _mean_colours(root, "val")
    distances = ((x_val[:, None] - x_train[None]) ** 2).sum(-1)
    nearest = y_train[np.argsort(distances, axis=1)[:, :15]]
    predicted = np.array([Counter(row).most_common(1)[0][0] for row in nearest])
    return float((predicted == y_val).mean()), Counter(y_val).most_common(1)[0][1] / len(y_val)


def test_colour_alone_is_near_chance(data, tmp_path):
    accuracy, chance = _colour_classifier_accuracy(data)
    assert accuracy < chance + 0.05, (accuracy, chance)
    # The same classifier on the shapes dataset, where colour gives the class:
    synthetic.generate(str(tmp_path), num_train=60, num_val=30, seed=0)
    easy, _ = _colour_classifier_accuracy(tmp_path)
    assert easy > 0.95


def test_registered_with_detectron2(data):
    register_generated(str(data), "cluttertest", CLUTTER_CLASSES, "slimdet.data.clutter")
    dicts = DatasetCatalog.get("cluttertest_instances_val")
    assert len(dicts) == 80 and isinstance(dicts[0]["annotations"][0]["segmentation"], dict)
    assert MetadataCatalog.get("cluttertest_instances_val").thing_classes == list(CLUTTER_CLASSES)
    people = DatasetCatalog.get("cluttertest_keypoints_val")
    assert people and all(len(a["keypoints"]) == 51 for d in people for a in d["annotations"])


def test_picture_of_the_annotations(data, tmp_path):
    register_generated(str(data), "cluttertest", CLUTTER_CLASSES, "slimdet.data.clutter")
    out = tmp_path / "clutter.png"
    picture = tool("visualize_data").main(["--dataset", "cluttertest_instances_val", "--output",
                                          str(out), "--count", "3", "--columns", "2"])
    assert picture.shape == (2 * 256, 2 * 2 * 256, 3) and out.stat().st_size > 0
    plain, drawn = picture[:256, :256], picture[:256, 256:512]
    assert (plain != drawn).mean() > 0.05  # boxes, masks and labels were drawn
    assert not picture[256:, 512:].any()  # the fourth panel is empty


def test_classification_set_is_balanced_deterministic_and_an_image_folder(tmp_path):
    first, again, other = (tmp_path / name for name in ("a", "b", "seed1"))
    clutter_classes.generate(str(first), num_train=36, num_val=18)
    clutter_classes.generate(str(again), num_train=36, num_val=18)
    clutter_classes.generate(str(other), num_train=36, num_val=18, seed=1)
    assert _digest(first) == _digest(again) != _digest(other)
    for split, per_class in (("train", 4), ("val", 2)):
        folder = ImageFolder(str(first / split))
        assert sorted(folder.classes) == sorted(CLUTTER_CLASSES)
        assert Counter(folder.targets) == {i: per_class for i in range(9)}
        assert folder[0][0].size == (clutter_classes.IMAGE_SIZE, clutter_classes.IMAGE_SIZE)
