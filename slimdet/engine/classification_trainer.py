"""``ClassificationTrainer``: ``SlimmableTrainer`` for image classification, to pretrain
slimmable, universally slimmable or single-width backbones (``tools/pretrain_backbone.py``).

Everything but the data and the metric is the detection trainer's: every width on every
iteration (or the sandwich rule), per-width scalars, progress and ETA, exact resume,
checkpoints, several processes through Detectron2's ``launch``, and at every test width the
top-1 accuracy (universal BatchNorm models calibrated first).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, build_detection_test_loader

from ..data.image_folder import ClassificationMapper
from ..data.resumable import resumable_loader
from ..evaluation import ClassificationEvaluator
from ..utils.rng import train_seed
from .classifier_distillation import SoftLabelDistillation, classifier_distillation_from_config
from .slimmable_trainer import SlimmableTrainer

__all__ = ["ClassificationTrainer"]


class ClassificationTrainer(SlimmableTrainer):
    """``SlimmableTrainer`` over image folders (``slimdet.data.image_folder``) with a
    ``SlimmableImageClassifier``; results per width are ``{"classification": {"top1"}}``."""

    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> Iterable[list[dict]]:
        """The training sets' images (``ClassificationMapper``: random crop and flip) as an
        exactly resumable stream of ``SOLVER.IMS_PER_BATCH`` images, seeded by ``SEED``."""
        dicts = [d for name in cfg.DATASETS.TRAIN for d in DatasetCatalog.get(name)]
        return resumable_loader(dicts, ClassificationMapper(cfg, True), cfg.SOLVER.IMS_PER_BATCH,
                                train_seed(cfg), False, cfg.DATALOADER.NUM_WORKERS)

    @classmethod
    def build_distillation(cls, cfg: CfgNode) -> Optional[SoftLabelDistillation]:
        """Soft-label inplace distillation (``SoftLabelDistillation``), None if it is off."""
        return classifier_distillation_from_config(cfg)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        """The test set's images, centre-cropped, in batches of ``SOLVER.IMS_PER_BATCH``."""
        return build_detection_test_loader(DatasetCatalog.get(dataset_name),
                                           mapper=ClassificationMapper(cfg, False),
                                           batch_size=cfg.SOLVER.IMS_PER_BATCH,
                                           num_workers=cfg.DATALOADER.NUM_WORKERS)

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str,
                        output_folder: str | None = None) -> ClassificationEvaluator:
        """Top-1 accuracy (``ClassificationEvaluator``)."""
        return ClassificationEvaluator(dataset_name)
