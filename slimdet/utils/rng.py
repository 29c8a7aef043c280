"""The process's global random generators (Python, NumPy, PyTorch CPU and CUDA) as state.

Exact resume needs them in the checkpoint; work that must not disturb the training stream
(evaluation, seeded data mapping in the main process) runs inside ``preserved_rng``.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.utils import comm

__all__ = ["rng_states", "set_rng_states", "preserved_rng", "train_seed"]


def rng_states() -> dict[str, Any]:
    """States of every global generator of this process, as tensors and numbers only, so that
    ``torch.load(weights_only=True)`` (PyTorch's default) reads them back."""
    version, python_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"python": [version, torch.tensor(python_state, dtype=torch.int64), gauss],
              "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore the generators from ``rng_states()`` (CUDA only where both have CUDA)."""
    version, python_state, gauss = states["python"]
    random.setstate((version, tuple(python_state.tolist()), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run the block and put every global generator back to where it was before."""
    states = rng_states()
    try:
        yield
    finally:
        set_rng_states(states)


def train_seed(cfg: CfgNode) -> int:
    """``SEED`` of the training stream and width sampling, or, if it is negative, a random seed
    that every process shares."""
    return cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
