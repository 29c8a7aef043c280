"""Shared test helpers: slimmable configs sized for CPU tests, stock reference models, tools
as modules. Imported by the tests as ``helpers`` (pytest.ini puts tests/ on the path)."""
from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path

import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model

import slimdet
from slimdet.layers import SwitchableNorm
from slimdet.utils import load_slimmable_config

REPO = Path(__file__).resolve().parents[1]
WIDTHS = [0.25, 0.5, 0.75, 1.0]
# Settings under which a training step has no randomness left: every anchor and every proposal
# is sampled (only their order is random) and every image gets the same number of proposals,
# so per-image loss normalisers are equal and no augmentation is drawn.
DETERMINISTIC = ["MODEL.RPN.BATCH_SIZE_PER_IMAGE", 4096, "MODEL.RPN.POST_NMS_TOPK_TRAIN", 16,
                 "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 512, "INPUT.RANDOM_FLIP", "none"]
# GroupNorm everywhere in the COCO R50 configs (channel counts like 48 at narrow widths).
GN_R50 = ("MODEL.RESNETS.NORM", "GN", "MODEL.FPN.NORM", "GN", "MODEL.ROI_MASK_HEAD.NORM", "GN",
          "MODEL.BACKBONE.FREEZE_AT", 0)
SYNTHETIC_CONFIG = REPO / "configs" / "Synthetic" / "slim_mask_rcnn_R18_FPN.yaml"


def slim_cfg(config: str = "slim_mask_rcnn_R50_FPN.yaml", *opts) -> CfgNode:
    """A COCO config of this repo (or a path), on CPU, no weights, test-sized."""
    path = Path(config) if os.path.sep in config else REPO / "configs" / "COCO" / config
    return load_slimmable_config(str(path), ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "",
                         "INPUT.MIN_SIZE_TEST", 96, "INPUT.MAX_SIZE_TEST", 128,
                         "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,
                         "MODEL.RPN.POST_NMS_TOPK_TEST", 50,
                         "TEST.DETECTIONS_PER_IMAGE", 20, *opts])


def synthetic_cfg(*opts) -> CfgNode:
    """The demo's Mask R-CNN config (128x128 images), no weights, plus ``opts``."""
    return slim_cfg(str(SYNTHETIC_CONFIG), "INPUT.MIN_SIZE_TEST", 128,
                    "INPUT.MAX_SIZE_TEST", 128, *opts)


def tiny_train_cfg(output_dir, *opts) -> CfgNode:
    """The demo config sized for a few CPU iterations on ``tiny_data``, plus ``opts``."""
    return load_slimmable_config(str(SYNTHETIC_CONFIG), [
        "DATASETS.TRAIN", ("tiny_instances_train",), "DATASETS.TEST", ("tiny_instances_val",),
        "INPUT.MIN_SIZE_TRAIN", (64,), "INPUT.MAX_SIZE_TRAIN", 64, "INPUT.MIN_SIZE_TEST", 64,
        "INPUT.MAX_SIZE_TEST", 64, "SOLVER.IMS_PER_BATCH", 4, "SOLVER.BASE_LR", 0.01,
        "SOLVER.WARMUP_ITERS", 0, "SOLVER.STEPS", (), "DATALOADER.NUM_WORKERS", 0,
        "MODEL.FPN.OUT_CHANNELS", 64, "MODEL.ROI_BOX_HEAD.FC_DIM", 64, "SEED", 1,
        "OUTPUT_DIR", str(output_dir), *opts])


def tool(name: str):
    """A script of tools/ as a module, to call its ``main`` in this process."""
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def leading_slice(src: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return src[tuple(slice(0, s) for s in shape)] if src.dim() else src


def load_leading_slices(stock: torch.nn.Module, model: torch.nn.Module, width: float) -> None:
    """Fill the stock module ``stock`` with the slimmable ``model``'s weights at ``width``: leading
    slices of shared tensors (universal models' norms too), and that width's own norm for
    switchable norms. Written here, independently of slimdet's export code, so the tests check
    it."""
    slim_sd = model.state_dict()
    norms = {n for n, m in model.named_modules() if isinstance(m, SwitchableNorm)}
    index = slimdet.get_widths(model).index(width) if norms else None
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


def universal_gn_groups(width: float) -> int:
    """GN groups of a universal GN model at ``width``: each layer keeps its group size (that of
    32 groups at width 1), so floor(32 w) groups. Written here, independently of slimdet."""
    return math.floor(32 * width + 1e-9)


def build_with_gn_rule(build, cfg: CfgNode, groups: int | None = None) -> torch.nn.Module:
    """``build(cfg)`` (a stock builder) with every GN layer following slimdet's documented rule,
    GroupNorm(gcd(32, C), C) (or ``groups`` groups everywhere), which stock GN (always 32
    groups) cannot build at e.g. 16 or 48 channels: built with BN in GN's place, then swapped.
    Written here, independently of slimdet's own rule."""
    c = cfg.clone()
    c.defrost()
    norm_keys = [(c.MODEL[node], "NORM") for node in  # the parts of the models in the tests
                 ("RESNETS", "FPN", "ROI_BOX_HEAD", "ROI_MASK_HEAD")]
    if all(node[key] != "GN" for node, key in norm_keys):
        return build(c)
    assert all(node[key] != "BN" for node, key in norm_keys), "BN and GN would be confused"
    for node, key in norm_keys:
        if node[key] == "GN":
            node[key] = "BN"
    model = build(c)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.BatchNorm2d):
                n = child.num_features
                setattr(module, name, torch.nn.GroupNorm(groups or math.gcd(32, n), n))
    return model


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
