"""Per-patient (or per-study) aggregation of image scores.

A patient's label is positive when *any* of its images is labelled positive (a fracture seen on
one view is a fracture of the patient); its score is the aggregate of its images' scores:

- ``max``: the most suspicious image;
- ``mean``: the average image;
- ``noisy-or``: 1 - prod(1 - p), the probability that at least one image is positive if the
  images were independent; needs probabilities in [0, 1].

An image whose score is missing (NaN: the model did not score it) is left out of the aggregate;
a patient none of whose images were scored gets no score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError
from .choices import AGGREGATIONS


def _max(values: pd.Series, groups: pd.Series) -> pd.Series:
    return values.groupby(groups).max()


def _mean(values: pd.Series, groups: pd.Series) -> pd.Series:
    return values.groupby(groups).mean()


def _noisy_or(values: pd.Series, groups: pd.Series) -> pd.Series:
    # 1 - prod(1 - p) summed in logs so that many images do not underflow; p = 1 gives 1.
    with np.errstate(divide="ignore"):
        log_miss = np.log1p(-values)
    return -np.expm1(log_miss.groupby(groups).sum(min_count=1))


AGGREGATORS = dict(zip(AGGREGATIONS, (_max, _mean, _noisy_or), strict=True))  # in the order of AGGREGATIONS


def noisy_or(probabilities) -> float:
    """1 - prod(1 - p) for one patient's image probabilities."""
    p = np.asarray(probabilities, dtype=np.float64)
    return float(-np.expm1(np.sum(np.log1p(-p)))) if np.all(p < 1) else 1.0


def aggregate_scores(
    labels: np.ndarray,
    scores: pd.DataFrame,
    groups: pd.Series,
    method: str = "max",
    extra: pd.DataFrame | None = None,
    group_name: str = "patient",
) -> pd.DataFrame:
    """One row per group: ``group``, ``label`` (any positive), ``n_images``, each score column
    aggregated by ``method``, and each column of ``extra`` (e.g. the fold), which must be
    constant within a group.

    ``labels`` is a boolean array (True = positive) aligned with ``scores`` and ``groups``.
    """
    if method not in AGGREGATORS:
        raise UserError(f"aggregate: {method!r} is not one of {', '.join(AGGREGATIONS)}")
    groups = pd.Series(np.asarray(groups, dtype=object), name="group")
    if groups.isna().any():
        first = int(np.flatnonzero(groups.isna().to_numpy())[0]) + 1
        raise UserError(f"{group_name} column: {int(groups.isna().sum())} rows have no {group_name} (first: data row {first})")
    # IDs as text: a CSV may hold 17 and "17" for one patient, and mixed types do not sort.
    frame = pd.DataFrame({"group": groups.astype(str).to_numpy(), "label": np.asarray(labels, dtype=bool)})
    grouped_frame = frame.groupby("group", sort=True)
    out = pd.DataFrame({"label": grouped_frame["label"].any(), "n_images": grouped_frame["label"].size()})
    for column in scores.columns:
        values = pd.Series(scores[column].to_numpy(dtype=np.float64), name=column)
        if method == "noisy-or" and ((values < 0) | (values > 1)).any():
            raise UserError(f"aggregate noisy-or: score column {column!r} has values outside [0, 1];"
                            " noisy-or needs probabilities (use max or mean)")
        out[column] = AGGREGATORS[method](values, frame["group"])
    if extra is not None:
        for column in extra.columns:
            per_group = pd.Series(extra[column].to_numpy()).groupby(frame["group"]).nunique(dropna=False)
            mixed = per_group[per_group > 1]
            if len(mixed):
                raise UserError(f"column {column!r}: {group_name} {mixed.index[0]!r} has rows with different values"
                                f" ({len(mixed)} {group_name}s do); all rows of a {group_name} must agree (a"
                                f" {group_name} lies in one fold)")
            out[column] = pd.Series(extra[column].to_numpy()).groupby(frame["group"]).first()
    out.index.name = "group"
    return out.reset_index()
