"""The names of the evaluation's choices, declared once.

This module imports nothing, so the CLI can build its option lists from it without loading
numpy or pandas at ``tfxray --help``, and the recipe schema (config.py) validates against it.
"""

AGGREGATIONS = ("max", "mean", "noisy-or")  # per-patient aggregation of image scores (aggregate.py)
DEFAULT_AGGREGATION = "max"
CI_METHODS = ("delong", "bootstrap")  # AUC confidence interval (report.py)
# Which way a score points (roc.py): a higher score means positive ('<' in pROC's terms), a lower one ('>'),
# or pROC's direction="auto" (chosen from the class medians, per model and level).
DIRECTIONS = ("higher", "lower", "auto")
DIRECTION_FOR_RUNS = "higher"  # a model's score is its positive-class probability: fixed by construction
DIRECTION_FOR_TABLES = "auto"  # a scores table may hold any marker: pROC's default, said in the report
