"""What the training commands share: Detectron2's command line and ``launch``, the config
from ``--config-file`` and the overrides, checked before any work, the output folder held
against a second run (``hold_folder``), Detectron2's ``default_setup`` (output folder, logs,
seeds), and ``--eval-only``."""
from __future__ import annotations

import argparse
from collections import OrderedDict
from typing import Callable

import torch
from detectron2.config import CfgNode
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, launch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..checkpoint import SlimmableCheckpointer
from ..config import validate_slimmable_config
from ..utils.folder_hold import hold_folder
from ..utils.model_setup import load_slimmable_config

__all__ = ["setup_run", "check_devices", "evaluate_checkpoint", "launch_command"]


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
    validated before the output folder is touched, the folder held by this run (the main
    process), after Detectron2's ``default_setup``."""
    cfg = load_slimmable_config(args.config_file, args.opts)
    cfg.freeze()
    validate_slimmable_config(cfg)  # bad widths fail before the output folder is touched
    check_devices(cfg.MODEL.DEVICE, args.num_gpus)
    if comm.is_main_process() and cfg.OUTPUT_DIR:
        hold_folder(cfg.OUTPUT_DIR)  # a second run there is refused before it writes
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="slimdet")
    return cfg


def evaluate_checkpoint(trainer: type[DefaultTrainer], cfg: CfgNode,
                        args: argparse.Namespace) -> OrderedDict:
    """``--eval-only``: the model of ``cfg`` with ``MODEL.WEIGHTS`` (``--resume``: the last
    checkpoint of ``OUTPUT_DIR``), tested at every width by ``trainer.test``."""
    model = trainer.build_model(cfg)
    SlimmableCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
        cfg.MODEL.WEIGHTS, resume=args.resume)
    return trainer.test(cfg, model)


def launch_command(main: Callable[[argparse.Namespace], object]) -> None:
    """Parse Detectron2's command line and ``launch`` ``main(args)`` on ``--num-gpus``
    processes, after checking that the machine has them."""
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    check_devices("cpu", args.num_gpus)  # before launch spawns processes
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
