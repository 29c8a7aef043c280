"""Per-width cost measurement: FLOPs, latency, peak memory, training iteration, the recipes'
cost and gradient norms; reports."""
from .export_latency import EXPORT_RUNS, export_latency
from ..modeling.flops import gflops_by_part
from .inputs import random_images, random_training_batch
from .memory import MIB, with_peak_memory
from .recipes import format_recipe_tables, gradient_norms, recipe_cost
from ..evaluation.plot import plot_widths
from .report import format_tables, load_eval_ap
from .timing import Timing, time_interleaved
from .widths import FIXED_WORK_OPTS, benchmark_widths

__all__ = [k for k in globals() if not k.startswith("_")]
