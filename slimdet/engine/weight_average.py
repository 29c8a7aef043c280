"""An exponential moving average of a model's weights over training, which becomes the model
at the end: a short schedule's last weights carry the noise of its last batches, an average
over its tail less (one way to shrink the seed-to-seed spread of a benchmark)."""
from __future__ import annotations

from typing import Optional

import torch
from detectron2.engine import HookBase
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["WeightAverage"]


class WeightAverage(HookBase):
    """After every iteration from ``start_iter`` on, ``average = decay * average + (1 - decay)
    * weights`` for every floating-point tensor of the state dict (parameters and norm
    statistics of every width; counters are copied); after the last iteration the model takes
    the average, before the final checkpoint and evaluation (register it before them). The
    average is part of the trainer's checkpoint, so a resumed run averages as the
    uninterrupted one.

    Args:
        model: the trained model (DDP-wrapped or not).
        decay: weight of the past, in (0, 1); ``1 / (1 - decay)`` iterations make the window.
        start_iter: the first iteration averaged (the average starts as that iteration's
            weights).
    """

    def __init__(self, model: nn.Module, decay: float, start_iter: int = 0):
        if not 0 < decay < 1:
            raise ValueError(f"the weight average's decay must be in (0, 1), got {decay}")
        self.model = model.module if isinstance(model, DistributedDataParallel) else model
        self.decay, self.start_iter = float(decay), int(start_iter)
        self.average: Optional[dict[str, torch.Tensor]] = None

    @torch.no_grad()
    def after_step(self) -> None:
        if self.trainer.iter < self.start_iter:
            return
        state = self.model.state_dict()
        if self.average is None:
            self.average = {k: v.detach().clone() for k, v in state.items()}
        else:
            for key, value in state.items():
                if value.is_floating_point():
                    self.average[key].mul_(self.decay).add_(value, alpha=1 - self.decay)
                else:
                    self.average[key].copy_(value)
        if self.trainer.iter + 1 == self.trainer.max_iter:
            self.model.load_state_dict(self.average)

    def state_dict(self) -> dict:
        return {"average": self.average} if self.average is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self.average = state.get("average")
