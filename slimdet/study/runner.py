"""Run a study's training runs as ``tools/train_net.py`` processes, resumably, a few at a time,
with the progress and ETA of the whole study.

Each run lives in ``OUTPUT/<run name>``; a finished run (``per_width_results.json`` and
``model_final.pth``) is kept, a killed one resumes from its last checkpoint (``--resume``), so
running the study again continues it. ``OUTPUT/study.json`` keeps the wall time of every run
(and each run's folder its own, ``run_time.json``, which its record keeps).
Several runs at once (``jobs``) share the cores: each process gets ``cores // jobs`` threads,
which on 2 cores trains 2 runs of one thread each about 1.3x faster than one after the other.
"""
from __future__ import annotations

import datetime
import fnmatch
import json
import os
import subprocess
import sys
import time
from typing import Callable, Optional, Sequence

from detectron2.config import CfgNode

from ..utils.folder_hold import hold_folder
from ..utils.model_setup import load_slimmable_config
from .plan import StudyRun
from .records import RESTORED_MARKER, RUN_TIME

__all__ = ["Progress", "run_study", "iterations_done", "finished", "run_config"]


def finished(folder: str) -> bool:
    """Whether the run in ``folder`` trained and evaluated to the end (here, or where its
    records were saved: ``records.restore_records``)."""
    return os.path.isfile(os.path.join(folder, "per_width_results.json")) and any(
        os.path.isfile(os.path.join(folder, f)) for f in ("model_final.pth", RESTORED_MARKER))


def iterations_done(folder: str) -> int:
    """Iterations the run in ``folder`` has logged (Detectron2's metrics.json)."""
    try:
        with open(os.path.join(folder, "metrics.json")) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    done = [json.loads(line).get("iteration", -1) for line in lines if line.startswith("{")]
    return max(done, default=-1) + 1


def clock(seconds: float) -> str:
    """``H:MM:SS``."""
    return str(datetime.timedelta(seconds=int(seconds)))


class Progress:
    """Share of the study's work done and its ETA, from the speed observed since start."""

    def __init__(self, runs: Sequence[StudyRun]):
        self.total = sum(r.cost for r in runs)
        self.start = time.monotonic()
        self.done_before = 0.0  # work of the runs finished in an earlier invocation
        self.done = 0.0  # work of the finished runs

    def line(self, active: dict[str, tuple[StudyRun, int]], position: str) -> str:
        """One line: the active runs' iterations, the study's share done, elapsed, ETA."""
        current = sum(run.cost * min(it, run.max_iter) / run.max_iter
                      for run, it in active.values())
        done = self.done + current
        elapsed = time.monotonic() - self.start
        worked = done - self.done_before
        eta = clock(elapsed / worked * (self.total - done)) if worked > 0 else "estimating"
        runs = ", ".join(f"{name} iter {it}/{run.max_iter}" for name, (run, it) in active.items())
        return (f"[study] {position} {runs} | study {100 * done / self.total:.0f}% | elapsed "
                f"{clock(elapsed)} | ETA {eta}")


def _arguments(config_file: str, opts: Sequence[str], run: StudyRun,
               folder: str) -> tuple[str, list[str]]:
    """The run's config file and overrides: its own config, or the study's with the study's
    overrides, then the run's and its folder."""
    study_opts = list(opts) if run.config_file is None else []
    return run.config_file or config_file, [*study_opts, *run.opts, "OUTPUT_DIR", folder]


def run_config(config_file: str, opts: Sequence[str], run: StudyRun, output: str) -> CfgNode:
    """The config the run trains with in the study folder ``output`` (what its command
    merges)."""
    return load_slimmable_config(*_arguments(config_file, opts, run,
                                             os.path.join(output, run.name)))


def _command(config_file: str, opts: Sequence[str], run: StudyRun, folder: str) -> list[str]:
    """The run's tool on its config and overrides (``_arguments``)."""
    tool = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "tools", f"{run.tool}.py")
    run_config_file, run_opts = _arguments(config_file, opts, run, folder)
    return [sys.executable, tool, "--resume", "--config-file", run_config_file, *run_opts]


def _next_ready(pending: list[tuple[int, StudyRun]], output: str) -> int | None:
    """Position in ``pending`` of the first run whose ``after`` runs have finished."""
    for position, (_, run) in enumerate(pending):
        if all(finished(os.path.join(output, name)) for name in run.after):
            return position
    return None


