"""Detectron2 training loops and trainer that train every width on every iteration."""
from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Sequence
from unittest import mock

import torch
from detectron2.config import CfgNode
from detectron2.data.build import _train_loader_from_config, trivial_batch_collator
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer
from detectron2.engine import defaults as engine_defaults
from detectron2.data import MetadataCatalog
from detectron2.evaluation import (COCOPanopticEvaluator, DatasetEvaluator, DatasetEvaluators,
                                   LVISEvaluator, SemSegEvaluator)
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage
from torch import nn
from torch.utils.data import DataLoader

from ..checkpoint import SlimmableCheckpointer
from ..config import eval_widths, validate_slimmable_config
from ..data.resumable import ResumableBatchSampler, SeededMapDataset, aspect_groups
from ..evaluation import FastCOCOEvaluator, evaluate_widths
from ..layers import width_key
from ..solver import full_model_clipping
from ..utils.rng import preserved_rng, rng_states, set_rng_states
from .calibration import calibrate_norms, needs_calibration
from .distillation import InplaceDistillation, distillation_from_config
from .gradient_probe import GradientProbe
from .width_writer import WidthMetricsPrinter
from .slimmable_step import all_reduce_gradients, forward_backward_widths
from .width_sampling import FixedWidths, SandwichWidths, WidthSchedule, width_schedule

__all__ = ["SlimmableSimpleTrainer", "SlimmableAMPTrainer", "SlimmableTrainer"]

logger = logging.getLogger(__name__)


class _SlimmableStep:
    """``run_step`` for Detectron2's loops: the iteration's widths (``schedule``) on one batch,
    one optimizer step, with inplace ``distillation`` if given.

    Everything the model logs during one width's forward (Detectron2's
    ``fast_rcnn/cls_accuracy``, ``rpn/num_pos_anchors``, ...) and that width's losses are
    logged under its name (``w0.25/fast_rcnn/cls_accuracy``, ``w0.25/loss_cls``,
    ``w0.25/total_loss``); ``total_loss`` is what the optimizer minimises (the widths' totals
    summed, or averaged with ``loss_reduction="mean"``). Under the sandwich rule the widths
    drawn between the widest and the narrowest are logged together as ``sampled/...``. Every
    ``probe_period`` iterations a ``GradientProbe`` adds ``w0.25/grad_norm`` and
    ``w0.25/grad_cos_widest`` and the summed gradient's ``grad_norm``.
    """

    schedule: WidthSchedule
    distillation: InplaceDistillation | None

    def _init_widths(self, widths: Sequence[float] | WidthSchedule,
                     distillation: InplaceDistillation | None, loss_reduction: str,
                     probe_period: int) -> None:
        self.schedule = widths if isinstance(widths, WidthSchedule) else FixedWidths(widths)
        self.distillation = distillation
        if distillation is not None:
            distillation.check_model(self.model)
        if loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {loss_reduction!r}")
        self.loss_reduction = loss_reduction
        self.probe_period = probe_period
        self.probe = GradientProbe(self.model.parameters()) if probe_period > 0 else None

    def _backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def _optimizer_step(self) -> None:
        self.optimizer.step()

    def _autocast(self):
        return nullcontext()

    def _grad_scale(self) -> float:
        """What the accumulated gradients are multiplied by (a gradient scaler's scale)."""
        return 1.0

    def _label(self, width: float, widths: Sequence[float]) -> str:
        """The name ``width``'s scalars are logged under in an iteration of ``widths``."""
        sampled = (isinstance(self.schedule, SandwichWidths)
                   and width not in (min(widths), max(widths)))
        return "sampled" if sampled else width_key(width)

    def _loss_scale(self, widths: Sequence[float]) -> float:
        return 1.0 / len(widths) if self.loss_reduction == "mean" else 1.0

    def run_step(self) -> None:
        assert self.model.training, f"[{type(self).__name__}] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        self.optimizer.zero_grad()
        distillation = self.distillation
        if distillation is not None and not distillation.active(self.iter):
            distillation = None
        widths = self.schedule(self.iter)
        storage = get_event_storage()
        probe = self.probe if self.probe and (self.iter + 1) % self.probe_period == 0 else None
        if probe is not None:
            probe.start()

        @contextmanager
        def scope(width: float):
            with storage.name_scope(self._label(width, widths)):
                yield
                if probe is not None:
                    storage.put_scalars(**probe.measure(self._grad_scale()))

        per_width = forward_backward_widths(self.model, data, widths, self._backward,
                                            self._autocast, distillation, scope,
                                            self._loss_scale(widths))
        all_reduce_gradients(self.model)
        if probe is not None:
            storage.put_scalar("grad_norm", probe.total_norm(self._grad_scale()))
        self.after_backward()
        self._write_width_metrics(per_width, data_time)
        self._optimizer_step()

    def _write_width_metrics(self, per_width: dict[float, dict[str, torch.Tensor]],
                             data_time: float) -> None:
        groups: dict[str, list[dict[str, torch.Tensor]]] = {}
        widths = sorted(per_width)
        for width in widths:
            groups.setdefault(self._label(width, widths), []).append(per_width[width])
        for label, loss_dicts in groups.items():
            prefix = f"{label}/"
            mean = {prefix + k: sum(d[k] for d in loss_dicts) / len(loss_dicts)
                    for k in loss_dicts[0]}
            self._write_metrics(mean, data_time, prefix)
        storage = get_event_storage()
        latest = storage.latest()
        totals = [(latest.get(f"{label}/total_loss"), len(d)) for label, d in groups.items()]
        if comm.is_main_process() and all(t is not None and t[1] == self.iter
                                          for t, _ in totals):
            storage.put_scalar("total_loss", self._loss_scale(widths)
                               * sum(t[0] * n for t, n in totals))


