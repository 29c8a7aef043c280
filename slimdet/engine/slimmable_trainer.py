"""``SlimmableTrainer``: Detectron2's ``DefaultTrainer`` for slimmable models."""
from __future__ import annotations

import logging
import os
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from typing import Optional

import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
# Detectron2 exposes the train loader's arguments (datasets after filtering, mapper, batch
# size) only through this function, which its own build_detection_train_loader calls.
from detectron2.data.build import _train_loader_from_config
from detectron2.engine import DefaultTrainer, SimpleTrainer, TrainerBase, create_ddp_model
from detectron2.engine.hooks import EvalHook, PeriodicCheckpointer
from detectron2.evaluation import (COCOPanopticEvaluator, DatasetEvaluator, DatasetEvaluators,
                                   LVISEvaluator, SemSegEvaluator)
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter
from detectron2.utils.logger import setup_logger
from torch import nn
from torch.utils.data import DataLoader

from ..checkpoint import SlimmableCheckpointer
from ..config import eval_widths, validate_slimmable_config
from ..data.resumable import ResumableBatchSampler, resumable_loader
from ..evaluation import FastCOCOEvaluator, evaluate_widths
from ..solver import PER_WIDTH_CLIP_TYPES, full_model_clipping, width_clip_threshold
from ..utils.rng import preserved_rng, rng_states, set_rng_states, train_seed
from .calibration import calibrate_norms, needs_calibration
from .distillation import InplaceDistillation, distillation_from_config
from .slimmable_loop import SlimmableAMPTrainer, SlimmableSimpleTrainer
from .width_sampling import SandwichWidths, width_schedule
from .weight_average import WeightAverage
from .progress_printer import WidthProgressPrinter

__all__ = ["SlimmableTrainer"]

logger = logging.getLogger(__name__)


