"""Image classification datasets in torchvision's ``ImageFolder`` layout
(``SPLIT_DIR/<class>/<image>``), registered with Detectron2's catalogs, and their mapper.

A dataset dict is ``{"file_name", "image_id", "label"}``; the metadata hold ``classes`` (sorted
folder names, as ``ImageFolder`` orders them) and ``evaluator_type`` ``"classification"``.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.detection_utils import read_image

__all__ = ["register_image_folder", "load_image_folder", "ClassificationMapper", "CenterCrop"]

_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def load_image_folder(split_dir: str, generator: Optional[str] = None) -> list[dict]:
    """Dataset dicts of every image under ``split_dir/<class>/``, classes in sorted order;
    ``FileNotFoundError`` naming ``generator`` (a module that writes the set) if it is missing."""
    if not os.path.isdir(split_dir):
        hint = f"; generate it with: python -m {generator} --out <root>" if generator else ""
        raise FileNotFoundError(f"no image folder {split_dir}{hint}")
    classes = sorted(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d)))
    dicts = []
    for label, name in enumerate(classes):
        for file in sorted(os.listdir(os.path.join(split_dir, name))):
            if file.lower().endswith(_SUFFIXES):
                dicts.append({"file_name": os.path.join(split_dir, name, file),
                              "image_id": len(dicts), "label": label})
    if not dicts:
        raise FileNotFoundError(f"no images in the class folders of {split_dir}")
    return dicts


def register_image_folder(name: str, split_dir: str, classes: Sequence[str],
                          generator: Optional[str] = None) -> None:
    """Register ``name`` as the image folder ``split_dir`` (read when loaded) whose class folders
    are ``classes``; already registered names are left alone."""
    if name in DatasetCatalog.list():
        return
    DatasetCatalog.register(name, lambda: load_image_folder(split_dir, generator))
    MetadataCatalog.get(name).set(classes=sorted(classes), evaluator_type="classification",
                                  image_root=split_dir)


class CenterCrop(T.Augmentation):
    """Crop the central ``size`` x ``size`` square (the image must be at least that large)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        if min(h, w) < self.size:
            raise ValueError(f"cannot center-crop {self.size} pixels from a {h}x{w} image")
        return T.CropTransform((w - self.size) // 2, (h - self.size) // 2, self.size, self.size)


class ClassificationMapper:
    """Dataset dict -> ``{"image": CHW uint8 tensor in INPUT.FORMAT, "label", "file_name"}``.
    Training: shortest edge resized to one of ``INPUT.MIN_SIZE_TRAIN``, a random square crop
    of ``min(MIN_SIZE_TRAIN)`` pixels and a random horizontal flip; test: shortest edge
    ``MIN_SIZE_TEST`` and the central square of that size."""

    def __init__(self, cfg: CfgNode, is_train: bool):
        self.format = cfg.INPUT.FORMAT
        if is_train:
            size = min(cfg.INPUT.MIN_SIZE_TRAIN)
            self.augmentations = T.AugmentationList([
                T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN,
                                     cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING),
                T.RandomCrop("absolute", (size, size)), T.RandomFlip()])
        else:
            size = cfg.INPUT.MIN_SIZE_TEST
            self.augmentations = T.AugmentationList([
                T.ResizeShortestEdge(size, cfg.INPUT.MAX_SIZE_TEST), CenterCrop(size)])

    def __call__(self, dataset_dict: dict) -> dict:
        image = read_image(dataset_dict["file_name"], format=self.format)
        aug = T.AugInput(image)
        self.augmentations(aug)
        chw = torch.as_tensor(np.ascontiguousarray(aug.image.transpose(2, 0, 1)))
        return {"image": chw, "label": dataset_dict["label"],
                "file_name": dataset_dict["file_name"]}
