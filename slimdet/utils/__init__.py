"""Helpers shared by slimdet's command-line tools."""
from .csv_rows import write_csv
from .model_setup import load_slimmable_config, load_slimmable_model
from .rng import preserved_rng, rng_states, set_rng_states

__all__ = ["load_slimmable_config", "load_slimmable_model", "preserved_rng", "rng_states",
           "set_rng_states", "write_csv"]