class SlimmableTrainer(DefaultTrainer):
    """``DefaultTrainer`` for slimmable models: every ``TRAIN_WIDTHS`` width on every
    iteration (universal models: the sandwich rule), inplace distillation if
    ``MODEL.SLIMMABLE.DISTILL.ENABLED``, checkpoints through ``SlimmableCheckpointer``, and
    evaluation at every ``TEST_WIDTHS`` width (results keyed ``w0.25``, ... for the EvalHook
    and writers; a universal BatchNorm model is calibrated at those widths first).

    Resume is exact: checkpoints carry the data stream's seed and position (see
    ``slimdet.data.resumable``) and the global random generators, and evaluation leaves those
    generators as it found them, so a run resumed from a checkpoint trains on the same batches
    with the same sampling as the uninterrupted run.
    """

    def __init__(self, cfg: CfgNode):
        # DefaultTrainer.__init__ builds its loop and checkpointer by class name, with no
        # factory to override; this one builds the same parts with Detectron2's builders and
        # takes the loop from ``build_loop`` and the checkpointer from ``build_checkpointer``.
        validate_slimmable_config(cfg)
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = self.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = self.build_loop(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = self.build_checkpointer(cfg, model)
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_loop(cls, cfg: CfgNode, model: nn.Module, data_loader: Iterable[list[dict]],
                   optimizer: torch.optim.Optimizer) -> SimpleTrainer:
        """The training loop: ``SlimmableAMPTrainer`` if ``SOLVER.AMP.ENABLED``, else
        ``SlimmableSimpleTrainer``, over ``width_schedule(cfg)`` (seeded by ``SEED``, or a
        random seed shared by all processes), with ``build_distillation``, the loss reduction,
        the gradient probe and the per-width clipping (``CLIP_TYPE "per_width"``: at
        ``CLIP_VALUE``; ``"per_width_percentile"``: at the ``PERCENTILE`` of each width's
        own norm history) of the config."""
        seed = train_seed(cfg)
        s = cfg.MODEL.SLIMMABLE
        loop = SlimmableAMPTrainer if cfg.SOLVER.AMP.ENABLED else SlimmableSimpleTrainer
        return loop(model, data_loader, optimizer, width_schedule(cfg, seed),
                    cls.build_distillation(cfg), s.LOSS_REDUCTION, s.GRAD_PROBE_PERIOD,
                    width_clip_threshold(cfg) or 0.0)

    @classmethod
    def build_distillation(cls, cfg: CfgNode) -> Optional[InplaceDistillation]:
        """Inplace distillation of ``MODEL.SLIMMABLE.DISTILL`` for R-CNN, None if it is off."""
        return distillation_from_config(cfg)

    def build_checkpointer(self, cfg: CfgNode, model: nn.Module) -> SlimmableCheckpointer:
        """A ``SlimmableCheckpointer`` saving to ``OUTPUT_DIR`` with this trainer's state."""
        return SlimmableCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))

    def build_hooks(self) -> list:
        """Detectron2's hooks; with ``SOLVER.WEIGHT_AVERAGE.DECAY`` > 0 a ``WeightAverage``
        before the checkpointer, so the final checkpoint and evaluation hold the average."""
        hooks = super().build_hooks()
        average = self.cfg.SOLVER.WEIGHT_AVERAGE
        if average.DECAY > 0:
            position = next((i for i, h in enumerate(hooks)
                             if isinstance(h, (PeriodicCheckpointer, EvalHook))), len(hooks))
            hooks.insert(position, WeightAverage(self.model, average.DECAY, average.START_ITER))
        return hooks

    def build_writers(self) -> list:
        """Detectron2's writers (``metrics.json``, tensorboard) with a
        ``WidthProgressPrinter`` instead of its console printer: one line per period (each
        width's total loss, the ETA), while the files keep every per-width scalar."""
        return [WidthProgressPrinter(self.max_iter) if isinstance(w, CommonMetricPrinter) else w
                for w in super().build_writers()]

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
        """Detectron2's optimizer; with ``SOLVER.CLIP_GRADIENTS.CLIP_TYPE "full_model"`` it
        clips the L2 norm (``NORM_TYPE``) of all gradients together at ``CLIP_VALUE``
        (``slimdet.solver.full_model_clipping``), after every width of the step added its
        gradient. ``CLIP_TYPE "per_width"`` clips in the training loop instead, each width's
        gradient before the sum (``build_loop``), and the optimizer is Detectron2's plain one;
        so does ``"per_width_percentile"``."""
        clip = cfg.SOLVER.CLIP_GRADIENTS
        if not (clip.ENABLED and clip.CLIP_TYPE in ("full_model", *PER_WIDTH_CLIP_TYPES)):
            return super().build_optimizer(cfg, model)
        plain = cfg.clone()
        plain.defrost()
        plain.SOLVER.CLIP_GRADIENTS.ENABLED = False
        if clip.CLIP_TYPE in PER_WIDTH_CLIP_TYPES:  # checked by validate_slimmable_config
            return super().build_optimizer(plain, model)
        return full_model_clipping(super().build_optimizer(plain, model), clip.CLIP_VALUE,
                                   clip.NORM_TYPE)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> Iterable[list[dict]]:
        """Detectron2's training data (datasets, filtering, ``DatasetMapper``, batch size,
        aspect grouping, workers) as an exactly resumable stream, seeded by ``SEED`` (a random
        seed, kept in the checkpoint, if it is -1). Other samplers than ``TrainingSampler`` use
        Detectron2's loader, which restarts its stream on resume."""
        if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler":
            logger.warning("DATALOADER.SAMPLER_TRAIN=%s: a resumed run restarts the data stream",
                           cfg.DATALOADER.SAMPLER_TRAIN)
            return super().build_train_loader(cfg)
        args = _train_loader_from_config(cfg, sampler=())  # () skips Detectron2's sampler
        return resumable_loader(args["dataset"], args["mapper"], args["total_batch_size"],
                                train_seed(cfg), args["aspect_ratio_grouping"],
                                args["num_workers"])

    def _resumable_loader(self) -> DataLoader | None:
        loader = self._trainer.data_loader
        return loader if isinstance(getattr(loader, "batch_sampler", None),
                                    ResumableBatchSampler) else None

    def state_dict(self) -> dict:
        """Detectron2's trainer state, plus the global generators and the data stream's seed
        and next batch."""
        state = super().state_dict()
        state["rng"] = rng_states()
        if isinstance(self._trainer.schedule, SandwichWidths):
            state["width_seed"] = self._trainer.schedule.seed
        loader = self._resumable_loader()
        if loader is not None:
            state["data"] = {"seed": loader.batch_sampler.seed, "next_batch": self.iter + 1}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "rng" in state:
            set_rng_states(state["rng"])
        if "width_seed" in state:
            self._trainer.schedule.seed = int(state["width_seed"])
        loader = self._resumable_loader()
        if loader is not None and "data" in state:
            loader.batch_sampler.seed = loader.dataset.seed = state["data"]["seed"]
            loader.batch_sampler.start = state["data"]["next_batch"]

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str,
                        output_folder: str | None = None) -> DatasetEvaluator:
        """The evaluators of the dataset's ``evaluator_type``, as Detectron2's train_net picks
        them: ``coco``, ``lvis``, ``sem_seg``, ``coco_panoptic_seg`` (semantic, instance and
        panoptic); any other type raises ``NotImplementedError`` naming it. COCO AP comes from
        a compiled COCOeval (``FastCOCOEvaluator``)."""
        kind = MetadataCatalog.get(dataset_name).get("evaluator_type")
        builders = {
            "coco": [FastCOCOEvaluator],
            "lvis": [LVISEvaluator],
            "sem_seg": [SemSegEvaluator],
            "coco_panoptic_seg": [SemSegEvaluator, FastCOCOEvaluator, COCOPanopticEvaluator],
        }.get(kind)
        if builders is None:
            raise NotImplementedError(f"no evaluator for dataset {dataset_name!r} of "
                                      f"evaluator_type {kind!r}; supported: coco, lvis, sem_seg, "
                                      "coco_panoptic_seg (or override build_evaluator)")
        evaluators = [build(dataset_name, output_dir=output_folder) for build in builders]
        return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)

    @classmethod
    def test(cls, cfg: CfgNode, model: nn.Module,
             evaluators: list[DatasetEvaluator] | None = None) -> OrderedDict:
        """COCO evaluation at every ``MODEL.SLIMMABLE.TEST_WIDTHS`` width; a universal model
        with BatchNorm is first calibrated at those widths on ``CALIBRATION_BATCHES`` training
        batches."""
        def run(width: float, output_folder: str) -> dict:
            evals = evaluators or [cls.build_evaluator(cfg, name, os.path.join(output_folder, name))
                                   for name in cfg.DATASETS.TEST]
            return super(SlimmableTrainer, cls).test(cfg, model, evals)  # cls: its loaders

        with preserved_rng():  # evaluating must not shift the training's random stream
            if needs_calibration(model):
                calibrate_norms(model, eval_widths(cfg), cls.build_train_loader(cfg),
                                cfg.MODEL.SLIMMABLE.CALIBRATION_BATCHES)
            return evaluate_widths(cfg, model, run, cls.build_test_loader)
