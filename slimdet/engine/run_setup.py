"""What a training command does before any work: its config from ``--config-file`` and the
overrides, checked, and Detectron2's ``default_setup`` (output folder, logs, seeds)."""
from __future__ import annotations

import argparse

import torch
from detectron2.config import CfgNode
from detectron2.engine import default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..config import validate_slimmable_config
from ..utils.model_setup import load_slimmable_config

__all__ = ["setup_run", "check_devices"]


def check_devices(device: str, num_gpus: int) -> None:
    """Fail before any work when the run asks for GPUs this machine does not have."""
    available = torch.cuda.device_count()
    if num_gpus > 1 and num_gpus > available:
        raise SystemExit(f"--num-gpus {num_gpus}: this machine has {available} CUDA device(s); "
                         f"pass --num-gpus {max(available, 1)} (CPU training runs one process)")
    if device.startswith("cuda") and not available:
        raise SystemExit(f"MODEL.DEVICE {device}: PyTorch sees no CUDA device here; add "
                         "MODEL.DEVICE cpu to the command line")


def setup_run(args: argparse.Namespace) -> CfgNode:
    """The frozen config of Detectron2's command line ``args`` (``--config-file``, ``opts``),
    validated before the output folder is touched, after Detectron2's ``default_setup``."""
    cfg = load_slimmable_config(args.config_file, args.opts)
    cfg.freeze()
    validate_slimmable_config(cfg)  # bad widths fail before the output folder is touched
    check_devices(cfg.MODEL.DEVICE, args.num_gpus)
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="slimdet")
    return cfg
