"""Evaluation of scores against labels: numpy/scipy/pandas/matplotlib only, no TensorFlow.

roc.py (curve, AUC, direction), delong.py (DeLong CI and tests), bootstrap.py (stratified
bootstrap CI and ROC band), thresholds.py (threshold rules), binomial.py (Clopper-Pearson),
aggregate.py (per-patient scores), table.py (reading and checking a scores table),
model_table.py (the arguments for a table one or several saved models scored), worst.py (the
worst cases of a scored table), report.py (evaluate_table,
write_report, format_summary), plots.py and markdown.py (the outputs); choices.py names the
options (aggregations, CI methods) without importing anything.
"""
