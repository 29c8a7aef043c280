"""Peak tensor memory of one call, on CUDA and on CPU.

What is measured: the highest amount of tensor memory allocated during the call above what was
allocated when it started (inputs, weights and caches that already exist are not counted).
On CUDA that is ``torch.cuda.max_memory_allocated``. On CPU PyTorch keeps no peak counter, so
the call runs under ``torch.profiler`` with memory profiling and the peak is the running sum of
its allocation/free events (the profiler omits frees of tensors allocated before the call, so
this can only err on the high side). Both count tensors only, not Python objects or allocator
caching, and neither depends on the machine's load: they are exact even on a busy machine.
The profiler's backend (Kineto) logs its start and stop stages to the process's stderr; those
lines are dropped, anything else written meanwhile is kept.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import re
import sys
import tempfile
from typing import Any, Callable, Iterator

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

__all__ = ["with_peak_memory", "MIB"]

MIB = 2 ** 20  # bytes in a MiB, the unit of the reports

# Kineto's log lines, e.g. "USDT:2026-12-02 20:33:45 2942:2942 SyncActivityProfilerHandler.cpp:39]
# profiler_start" (written by C++ straight to file descriptor 2, whatever sys.stderr is).
_KINETO_LINE = re.compile(rb"^[A-Z]+:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ \w+\.cpp:\d+\] ")


@contextlib.contextmanager
def _without_kineto_log() -> Iterator[None]:
    """Capture file descriptor 2 meanwhile and write back every line that is not Kineto's."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True)
                    if not _KINETO_LINE.match(line)]
            if kept:
                os.write(2, b"".join(kept))


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
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _without_kineto_log():
        prof.start()
    try:
        result = fn()
    finally:
        with _without_kineto_log():
            prof.stop()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and e.device_type() == DeviceType.CPU)
    return result, max(itertools.accumulate((nbytes for _, nbytes in events), initial=0))