def _failure(run: StudyRun, folder: str, code: int) -> SystemExit:
    with open(os.path.join(folder, "stdout.txt")) as f:
        tail = "".join(f.readlines()[-30:])
    return SystemExit(f"{run.name} failed (exit {code}); end of {folder}/stdout.txt:\n{tail}")


def _portable_config(config_file: str) -> str:
    """The study's config file relative to the repository where it lies there."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.abspath(config_file)
    return os.path.relpath(path, repo) if path.startswith(repo + os.sep) else config_file


def _save(study: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(study, f, indent=2)


def run_study(runs: Sequence[StudyRun], config_file: str, opts: Sequence[str], output: str,
              jobs: int = 1, progress_every: float = 30,
              on_finished: Optional[Callable[[StudyRun], None]] = None,
              only: Sequence[str] = ()) -> dict:
    """Train every run not finished yet under ``output``, ``jobs`` at a time, printing the
    progress every ``progress_every`` seconds; returns the study record (``study.json``).

    Args:
        runs: the plan (``plan_study``), trained in its order.
        config_file, opts: the config of every run and overrides for all of them.
        output: the study's folder.
        jobs: runs trained at once; each gets ``os.cpu_count() // jobs`` threads.
        progress_every: seconds between progress lines.
        on_finished: called with each run that finishes training here.
        only: glob patterns of run names (``inet_*_s2``): train only the runs that match,
            leave the others for a later study; empty: every run.
    """
    hold_folder(output)  # a second study there is refused, naming this one
    study_file = os.path.join(output, "study.json")
    before = {}
    if os.path.isfile(study_file):  # a continued study keeps the wall times measured earlier
        with open(study_file) as f:
            before = json.load(f)["runs"]
    study = {"config_file": _portable_config(config_file), "opts": list(opts), "jobs": jobs,
             "runs": before}
    progress = Progress(runs)
    pending = []
    for index, run in enumerate(runs):
        if finished(os.path.join(output, run.name)):
            print(f"[study] run {index + 1}/{len(runs)} {run.name}: finished earlier, kept")
            progress.done_before += run.cost
            progress.done += run.cost
        elif only and not any(fnmatch.fnmatchcase(run.name, p) for p in only):
            print(f"[study] run {index + 1}/{len(runs)} {run.name}: not in --only, left for "
                  "later")
            progress.total -= run.cost  # the share done and the ETA cover what trains
        else:
            pending.append((index, run))
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // jobs)))
    active: dict[str, tuple[StudyRun, subprocess.Popen, float]] = {}
    last_line = time.monotonic()
    try:
        while pending or active:
            while pending and len(active) < jobs:
                ready = _next_ready(pending, output)
                if ready is None:
                    if not active:
                        waiting = {run.name: run.after for _, run in pending}
                        raise SystemExit(f"runs wait for runs that will not finish: {waiting}")
                    break
                index, run = pending.pop(ready)
                folder = os.path.join(output, run.name)
                os.makedirs(folder, exist_ok=True)
                print(f"[study] run {index + 1}/{len(runs)} {run.name}: training "
                      f"{run.max_iter} iterations at widths {run.widths}", flush=True)
                with open(os.path.join(folder, "stdout.txt"), "a") as log:
                    proc = subprocess.Popen(_command(config_file, opts, run, folder), env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
                active[run.name] = (run, proc, time.monotonic())
            time.sleep(min(1.0, progress_every))
            for name, (run, proc, start) in list(active.items()):
                if proc.poll() is None:
                    continue
                del active[name]
                folder = os.path.join(output, name)
                if proc.returncode:
                    raise _failure(run, folder, proc.returncode)
                seconds = time.monotonic() - start
                study["runs"][name] = {"wall_s": round(seconds), "jobs": jobs}
                _save(study, study_file)  # a killed study keeps the wall times of finished runs
                _save(study["runs"][name], os.path.join(folder, RUN_TIME))  # kept in records
                progress.done += run.cost
                print(f"[study] {name}: done in {clock(seconds)}", flush=True)
                if on_finished is not None:
                    on_finished(run)
            if active and time.monotonic() - last_line >= progress_every:
                last_line = time.monotonic()
                state = {name: (run, iterations_done(os.path.join(output, name)))
                         for name, (run, _, _) in active.items()}
                done = len(runs) - len(pending) - len(active)
                print(progress.line(state, f"{done}/{len(runs)} done;"), flush=True)
    finally:
        for _, proc, _ in active.values():  # a failed or interrupted study stops its runs
            proc.terminate()
    study["wall_s"] = round(time.monotonic() - progress.start)
    _save(study, study_file)
    return study
