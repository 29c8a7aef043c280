"""Gradients averaged over the processes of a distributed run, in one flat all-reduce per dtype.

A slimmable step runs every width under DDP's ``no_sync`` (per-width norms get gradients from
one width only, which DDP's reducer cannot express) and averages the gradients itself: once per
step, or once per width where each width's own gradient has to be known before the sum (per-width
clipping).
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.distributed as dist

__all__ = ["average_gradients"]


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average the ``.grad`` of ``params`` over processes in place (nothing without a process
    group of more than one process).

    A parameter without a gradient on this process but with one elsewhere takes part with
    zeros, so every process ends with the same averaged gradient; one without a gradient
    anywhere keeps none.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    device = params[0].device
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
    dist.all_reduce(has_grad)
    for p, anywhere in zip(params, has_grad.tolist()):
        if anywhere and p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for p in params:
        if p.grad is not None:
            by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
    world = dist.get_world_size()
    for grads in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()
