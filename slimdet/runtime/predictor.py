"""``DefaultPredictor`` for slimmable models: a fixed width, or a latency budget it holds."""
from __future__ import annotations

import time
from functools import partial
from typing import Any, Callable, Optional

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.structures import Instances

from ..benchmark import time_interleaved
from ..checkpoint import SlimmableCheckpointer
from ..layers import get_width, get_widths, set_width, width_scope
from .choose import choose_width
from .controller import WidthController
from .profile import WidthProfile, profile_key, profile_widths

__all__ = ["SlimmablePredictor"]


class SlimmablePredictor(DefaultPredictor):
    """Called like Detectron2's ``DefaultPredictor``: a BGR ``HxWx3`` uint8 image in,
    ``{"instances": ...}`` out. Weights load through ``SlimmableCheckpointer`` (slimmable or
    stock full-width checkpoints).

    Args:
        cfg: a slimmable config (``MODEL.WEIGHTS``, ``INPUT.*_SIZE_TEST`` as Detectron2's).
        width: run at this fixed width (default: the widest, unless a budget is given).
        latency_budget_ms: instead of a fixed width, adapt the width after every call to keep
            each call within this many milliseconds (see ``WidthController``).
        profile: the device's profile for the budget: it gives the starting width
            (``choose_width``) and the reference latencies; the first image checks that it
            was measured for this device, threads, config and image size. Without one, the
            first image runs twice at every width to measure them.
        clock: seconds, for timing calls (tests inject a fake one).
    """

    def __init__(self, cfg: CfgNode, *, width: Optional[float] = None,
                 latency_budget_ms: Optional[float] = None,
                 profile: Optional[WidthProfile] = None,
                 clock: Callable[[], float] = time.perf_counter):
        if width is not None and latency_budget_ms is not None:
            raise ValueError("give either a fixed width or a latency budget, not both")
        if profile is not None and latency_budget_ms is None:
            raise ValueError("a profile is used with a latency budget; none was given")
        stock_loading = cfg.clone()
        stock_loading.defrost()
        stock_loading.MODEL.WEIGHTS = ""  # DefaultPredictor's loader does not know slimdet norms
        super().__init__(stock_loading)
        self.cfg = cfg.clone()
        self.metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else
                                            "__slimdet_no_dataset")
        if cfg.MODEL.WEIGHTS:
            SlimmableCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.widths = sorted(get_widths(self.model))
        self._device = torch.device(cfg.MODEL.DEVICE)
        self.clock = clock
        self.budget_ms = latency_budget_ms
        self.controller: Optional[WidthController] = None
        self.last_latency_ms: Optional[float] = None
        self._unchecked_profile = profile
        set_width(self.model, width if width is not None else max(self.widths))
        if profile is not None:
            profile.check({"widths": [float(w) for w in self.widths]})
            start = choose_width(profile, latency_ms=latency_budget_ms)  # raises if none fits
            self.controller = self._controller({w: profile.latency_ms(w) for w in self.widths},
                                               start)

    @property
    def width(self) -> float:
        """The width the next call runs at."""
        return get_width(self.model)

    def _controller(self, reference_ms: dict[float, float],
                    start_width: Optional[float] = None) -> WidthController:
        return WidthController(self.model, self.budget_ms, reference_ms,
                               start_width=start_width, clock=self.clock)

    def model_inputs(self, original_image: np.ndarray) -> dict[str, Any]:
        """The model's input dict for a BGR image: format, resize and layout of
        ``DefaultPredictor``, placed on ``MODEL.DEVICE``."""
        if original_image.ndim != 3 or original_image.shape[2] != 3:
            raise ValueError(f"expected a BGR image of shape (H, W, 3), got {original_image.shape}")
        if self.input_format == "RGB":
            original_image = original_image[:, :, ::-1]
        height, width = original_image.shape[:2]
        image = self.aug.get_transform(original_image).apply_image(original_image)
        image = torch.as_tensor(image.astype("float32").transpose(2, 0, 1))
        return {"image": image.to(self.cfg.MODEL.DEVICE), "height": height, "width": width}

    def _run(self, original_image: np.ndarray) -> dict[str, Any]:
        with torch.no_grad():
            return self.model([self.model_inputs(original_image)])[0]

    def _run_at(self, width: float, original_image: np.ndarray) -> dict[str, Any]:
        set_width(self.model, width)
        return self._run(original_image)

    def predict_at(self, width: float, original_image: np.ndarray) -> Instances:
        """The detections at ``width`` (the predictor's width is kept), e.g. to check an
        export of that width."""
        with width_scope(self.model, width):
            return self._run(original_image)["instances"]

    def _measure_widths(self, original_image: np.ndarray) -> dict[float, float]:
        """Reference latency of every width on one image (after one untimed call per width,
        which also makes each width's weight slices contiguous)."""
        with width_scope(self.model, self.width):
            timings = time_interleaved({w: partial(self._run_at, w, original_image)
                                        for w in self.widths}, 1, 1, self._device)
        return {w: t.median for w, t in timings.items()}

    def profile(self, original_image: np.ndarray, *, repeats: int = 20,
                warmup: int = 3) -> WidthProfile:
        """Profile every width on ``original_image`` as this predictor calls the model (resize
        and format included): latency, peak memory, GFLOPs; see ``profile_widths``."""
        key = profile_key(self.cfg, *original_image.shape[:2])
        return profile_widths(self.model, key, partial(self._run, original_image),
                              lambda: [self.model_inputs(original_image)],
                              repeats=repeats, warmup=warmup)

    def __call__(self, original_image: np.ndarray) -> dict[str, Any]:
        if self._unchecked_profile is not None:
            self._unchecked_profile.check(profile_key(self.cfg, *original_image.shape[:2]))
            self._unchecked_profile = None
        if self.budget_ms is not None and self.controller is None:
            self.controller = self._controller(self._measure_widths(original_image))
        start = self.clock()
        out = self._run(original_image)
        self.last_latency_ms = (self.clock() - start) * 1e3
        if self.controller is not None:
            self.controller.observe(self.last_latency_ms)
        return out
