"""Studies of slimmable against individually trained networks: plan, run, report."""
from .plan import TASKS, Recipe, StudyRun, plan_study, recipes, universal_test_widths
from .runner import run_study

__all__ = [k for k in globals() if not k.startswith("_")]
