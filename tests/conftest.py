"""Shared helpers: slimmable configs sized for CPU tests, and stock reference models."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.modeling import build_model

import slimdet
from slimdet.layers import SwitchableNorm

REPO = Path(__file__).resolve().parents[1]
WIDTHS = [0.25, 0.5, 0.75, 1.0]
SYNTHETIC_CONFIG = REPO / "configs" / "Synthetic" / "slim_mask_rcnn_R18_FPN.yaml"


def slim_cfg(config: str = "slim_mask_rcnn_R50_FPN.yaml", *opts) -> CfgNode:
    """A COCO config of this repo (or a path), on CPU, no weights, test-sized."""
    cfg = get_cfg()
    slimdet.add_slimmable_config(cfg)
    path = Path(config) if os.path.sep in config else REPO / "configs" / "COCO" / config
    cfg.merge_from_file(str(path))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "",
                         "INPUT.MIN_SIZE_TEST", 96, "INPUT.MAX_SIZE_TEST", 128,
                         "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,
                         "MODEL.RPN.POST_NMS_TOPK_TEST", 50,
                         "TEST.DETECTIONS_PER_IMAGE", 20, *opts])
    return cfg


def synthetic_cfg(*opts) -> CfgNode:
    """The demo's Mask R-CNN config (128x128 images), no weights, plus ``opts``."""
    return slim_cfg(str(SYNTHETIC_CONFIG), "INPUT.MIN_SIZE_TEST", 128,
                    "INPUT.MAX_SIZE_TEST", 128, *opts)


def tool(name: str):
    """A script of tools/ as a module, to call its ``main`` in this process."""
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def leading_slice(src: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return src[tuple(slice(0, s) for s in shape)] if src.dim() else src


def load_leading_slices(stock: torch.nn.Module, model: torch.nn.Module, width: float) -> None:
    """Fill the stock module ``stock`` with the slimmable ``model``'s weights at ``width``: leading
    slices of shared tensors, and that width's own norm for switchable norms. Written here,
    independently of slimdet's export code, so the tests check it."""
    slim_sd = model.state_dict()
    norms = {n for n, m in model.named_modules() if isinstance(m, SwitchableNorm)}
    index = slimdet.get_widths(model).index(width)
    new_sd = {}
    for key, target in stock.state_dict().items():
        prefix, _, name = key.rpartition(".")
        src = slim_sd[f"{prefix}.{index}.{name}" if prefix in norms else key]
        new_sd[key] = leading_slice(src, target.shape).clone()
    stock.load_state_dict(new_sd)


def stock_model_at(cfg: CfgNode, model: torch.nn.Module, width: float) -> torch.nn.Module:
    """Stock Detectron2 model of ``stock_config(cfg, width)`` holding ``model``'s weights at
    ``width`` (see ``load_leading_slices``)."""
    stock = build_model(slimdet.stock_config(cfg, width)).eval()
    load_leading_slices(stock, model, width)
    return stock


def randomize_norms(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every norm non-trivial parameters/statistics (fresh ones are identity maps)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if ".norm." in name or "bn" in name:
                if name.endswith(("weight", "running_var")):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                elif name.endswith(("bias", "running_mean")):
                    t.copy_(torch.randn(t.shape, generator=g) * 0.1)


def image_inputs(seed: int = 0, height: int = 96, width: int = 128) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.rand(3, height, width, generator=g) * 255}]


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
