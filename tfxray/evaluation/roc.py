"""Empirical ROC curve and AUC, following pROC's conventions.

Conventions (pROC, Robin et al. 2011):
- *cases* are the positive class, *controls* the negative class;
- ``direction="<"``: controls < threshold <= cases, i.e. a score >= threshold is called positive;
  ``direction=">"``: the reverse (a *lower* score means positive);
  ``direction="auto"``: ``"<"`` when median(controls) <= median(cases), else ``">"``;
- the curve's thresholds are -inf, the midpoints between consecutive distinct scores, and +inf;
- AUC is the Mann-Whitney statistic: P(case > control) + P(case == control) / 2.

The user-facing names of the directions (``--direction``) are ``higher`` ('<'), ``lower`` ('>')
and ``auto``; ``direction_symbol`` turns either spelling into pROC's.

Internally every function works on *oriented* scores (negated when the direction is ">"), so
that higher always means positive; thresholds are turned back to the original scale on output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIRECTIONS = ("<", ">", "auto")
DIRECTION_SYMBOLS = {"higher": "<", "lower": ">", "auto": "auto", "<": "<", ">": ">"}
DIRECTION_NAMES = {"<": "higher", ">": "lower", "auto": "auto"}
EXACT_COUNT = 1e-9  # a specificity "equals" a ROC point's when their counts of true negatives agree this closely


def direction_symbol(direction: str) -> str:
    """'<', '>' or 'auto' from a user-facing name (higher, lower, auto) or pROC's symbol; ValueError otherwise."""
    key = str(direction).strip().lower()
    if key not in DIRECTION_SYMBOLS:
        raise ValueError(f"direction must be higher, lower or auto, got {direction!r}")
    return DIRECTION_SYMBOLS[key]


def as_binary_labels(labels) -> np.ndarray:
    """Labels as a boolean array (True = case/positive); accepts bools or 0/1 numbers."""
    array = np.asarray(labels)
    if array.dtype == bool:
        return array
    values = np.unique(array)
    if not np.all(np.isin(values, [0, 1])):
        raise ValueError(f"labels must be 0/1 or booleans, got values {values[:5].tolist()}")
    return array == 1


def as_scores(scores, n: int | None = None) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {array.shape}")
    if n is not None and len(array) != n:
        raise ValueError(f"{len(array)} scores for {n} labels")
    if not np.all(np.isfinite(array)):
        raise ValueError("scores contain NaN or infinite values")
    return array


def check_both_classes(labels: np.ndarray) -> None:
    n_cases = int(labels.sum())
    if n_cases == 0 or n_cases == len(labels):
        raise ValueError("AUC is undefined with only one class present")


def choose_direction(labels, scores) -> str:
    """pROC's ``direction="auto"``: '<' when median(controls) <= median(cases), else '>'."""
    labels = as_binary_labels(labels)
    scores = as_scores(scores, len(labels))
    check_both_classes(labels)
    return "<" if np.median(scores[~labels]) <= np.median(scores[labels]) else ">"


