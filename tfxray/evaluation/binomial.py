"""Exact (Clopper-Pearson) confidence intervals for proportions, from scipy."""

from __future__ import annotations

import math

from scipy import stats


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided CI of k successes out of n (R's binom.test); (nan, nan) when n == 0."""
    k, n = int(k), int(n)
    if n == 0:
        return float("nan"), float("nan")
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def proportion(k: int, n: int, level: float = 0.95) -> dict:
    """A proportion with its exact CI, as stored in the report."""
    lower, upper = clopper_pearson(k, n, level)
    return {"value": k / n if n else math.nan, "k": int(k), "n": int(n), "lower": lower, "upper": upper}


def operating_point(tp: int, fp: int, tn: int, fn: int, level: float = 0.95) -> dict:
    """Counts and every proportion of a 2x2 table, each with its Clopper-Pearson CI.

    F1 = 2TP / (2TP + FP + FN) is not a binomial proportion, so it gets no exact interval.
    """
    tp, fp, tn, fn = int(tp), int(fp), int(tn), int(fn)
    f1_denominator = 2 * tp + fp + fn
    return {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "sensitivity": proportion(tp, tp + fn, level),
        "specificity": proportion(tn, tn + fp, level),
        "accuracy": proportion(tp + tn, tp + fp + tn + fn, level),
        "ppv": proportion(tp, tp + fp, level),
        "npv": proportion(tn, tn + fn, level),
        "f1": {"value": 2 * tp / f1_denominator if f1_denominator else math.nan, "lower": None, "upper": None,
               "note": "not a binomial proportion: no exact CI"},
    }
