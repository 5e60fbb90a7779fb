"""Metrics per subgroup (sex, age band, site, vendor, fracture type), a test of whether the AUC
differs across the groups, and multiplicity adjustment of pairwise tests.

Per group: the numbers of cases and controls, the AUC with its DeLong CI (delong.delong_ci), and
sensitivity and specificity at one given threshold with exact Clopper-Pearson CIs
(binomial.proportion). The direction is fixed once for all groups (a direction of 'auto' is
resolved on the pooled data), so that no group is silently flipped.

Whether the AUC differs across k independent groups (different patients in each):
- the chi-square test of homogeneity of the AUCs, as for a fixed-effect meta-analysis (Cochran's
  Q): w_i = 1 / Var_i with DeLong's variances, A_w = sum w_i A_i / sum w_i,
  Q = sum w_i (A_i - A_w)^2 on k - 1 degrees of freedom;
- every pair of groups with DeLong's unpaired test (delong.unpaired_test, pROC's
  ``roc.test(paired=FALSE)``: Student t with Welch-Satterthwaite df), the p-values adjusted by
  Holm's step-down method within the family of pairs. With k = 2 the pair's D statistic squared
  equals Q (both are (A_1 - A_2)^2 / (V_1 + V_2)); their p-values differ only in the reference
  distribution (chi-square with 1 df against Student t).

A group with one class only has no AUC: it is reported, with a note, and left out of the tests;
so is a group with fewer than 2 cases or 2 controls (no DeLong variance) or a DeLong variance of 0
(an AUC of exactly 0 or 1 would get an infinite weight in Q).

Holm (1979, Scand J Statist 6:65-70): sort the m p-values, p_(1) <= ... <= p_(m); the adjusted
p_(j) = max over i <= j of min(1, (m - i + 1) p_(i)). NaNs are left as NaN and not counted in m
(as R's ``p.adjust``).
"""

from __future__ import annotations

import copy
import itertools
import math
import re

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import UserError
from . import binomial, delong
from .roc import as_binary_labels, as_scores, confusion_at, direction_symbol, resolve_direction

