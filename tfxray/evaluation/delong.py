"""DeLong's variance of the AUC, its confidence interval, and the paired and unpaired tests.

Neither scipy nor scikit-learn implements DeLong's method, hence this module. It follows pROC
(``ci.auc(method="delong")``, ``roc.test(method="delong")``) formula for formula:

- placements (DeLong 1988 "structural components"): for each case i, V10_i = P(control < case_i)
  + P(control == case_i)/2; for each control j, V01_j = P(case > control_j) + P(tie)/2;
- they are computed with the fast midrank algorithm of Sun & Xu (2014, IEEE SPL 21:1389):
  V10_i = (Z_i - X_i) / n and V01_j = 1 - (Z_j - Y_j) / m, where Z are midranks in the pooled
  sample, X midranks among the m cases and Y midranks among the n controls (O(N log N));
- Var(AUC) = S10/m + S01/n with sample variances/covariances (n-1 denominators);
- CI: AUC +- z * sqrt(Var), clipped to [0, 1];
- paired test: Z = (AUC1 - AUC2) / sqrt(L S L'), two-sided normal p, CI d +- z * sigma;
- unpaired test: D = (AUC1 - AUC2) / sqrt(V1 + V2) with Welch-Satterthwaite degrees of freedom
  df = (V1+V2)^2 / (V1^2/(N1-1) + V2^2/(N2-1)) and a Student t p-value (pROC's
  ``delong.unpaired.test``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .roc import as_binary_labels, as_scores, check_both_classes, midranks_of_sorted, oriented, resolve_direction


@dataclass
class Placements:
    auc: float
    cases: np.ndarray  # V10, one per case, in the order the cases appear
    controls: np.ndarray  # V01, one per control, in order

    @property
    def variance(self) -> float:
        """DeLong variance of the AUC (n-1 denominators, as pROC)."""
        m, n = len(self.cases), len(self.controls)
        if m < 2 or n < 2:
            return float("nan")
        return float(np.var(self.cases, ddof=1) / m + np.var(self.controls, ddof=1) / n)


@dataclass
class DelongCI:
    auc: float
    lower: float
    upper: float
    variance: float
    level: float
    direction: str

    @property
    def se(self) -> float:
        return float(np.sqrt(self.variance))


def placements(labels, scores, direction: str = "<") -> Placements:
    """Sun & Xu's midrank placements; one argsort of the pooled scores does all three rankings."""
    labels = as_binary_labels(labels)
    scores = as_scores(scores, len(labels))
    check_both_classes(labels)
    scores = oriented(scores, resolve_direction(labels, scores, direction))
    n_cases = int(labels.sum())
    n_controls = len(labels) - n_cases

    order = np.argsort(scores, kind="quicksort")
    sorted_scores = scores[order]
    sorted_is_case = labels[order]
    pooled_ranks = midranks_of_sorted(sorted_scores)
    # Cases (controls) keep ascending order inside the pooled order: their own midranks come free.
    case_ranks = midranks_of_sorted(sorted_scores[sorted_is_case])
    control_ranks = midranks_of_sorted(sorted_scores[~sorted_is_case])
    case_sorted = (pooled_ranks[sorted_is_case] - case_ranks) / n_controls
    control_sorted = 1.0 - (pooled_ranks[~sorted_is_case] - control_ranks) / n_cases

    # Back to the order of appearance, so paired models line up case by case.
    rank_in_class = np.empty(len(labels), dtype=np.int64)
    rank_in_class[labels] = np.arange(n_cases)
    rank_in_class[~labels] = np.arange(n_controls)
    case_values = np.empty(n_cases)
    case_values[rank_in_class[order[sorted_is_case]]] = case_sorted
    control_values = np.empty(n_controls)
    control_values[rank_in_class[order[~sorted_is_case]]] = control_sorted
    return Placements(float(case_values.mean()), case_values, control_values)


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return float(stats.norm.ppf(1 - (1 - level) / 2))


def delong_ci(labels, scores, level: float = 0.95, direction: str = "<") -> DelongCI:
    """AUC with its DeLong confidence interval (normal, clipped to [0, 1]) as pROC's ci.auc."""
    labels = as_binary_labels(labels)
    scores = as_scores(scores, len(labels))
    direction = resolve_direction(labels, scores, direction)
    p = placements(labels, scores, direction)
    var = p.variance
    half = _z(level) * np.sqrt(var)
    return DelongCI(p.auc, float(max(p.auc - half, 0.0)), float(min(p.auc + half, 1.0)), var, level, direction)


