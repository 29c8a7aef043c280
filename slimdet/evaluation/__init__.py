"""Per-width COCO evaluation and its summary."""
from .classification import ClassificationEvaluator
from .coco_eval import FastCOCOEvaluator, compiled_cocoeval
from .comparison import compare_runs, load_run
from .plot import plot_ap_vs_flops, plot_comparison
from .width_evaluation import evaluate_widths, summarize

__all__ = [k for k in globals() if not k.startswith("_")]
