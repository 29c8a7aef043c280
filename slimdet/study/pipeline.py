"""A whole study in one call: its data, its plan, its runs (with records kept if asked) and
its reports; what ``tools/compare_study.py`` runs."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Mapping, Optional, Sequence

from ..data.datasets import annotation_path, default_root
from ..utils.folder_hold import hold_folder
from .plan import TASKS, Recipe, StudyRun, plan_study
from .records import restore_records, save_records
from .report import write_reports
from .runner import finished, run_config, run_study

__all__ = ["run_and_report", "restore_study"]


def restore_study(records: str, output: str, runs: Sequence[StudyRun], config_file: str,
                  opts: Sequence[str] = ()) -> list[str]:
    """``restore_records`` of the study's runs (each checked against the config the plan
    trains it with: ``run_config``): every training run found in ``records``, and a
    pretraining run only where no unfinished run needs its backbone (a record keeps the top-1
    per width, not the weights). Returns the names restored."""
    def expected(chosen):
        return {run.name: run_config(config_file, opts, run, output) for run in chosen}

    restored = restore_records(records, output,
                               expected(r for r in runs if r.family != "pretrain"))
    needed = {name for run in runs if not finished(os.path.join(output, run.name))
              for name in run.after}
    return restored + restore_records(records, output, expected(
        run for run in runs if run.family == "pretrain" and run.name not in needed))


def run_and_report(task: str, seeds: Sequence[int], recipe_list: Sequence[Recipe],
                   output: str, opts: Sequence[str] = (), *, config_file: Optional[str] = None,
                   universal: bool = False, distill: bool = False, jobs: int = 1,
                   bootstrap: int = 0, records: Optional[str] = None,
                   progress_every: float = 30, pretrained: bool = False,
                   pretrain_opts: Sequence[str] = (),
                   variants: Optional[Mapping[str, Sequence[str]]] = None,
                   only: Sequence[str] = ()) -> dict:
    """Generate the task's dataset if missing, train every run of the plan not finished under
    ``output`` and write the reports; returns the study record (``run_study``).

    Args:
        task, config_file: the benchmark (``TASKS``) and, if given, a config instead of its own.
        seeds, recipe_list, universal, distill, opts: the plan (``plan_study``).
        output, jobs, progress_every: where and how the runs train (``run_study``).
        bootstrap: paired resamplings of the validation images per seed in the reports.
        records: a folder of run records (``records``): runs found there are restored instead
            of trained, and every run finished here is saved there (``restore_study``: a
            pretraining run is trained again where a later run needs its backbone file).
        pretrained, pretrain_opts, variants: the paper's protocol (``plan_study``), overrides
            of its pretraining runs, more slimmable runs with their own overrides.
        only: glob patterns of the run names to train (``run_study``); the reports cover the
            runs finished so far.
    """
    config_file = config_file or TASKS[task].config_file
    data = default_root(TASKS[task].dataset)  # where the training processes read it
    if not os.path.isfile(annotation_path(data, "instances", "val")):
        subprocess.run([sys.executable, "-m", TASKS[task].generator, "--out", data], check=True)
    classes = default_root("clutter_classes")
    if pretrained and not os.path.isdir(os.path.join(classes, "val")):
        subprocess.run([sys.executable, "-m", "slimdet.data.clutter_classes", "--out", classes],
                       check=True)
    runs = plan_study(config_file, seeds, opts, recipe_list, universal, distill, pretrained,
                      output, pretrain_opts, variants)
    hold_folder(output)  # before records are restored into it (run_study holds it too)
    on_finished = None
    if records:
        for name in restore_study(records, output, runs, config_file, opts):
            print(f"[study] {name}: restored from {records}/{name}")
        save_records(output, records, [run.name for run in runs])  # finished before records

        def on_finished(run):
            save_records(output, records, [run.name])
    study = run_study(runs, config_file, opts, output, jobs, progress_every, on_finished, only)
    done = [run for run in runs if finished(os.path.join(output, run.name))]
    for folder in write_reports(done, recipe_list, output, bootstrap):
        print(f"[study] report in {folder}/")
    return study