def difference_z_test(difference: float, sigma: float, level: float) -> dict:
    """Two-sided z test and normal CI of an AUC difference with standard error ``sigma``: keys difference,
    se, z, p, ci_lower, ci_upper, level. A zero SE gives z = 0 for no difference and +-inf otherwise."""
    if sigma == 0:
        z = 0.0 if difference == 0 else float(np.sign(difference) * np.inf)
    else:
        z = difference / sigma
    half = _z(level) * sigma
    return {"difference": float(difference), "se": float(sigma), "z": float(z), "p": float(2 * stats.norm.sf(abs(z))),
            "ci_lower": float(difference - half), "ci_upper": float(difference + half), "level": level}


def paired_test(labels, scores_a, scores_b, level: float = 0.95, directions=("<", "<")) -> dict:
    """DeLong's test for two correlated ROC curves (same cases), as pROC's roc.test(paired=TRUE).

    ``directions`` gives each model's direction ('<', '>' or 'auto'), pROC using each curve's own.
    """
    labels = as_binary_labels(labels)
    a = as_scores(scores_a, len(labels))
    b = as_scores(scores_b, len(labels))
    dir_a = resolve_direction(labels, a, directions[0])
    dir_b = resolve_direction(labels, b, directions[1])
    pa, pb = placements(labels, a, dir_a), placements(labels, b, dir_b)
    m, n = len(pa.cases), len(pa.controls)
    if m < 2 or n < 2:
        raise ValueError("the paired DeLong test needs at least 2 cases and 2 controls")
    cov_cases = np.cov(np.vstack([pa.cases, pb.cases]), ddof=1)
    cov_controls = np.cov(np.vstack([pa.controls, pb.controls]), ddof=1)
    s = cov_cases / m + cov_controls / n
    variance = float(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    sigma = float(np.sqrt(max(variance, 0.0)))
    return {
        "test": "DeLong paired (two correlated ROC curves)",
        "auc_a": pa.auc,
        "auc_b": pb.auc,
        "directions": [dir_a, dir_b],
        **difference_z_test(pa.auc - pb.auc, sigma, level),
        "correlation": float(s[0, 1] / np.sqrt(s[0, 0] * s[1, 1])) if s[0, 0] > 0 and s[1, 1] > 0 else float("nan"),
        "n_cases": m,
        "n_controls": n,
    }


def unpaired_test(labels_a, scores_a, labels_b, scores_b, level: float = 0.95, directions=("<", "<")) -> dict:
    """DeLong's test for two ROC curves on different cases, as pROC's roc.test(paired=FALSE).

    pROC reports D, df and p (no interval); the CI of the difference given here is ours:
    d +- t(df) * sqrt(V1 + V2), the interval that matches pROC's test.
    """
    la, lb = as_binary_labels(labels_a), as_binary_labels(labels_b)
    a, b = as_scores(scores_a, len(la)), as_scores(scores_b, len(lb))
    dir_a = resolve_direction(la, a, directions[0])
    dir_b = resolve_direction(lb, b, directions[1])
    pa, pb = placements(la, a, dir_a), placements(lb, b, dir_b)
    var_a, var_b = pa.variance, pb.variance
    total = var_a + var_b
    difference = pa.auc - pb.auc
    se = float(np.sqrt(total))
    d = difference / se if se > 0 else (0.0 if difference == 0 else float(np.sign(difference) * np.inf))
    df = total**2 / (var_a**2 / (len(la) - 1) + var_b**2 / (len(lb) - 1)) if total > 0 else float("nan")
    t_crit = float(stats.t.ppf(1 - (1 - level) / 2, df)) if np.isfinite(df) else float("nan")
    return {
        "test": "DeLong unpaired (two independent ROC curves)",
        "auc_a": pa.auc,
        "auc_b": pb.auc,
        "directions": [dir_a, dir_b],
        "difference": difference,
        "se": se,
        "d": float(d),
        "df": float(df),
        "p": float(2 * stats.t.sf(abs(d), df)) if np.isfinite(df) else float("nan"),
        "ci_lower": difference - t_crit * se,
        "ci_upper": difference + t_crit * se,
        "level": level,
        "n_cases": [len(pa.cases), len(pb.cases)],
        "n_controls": [len(pa.controls), len(pb.controls)],
    }
