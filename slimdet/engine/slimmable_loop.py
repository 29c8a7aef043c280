"""Detectron2 training loops that train every width of a slimmable model on every iteration.

``SlimmableSimpleTrainer`` and ``SlimmableAMPTrainer`` are Detectron2's ``SimpleTrainer`` and
``AMPTrainer`` with ``run_step`` replaced by ``WidthsStep.run_step``: the iteration's widths on
one batch (``forward_backward_widths``), one optimizer step, everything logged per width.
"""
from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from typing import Sequence

import torch
from detectron2.engine import AMPTrainer, SimpleTrainer
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage
from torch import nn

from ..layers import width_key
from ..solver import FixedNorm, NormPercentile, WidthGradientClipping
from .distillation import InplaceDistillation
from .gradient_probe import GradientProbe
from .slimmable_step import all_reduce_gradients, forward_backward_widths
from .width_sampling import FixedWidths, SandwichWidths, WidthSchedule

__all__ = ["WidthsStep", "SlimmableSimpleTrainer", "SlimmableAMPTrainer"]


class WidthsStep:
    """``run_step`` for Detectron2's loops: the iteration's widths (``schedule``) on one batch,
    one optimizer step, with inplace ``distillation`` if given.

    Everything the model logs during one width's forward (Detectron2's
    ``fast_rcnn/cls_accuracy``, ``rpn/num_pos_anchors``, ...) and that width's losses are
    logged under its name (``w0.25/fast_rcnn/cls_accuracy``, ``w0.25/loss_cls``,
    ``w0.25/total_loss``); ``total_loss`` is what the optimizer minimises (the widths' totals
    summed, or averaged with ``loss_reduction="mean"``). Under the sandwich rule the widths
    drawn between the widest and the narrowest are logged together as ``sampled/...``. Every
    ``probe_period`` iterations a ``GradientProbe`` adds ``w0.25/grad_norm`` and
    ``w0.25/grad_cos_widest`` and the summed gradient's ``grad_norm`` (each probed iteration's
    own values: writers do not smooth them over a window); with distillation also,
    per student, ``w0.25/grad_norm_gt`` and per distillation term ``w0.25/grad_norm_<term>``
    and ``w0.25/grad_cos_gt_<term>`` (``GradientProbe.term_stats``). With ``width_clip``
    (a norm > 0, a ``FixedNorm`` or a ``NormPercentile``) what each width adds to the gradient
    is clipped before the sum (``WidthGradientClipping``) and its norm before clipping logged
    as ``w0.25/clip_norm``; under DDP each width's gradient is averaged over the processes
    before it is clipped (one all-reduce per width), so N processes clip as one process of the
    same global batch. The threshold's state (a percentile's norm history) is part of the
    loop's ``state_dict``, for exact resume.
    """

    schedule: WidthSchedule
    distillation: InplaceDistillation | None

    def _init_widths(self, widths: Sequence[float] | WidthSchedule,
                     distillation: InplaceDistillation | None, loss_reduction: str,
                     probe_period: int,
                     width_clip: float | FixedNorm | NormPercentile) -> None:
        self.schedule = widths if isinstance(widths, WidthSchedule) else FixedWidths(widths)
        self.distillation = distillation
        if distillation is not None:
            distillation.check_model(self.model)
        if loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {loss_reduction!r}")
        self.loss_reduction = loss_reduction
        self.probe_period = probe_period
        self.probe = GradientProbe(self.model.parameters()) if probe_period > 0 else None
        self.width_clipping = (WidthGradientClipping(self.model.parameters(), width_clip)
                               if width_clip else None)
        self._width_label = ""  # the width being trained, set per width by run_step's scope

    def _backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def _width_backward(self, loss: torch.Tensor) -> None:
        """One width's backward, its gradient clipped if ``width_clip`` asks for it."""
        if self.width_clipping is None:
            self._backward(loss)
            return
        norm = self.width_clipping(lambda: self._backward(loss), self._width_label,
                                   self._grad_scale())
        get_event_storage().put_scalar("clip_norm", norm)

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
            self._width_label = self._label(width, widths)
            with storage.name_scope(self._width_label):
                yield
                if probe is not None:
                    storage.put_scalars(**probe.measure(self._grad_scale()), smoothing_hint=False)

        def terms(losses: dict[str, torch.Tensor]) -> None:
            storage.put_scalars(**probe.term_stats(losses), smoothing_hint=False)

        per_width = forward_backward_widths(self.model, data, widths, self._width_backward,
                                            self._autocast, distillation, scope,
                                            self._loss_scale(widths),
                                            terms if probe and distillation else None)
        if self.width_clipping is None:  # clipping averaged each width's gradient already
            all_reduce_gradients(self.model)
        if probe is not None:
            storage.put_scalar("grad_norm", probe.total_norm(self._grad_scale()),
                               smoothing_hint=False)
        self.after_backward()
        self._write_width_metrics(per_width, data_time)
        self._optimizer_step()

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.width_clipping is not None:
            state["width_clipping"] = self.width_clipping.threshold.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.width_clipping is not None and "width_clipping" in state:
            self.width_clipping.threshold.load_state_dict(state["width_clipping"])

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


class SlimmableSimpleTrainer(WidthsStep, SimpleTrainer):
    """``SimpleTrainer`` that visits ``widths`` (a list, or a ``WidthSchedule``) on every
    iteration, with inplace ``distillation`` if given (``WidthsStep`` has the options)."""

    def __init__(self, model: nn.Module, data_loader, optimizer,
                 widths: Sequence[float] | WidthSchedule,
                 distillation: InplaceDistillation | None = None, loss_reduction: str = "sum",
                 probe_period: int = 0,
                 width_clip: float | FixedNorm | NormPercentile = 0.0, **kwargs):
        super().__init__(model, data_loader, optimizer, **kwargs)
        self._init_widths(widths, distillation, loss_reduction, probe_period, width_clip)


class SlimmableAMPTrainer(WidthsStep, AMPTrainer):
    """``AMPTrainer`` (CUDA mixed precision, gradient scaling) that visits ``widths``, with
    inplace ``distillation`` if given."""

    def __init__(self, model: nn.Module, data_loader, optimizer,
                 widths: Sequence[float] | WidthSchedule,
                 distillation: InplaceDistillation | None = None, loss_reduction: str = "sum",
                 probe_period: int = 0,
                 width_clip: float | FixedNorm | NormPercentile = 0.0, **kwargs):
        super().__init__(model, data_loader, optimizer, **kwargs)
        self._init_widths(widths, distillation, loss_reduction, probe_period, width_clip)

    def _autocast(self):
        return torch.autocast("cuda", dtype=self.precision)

    def _backward(self, loss: torch.Tensor) -> None:
        self.grad_scaler.scale(loss).backward()

    def _grad_scale(self) -> float:
        return float(self.grad_scaler.get_scale())

    def _optimizer_step(self) -> None:
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
