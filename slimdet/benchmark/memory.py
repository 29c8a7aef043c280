"""Peak tensor memory of one call, on CUDA and on CPU.

What is measured: the highest amount of tensor memory allocated during the call above what was
allocated when it started (inputs, weights and caches that already exist are not counted).
On CUDA that is ``torch.cuda.max_memory_allocated``. On CPU PyTorch keeps no peak counter, so
the call runs under ``torch.profiler`` with memory profiling and the peak is the running sum of
its allocation/free events (the profiler omits frees of tensors allocated before the call, so
this can only err on the high side). Both count tensors only, not Python objects or allocator
caching, and neither depends on the machine's load: they are exact even on a busy machine.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

__all__ = ["with_peak_memory"]


def with_peak_memory(fn: Callable[[], Any], device: torch.device) -> tuple[Any, int]:
    """``fn()``'s result and the peak tensor bytes it allocated on ``device`` above the
    allocation at its start."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        torch.cuda.synchronize(device)
        return result, torch.cuda.max_memory_allocated(device) - start
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and e.device_type() == DeviceType.CPU)
    return result, max(itertools.accumulate((nbytes for _, nbytes in events), initial=0))