def resolve_direction(labels, scores, direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return choose_direction(labels, scores) if direction == "auto" else direction


def oriented(scores: np.ndarray, direction: str) -> np.ndarray:
    """Scores turned so that higher means positive."""
    return -scores if direction == ">" else scores


def midranks_of_sorted(sorted_values: np.ndarray) -> np.ndarray:
    """1-based ranks of an ascending array, ties sharing the mean of their ranks.

    scipy.stats.rankdata does the same but sorts again; the DeLong code already holds the sorted
    order, and skipping the second sort is what keeps it within a small factor of sklearn's AUC.
    """
    n = len(sorted_values)
    if n == 0:
        return np.zeros(0)
    starts_group = np.empty(n, dtype=bool)
    starts_group[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=starts_group[1:])
    starts = np.flatnonzero(starts_group)
    ends = np.append(starts[1:], n)  # exclusive
    return np.repeat((starts + ends + 1) / 2.0, ends - starts)


def auc(labels, scores, direction: str = "<") -> float:
    """Area under the empirical ROC curve (Mann-Whitney U / (n_cases * n_controls), ties count 1/2).

    ``direction`` defaults to '<' (higher score = positive, like scikit-learn); pass 'auto' for
    pROC's choice. The value equals sklearn.metrics.roc_auc_score for direction '<'.
    """
    labels = as_binary_labels(labels)
    scores = as_scores(scores, len(labels))
    check_both_classes(labels)
    scores = oriented(scores, resolve_direction(labels, scores, direction))
    order = np.argsort(scores, kind="quicksort")
    ranks = midranks_of_sorted(scores[order])
    case_rank_sum = ranks[labels[order]].sum()
    n_cases = int(labels.sum())
    n_controls = len(labels) - n_cases
    return float((case_rank_sum - n_cases * (n_cases + 1) / 2.0) / (n_cases * n_controls))


@dataclass
class RocCurve:
    """pROC-style empirical ROC curve; arrays run from threshold -inf (sens 1) to +inf (sens 0)
    on the oriented scale, and ``thresholds`` are given back on the original score scale."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_cases: int
    n_controls: int
    direction: str
    auc: float

    @property
    def tn(self) -> np.ndarray:
        return self.n_controls - self.fp

    @property
    def fn(self) -> np.ndarray:
        return self.n_cases - self.tp

    @property
    def sensitivity(self) -> np.ndarray:
        return self.tp / self.n_cases

    @property
    def specificity(self) -> np.ndarray:
        return self.tn / self.n_controls

    def __len__(self) -> int:
        return len(self.thresholds)


def proc_thresholds(unique_sorted: np.ndarray) -> np.ndarray:
    """pROC's thresholds for ascending distinct values: -inf, midpoints, +inf.

    As pROC's ``roc.utils.thresholds``: the midpoint is (a + b) / 2, or a/2 + b/2 where that
    overflows (|.| > 1e100); a midpoint that rounds onto the lower value (adjacent floats) is
    moved to the upper one so that it still separates them (direction '<').
    """
    lower = np.concatenate(([-np.inf], unique_sorted))
    upper = np.concatenate((unique_sorted, [np.inf]))
    with np.errstate(invalid="ignore", over="ignore"):
        mids = (lower + upper) / 2.0
        halves = lower / 2.0 + upper / 2.0
    mids = np.where(np.abs(mids) > 1e100, halves, mids)
    mids[0], mids[-1] = -np.inf, np.inf
    collapsed = mids[1:-1] == lower[1:-1]
    mids[1:-1][collapsed] = upper[1:-1][collapsed]
    return mids


def interpolated_sensitivity(tn, tp, n_controls: int, n_cases: int, specificity) -> np.ndarray:
    """Sensitivity at each given specificity on the empirical ROC curve, as pROC's
    ``coords(roc, x, input="specificity", ret="sensitivity")`` (which ``ci.se`` calls on each resample).

    ``tn``/``tp``: counts at the curve's points in threshold order (tn non-decreasing, tp
    non-increasing), as ``RocCurve.tn``/``RocCurve.tp``. Where a point has the specificity
    exactly (to EXACT_COUNT in counts), the highest sensitivity among such points (the top of a
    vertical segment, pROC's first match on the sorted curve); between points, the straight line
    joining the last point below and the first point above, the segment the curve is drawn with.
    Repeated points (a threshold between two values neither of which is present) change nothing.
    """
    tn = np.asarray(tn, dtype=np.float64)
    tp = np.asarray(tp, dtype=np.float64)
    target = np.asarray(specificity, dtype=np.float64) * n_controls
    first = np.clip(np.searchsorted(tn, target - EXACT_COUNT, side="left"), 0, len(tn) - 1)
    previous = np.maximum(first - 1, 0)
    exact = np.abs(tn[first] - target) <= EXACT_COUNT
    span = tn[first] - tn[previous]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(exact | (span <= 0), 0.0, (tn[first] - target) / np.where(span > 0, span, 1.0))
    return (tp[first] + share * (tp[previous] - tp[first])) / n_cases


def roc_curve(labels, scores, direction: str = "auto") -> RocCurve:
    """The full empirical ROC curve with pROC's thresholds and integer TP/FP counts."""
    labels = as_binary_labels(labels)
    scores = as_scores(scores, len(labels))
    check_both_classes(labels)
    direction = resolve_direction(labels, scores, direction)
    values = oriented(scores, direction)
    unique, inverse = np.unique(values, return_inverse=True)
    cases_per_value = np.bincount(inverse, weights=labels, minlength=len(unique)).astype(np.int64)
    all_per_value = np.bincount(inverse, minlength=len(unique)).astype(np.int64)
    controls_per_value = all_per_value - cases_per_value
    # Called positive at threshold j (j = 0..K): score >= unique[j]; j = K is +inf (nothing positive).
    tp = np.concatenate((np.cumsum(cases_per_value[::-1])[::-1], [0]))
    fp = np.concatenate((np.cumsum(controls_per_value[::-1])[::-1], [0]))
    n_cases, n_controls = int(tp[0]), int(fp[0])
    # Mann-Whitney from the same counts: controls strictly below plus half the tied ones.
    controls_below = np.cumsum(controls_per_value) - controls_per_value
    area = float(np.sum(cases_per_value * (controls_below + controls_per_value / 2.0)) / (n_cases * n_controls))
    thresholds = proc_thresholds(unique)
    if direction == ">":
        thresholds = -thresholds
    return RocCurve(thresholds, tp, fp, n_cases, n_controls, direction, area)


def confusion_at(labels, scores, threshold: float, direction: str = "<") -> dict[str, int]:
    """TP, FP, TN, FN when a score >= threshold is positive ('<'), or <= threshold ('>')."""
    labels = as_binary_labels(labels)
    scores = as_scores(scores, len(labels))
    if direction not in ("<", ">"):
        raise ValueError("direction must be '<' or '>' here")
    called = scores >= threshold if direction == "<" else scores <= threshold
    tp = int(np.sum(called & labels))
    fp = int(np.sum(called & ~labels))
    return {"tp": tp, "fp": fp, "tn": int(np.sum(~labels)) - fp, "fn": int(np.sum(labels)) - tp}