MISSING_GROUP = "(missing)"
HOMOGENEITY_TEST = "chi-square test of homogeneity of AUCs (DeLong variances, independent groups)"
ADJUSTMENTS = ("holm", "none")


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the order given; NaN stays NaN and is not counted."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise UserError(f"p-values must be one-dimensional, got shape {p.shape}")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise UserError("p-values must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    values = p[finite]
    m = len(values)
    if m == 0:
        return out
    order = np.argsort(values, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    out[finite] = adjusted
    return out


def adjust_tests(tests: list[dict], method: str = "holm", key: str = "p") -> list[dict]:
    """Copies of ``tests`` (dicts holding a p-value under ``key``), each with ``adjustment``
    {method, family_size, note} and, for Holm, ``p_adjusted``. With method 'none' the tests are
    flagged as unadjusted instead (when there are two or more)."""
    if method not in ADJUSTMENTS:
        raise UserError(f"multiplicity adjustment must be one of {', '.join(ADJUSTMENTS)}, got {method!r}")
    out = [dict(t) for t in tests]
    pvalues = [t.get(key) for t in out]
    pvalues = [float("nan") if v is None else float(v) for v in pvalues]
    size = int(np.sum(~np.isnan(pvalues)))
    if method == "holm":
        adjusted = holm(pvalues)
        note = f"Holm-adjusted for {size} tests" if size > 1 else "a single test: no adjustment needed"
        for t, value in zip(out, adjusted):
            t["p_adjusted"] = None if np.isnan(value) else float(value)
            t["adjustment"] = {"method": "holm", "family_size": size, "note": note}
    else:
        note = (f"unadjusted for multiple comparisons: one of {size} tests in this family" if size > 1
                else "a single test: no adjustment needed")
        for t in out:
            t["adjustment"] = {"method": "none", "family_size": size, "note": note}
    return out


def adjust_report_comparisons(report: dict, method: str = "holm", family: str = "level") -> dict:
    """A copy of an evaluate report whose pairwise model comparisons (``levels.<name>.comparisons``)
    carry Holm-adjusted p-values (``p_adjusted``) or are flagged as unadjusted (method 'none').

    ``family`` 'level': the comparisons of each level (image, patient) form one family; 'report':
    all of the report's comparisons form one.
    """
    if family not in ("level", "report"):
        raise UserError(f"family must be 'level' or 'report', got {family!r}")
    out = copy.deepcopy(report)
    levels = [level for level in out.get("levels", {}).values() if level.get("comparisons")]
    if family == "level":
        for level in levels:
            level["comparisons"] = adjust_tests(level["comparisons"], method)
    else:
        flat = [c for level in levels for c in level["comparisons"]]
        adjusted = iter(adjust_tests(flat, method))
        for level in levels:
            level["comparisons"] = [next(adjusted) for _ in level["comparisons"]]
    return out


def homogeneity_test(aucs, variances) -> dict:
    """Chi-square test that k independent AUCs are equal: Q = sum w_i (A_i - A_w)^2, w_i = 1/V_i, df = k-1."""
    a = np.asarray(aucs, dtype=np.float64)
    v = np.asarray(variances, dtype=np.float64)
    if len(a) != len(v):
        raise UserError(f"{len(a)} AUCs for {len(v)} variances")
    if len(a) < 2:
        raise UserError("the homogeneity test needs at least 2 groups")
    if not np.all(np.isfinite(v) & (v > 0)):
        raise UserError("the homogeneity test needs a finite, positive variance for every group")
    w = 1.0 / v
    pooled = float(np.sum(w * a) / np.sum(w))
    q = float(np.sum(w * (a - pooled) ** 2))
    df = len(a) - 1
    return {"test": HOMOGENEITY_TEST, "q": q, "df": df, "p": float(stats.chi2.sf(q, df)), "weighted_auc": pooled,
            "weighted_auc_se": float(np.sqrt(1.0 / np.sum(w)))}


def _group_keys(groups, n: int) -> tuple[np.ndarray, list]:
    values = groups.to_numpy() if isinstance(groups, pd.Series) else np.asarray(groups, dtype=object)
    if len(values) != n:
        raise UserError(f"groups: {len(values)} group values for {n} rows")
    missing = pd.isna(values)
    keys = np.where(missing, MISSING_GROUP, pd.Series(values).astype(str).to_numpy()).astype(object)
    present = sorted({k for k in keys if k != MISSING_GROUP}, key=_natural_key)
    return keys, present + ([MISSING_GROUP] if missing.any() else [])


def _natural_key(text: str):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", text)]


def _group_entry(name: str, y: np.ndarray, s: np.ndarray, threshold: float, direction: str, level: float) -> dict:
    m, n = int(y.sum()), int((~y).sum())
    counts = confusion_at(y, s, threshold, direction)
    entry = {
        "group": name,
        "n": int(len(y)),
        "n_cases": m,
        "n_controls": n,
        "auc": None,
        "sensitivity": binomial.proportion(counts["tp"], m, level),
        "specificity": binomial.proportion(counts["tn"], n, level),
        "counts": counts,
        "in_test": False,
        "note": None,
    }
    if m == 0 or n == 0:
        only = "controls" if m == 0 else "cases"
        entry["note"] = f"only {only} ({len(y)}): no AUC, left out of the tests"
        return entry
    fit = delong.delong_ci(y, s, level, direction)
    entry["auc"] = {"value": fit.auc, "lower": fit.lower, "upper": fit.upper, "se": fit.se,
                    "variance": fit.variance, "method": "DeLong", "level": level}
    if not np.isfinite(fit.variance):
        entry["note"] = f"{m} case(s) and {n} control(s): no DeLong variance, left out of the tests"
    elif fit.variance == 0:
        entry["note"] = f"AUC {fit.auc:g} with DeLong variance 0: left out of the tests (it would get infinite weight)"
    else:
        entry["in_test"] = True
    return entry


def subgroup_table(labels, scores, groups, threshold: float, direction: str = "<", level: float = 0.95,
                   adjustment: str = "holm") -> dict:
    """Per-group metrics and tests of whether the AUC differs across the groups.

    ``groups`` holds one value per row (NaN becomes the group '(missing)', reported like any other).
    ``threshold``: a score >= threshold is called positive for direction '<' (<= for '>');
    ``direction`` also accepts higher, lower and auto ('auto' is resolved once, on all rows).
    Keys: direction, threshold, level, ``groups`` (a list, one entry per group, in natural order: group,
    n, n_cases, n_controls, auc {value, lower, upper, se, variance, method, level} or None,
    sensitivity and specificity {value, k, n, lower, upper}, counts {tp, fp, tn, fn}, in_test,
    note), ``homogeneity`` (test, q, df, p, weighted_auc, weighted_auc_se, groups; or None with
    ``homogeneity_note``), ``pairwise`` (delong.unpaired_test per pair of groups in the test,
    with ``groups`` [a, b], ``p_adjusted`` and ``adjustment``), ``notes``.
    """
    try:
        labels = as_binary_labels(labels)
        scores = as_scores(scores, len(labels))
        threshold = float(threshold)
    except (TypeError, ValueError) as error:
        raise UserError(str(error)) from None
    if math.isnan(threshold):
        raise UserError("threshold must be a number, got NaN")
    if not 0 < level < 1:
        raise UserError(f"confidence level must be between 0 and 1 (exclusive), got {level!r}")
    if labels.all() or not labels.any():
        raise UserError("subgroups: the data hold only one class")
    try:
        direction = resolve_direction(labels, scores, direction_symbol(direction))
    except ValueError as error:
        raise UserError(str(error)) from None
    keys, order = _group_keys(groups, len(labels))
    entries = [_group_entry(g, labels[keys == g], scores[keys == g], threshold, direction, level) for g in order]
    notes = [f"group {e['group']}: {e['note']}" for e in entries if e["note"]]
    tested = [e for e in entries if e["in_test"]]
    result = {"direction": direction, "threshold": threshold, "level": level, "groups": entries,
              "homogeneity": None, "homogeneity_note": None, "pairwise": [], "notes": notes}
    if len(order) < 2:
        result["homogeneity_note"] = "a single group: nothing to compare"
        return result
    if len(tested) < 2:
        result["homogeneity_note"] = f"{len(tested)} group(s) with a usable AUC variance: no test"
        return result
    test = homogeneity_test([e["auc"]["value"] for e in tested], [e["auc"]["variance"] for e in tested])
    test["groups"] = [e["group"] for e in tested]
    result["homogeneity"] = test
    if len(tested) < len(order):
        result["homogeneity_note"] = (f"{len(order) - len(tested)} of {len(order)} groups left out of the test"
                                      " (see the groups' notes)")
    pairs = []
    for ea, eb in itertools.combinations(tested, 2):
        in_a, in_b = keys == ea["group"], keys == eb["group"]
        pair = delong.unpaired_test(labels[in_a], scores[in_a], labels[in_b], scores[in_b], level,
                                    (direction, direction))
        pairs.append({"groups": [ea["group"], eb["group"]], **pair})
    result["pairwise"] = adjust_tests(pairs, adjustment)
    return result
