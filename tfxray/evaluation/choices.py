"""The names of the evaluation's choices, declared once.

This module imports nothing, so the CLI can build its option lists from it without loading
numpy or pandas at ``tfxray --help``, and the recipe schema (config.py) validates against it.
"""

AGGREGATIONS = ("max", "mean", "noisy-or")  # per-patient aggregation of image scores (aggregate.py)
DEFAULT_AGGREGATION = "max"
CI_METHODS = ("delong", "bootstrap")  # AUC confidence interval (report.py)