class SlimmableSimpleTrainer(_SlimmableStep, SimpleTrainer):
    """``SimpleTrainer`` that visits ``widths`` (a list, or a ``WidthSchedule``) on every
    iteration, with inplace ``distillation`` if given."""

    def __init__(self, model: nn.Module, data_loader, optimizer,
                 widths: Sequence[float] | WidthSchedule,
                 distillation: InplaceDistillation | None = None, loss_reduction: str = "sum",
                 probe_period: int = 0, **kwargs):
        super().__init__(model, data_loader, optimizer, **kwargs)
        self._init_widths(widths, distillation, loss_reduction, probe_period)


class SlimmableAMPTrainer(_SlimmableStep, AMPTrainer):
    """``AMPTrainer`` (CUDA mixed precision, gradient scaling) that visits ``widths``, with
    inplace ``distillation`` if given."""

    def __init__(self, model: nn.Module, data_loader, optimizer,
                 widths: Sequence[float] | WidthSchedule,
                 distillation: InplaceDistillation | None = None, loss_reduction: str = "sum",
                 probe_period: int = 0, **kwargs):
        super().__init__(model, data_loader, optimizer, **kwargs)
        self._init_widths(widths, distillation, loss_reduction, probe_period)

    def _autocast(self):
        return torch.autocast("cuda", dtype=self.precision)

    def _backward(self, loss: torch.Tensor) -> None:
        self.grad_scaler.scale(loss).backward()

    def _grad_scale(self) -> float:
        return float(self.grad_scaler.get_scale())

    def _optimizer_step(self) -> None:
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()


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
        validate_slimmable_config(cfg)
        with self._slimmable_loop_and_checkpointer(cfg):
            super().__init__(cfg)

    @staticmethod
    def _slimmable_loop_and_checkpointer(cfg: CfgNode):
        """While ``DefaultTrainer.__init__`` runs, make the loop it builds a
        ``SlimmableSimpleTrainer``/``SlimmableAMPTrainer`` over ``width_schedule(cfg)`` (with
        the config's distillation) and its checkpointer a ``SlimmableCheckpointer``.
        ``DefaultTrainer`` has no factory for either: it calls the names of its module, so those
        are what is bound here; the hooks it builds then hold the slimmable checkpointer from
        the start."""
        seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
        s = cfg.MODEL.SLIMMABLE
        loop = {"widths": width_schedule(cfg, seed), "distillation": distillation_from_config(cfg),
                "loss_reduction": s.LOSS_REDUCTION, "probe_period": s.GRAD_PROBE_PERIOD}
        return mock.patch.multiple(
            engine_defaults, DetectionCheckpointer=SlimmableCheckpointer,
            SimpleTrainer=partial(SlimmableSimpleTrainer, **loop),
            AMPTrainer=partial(SlimmableAMPTrainer, **loop))

    def build_writers(self) -> list:
        """Detectron2's writers, and a ``WidthMetricsPrinter`` for what each width logs."""
        return [*super().build_writers(), WidthMetricsPrinter()]

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
        """Detectron2's optimizer; with ``SOLVER.CLIP_GRADIENTS.CLIP_TYPE "full_model"`` it
        clips the L2 norm (``NORM_TYPE``) of all gradients together at ``CLIP_VALUE``
        (``slimdet.solver.full_model_clipping``), after every width of the step added its
        gradient."""
        clip = cfg.SOLVER.CLIP_GRADIENTS
        if not (clip.ENABLED and clip.CLIP_TYPE == "full_model"):
            return super().build_optimizer(cfg, model)
        plain = cfg.clone()
        plain.defrost()
        plain.SOLVER.CLIP_GRADIENTS.ENABLED = False
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
        dicts = args["dataset"]
        seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
        groups = aspect_groups(dicts) if args["aspect_ratio_grouping"] else None
        return DataLoader(SeededMapDataset(dicts, args["mapper"], seed),
                          batch_sampler=ResumableBatchSampler(len(dicts), args["total_batch_size"],
                                                              seed, groups),
                          num_workers=args["num_workers"], collate_fn=trivial_batch_collator,
                          generator=torch.Generator().manual_seed(seed))

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
            return DefaultTrainer.test(cfg, model, evals)

        with preserved_rng():  # evaluating must not shift the training's random stream
            if needs_calibration(model):
                calibrate_norms(model, eval_widths(cfg), cls.build_train_loader(cfg),
                                cfg.MODEL.SLIMMABLE.CALIBRATION_BATCHES)
            return evaluate_widths(cfg, model, run, cls.build_test_loader)
