"""Clinical-usefulness statistics a radiology reviewer asks for: predictive values and likelihood
ratios, the precision-recall curve, decision curves (net benefit) and calibration slope/intercept
with a smoothed calibration curve.

Pure numpy/scipy/pandas, like the rest of ``evaluation/``. Every function returns plain JSON data
(Python floats, ints, lists; ``None`` where a number is undefined), except ``decision_curve``,
which returns a DataFrame (``table.to_dict(orient="list")`` is its JSON form).

Conventions: labels are 0/1 or booleans, 1/True = positive (fracture); a *higher* score means
positive.

References
- Simel DL, Samsa GP, Matchar DB. Likelihood ratios with confidence: sample size estimation for
  diagnostic test studies. J Clin Epidemiol 1991;44:763-770 (log method for LR CIs).
- Mercaldo ND, Lau KF, Zhou XH. Confidence intervals for predictive values with an emphasis to
  case-control studies. Stat Med 2007;26:2170-2183 (logit CIs of PPV/NPV at a given prevalence).
- Vickers AJ, Elkin EB. Decision curve analysis: a novel method for evaluating prediction models.
  Med Decis Making 2006;26:565-574.
- Cox DR. Two further applications of a model for binary regression. Biometrika 1958;45:562-565;
  Van Calster B et al. Calibration: the Achilles heel of predictive analytics. BMC Med 2019;17:230
  (calibration slope and calibration-in-the-large).
- Cleveland WS. Robust locally weighted regression and smoothing scatterplots. JASA 1979;74:829-836
  (LOWESS); Austin PC, Steyerberg EW. Graphical assessment of internal and external calibration of
  logistic regression models by using loess smoothers. Stat Med 2014;33:517-535.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import pandas as pd
from scipy import special, stats

from ..errors import UserError
from .binomial import clopper_pearson, proportion
from .bootstrap import resampled_counts

DEFAULT_THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 10)
CLIP_EPS = 1e-6  # probabilities are clipped to [CLIP_EPS, 1 - CLIP_EPS] before taking logits
LOWESS_SPAN = 2.0 / 3.0  # R's lowess default f = 2/3, as used by rms::val.prob
SMOOTH_POINTS = 101
HISTOGRAM_BINS = 50
_CHUNK_CELLS = 4_000_000  # cells (resamples x distinct scores, or grid points x cases) per chunk

PV_LOGIT = "logit (Mercaldo, Lau & Zhou 2007)"
PV_EXACT_LIMITS = "Clopper-Pearson limits of sensitivity and specificity through Bayes' theorem"
LR_METHOD = "log method (Simel, Samsa & Matchar 1991)"


# ----------------------------------------------------------------------------------------------
# Input checks


def _z(level: float) -> float:
    if not isinstance(level, Real) or not 0 < level < 1:
        raise UserError(f"level must be between 0 and 1 (exclusive), got {level!r}")
    return float(stats.norm.ppf(0.5 + level / 2))


def _count(name: str, value) -> int:
    try:
        as_int = int(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a whole number of cases, got {value!r}") from None
    if as_int != value or as_int < 0:
        raise UserError(f"{name} must be a whole number >= 0, got {value!r}")
    return as_int


def _labels(labels) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise UserError(f"labels must be one-dimensional, got shape {array.shape}")
    if array.dtype == bool:
        out = array
    else:
        try:
            numeric = array.astype(np.float64)
        except (TypeError, ValueError):
            raise UserError("labels must be 0/1 or booleans") from None
        if not np.all(np.isin(numeric, [0.0, 1.0])):
            raise UserError(f"labels must be 0/1 or booleans, got values {np.unique(array)[:5].tolist()}")
        out = numeric == 1.0
    n_pos = int(out.sum())
    if n_pos == 0 or n_pos == len(out):
        raise UserError(f"need both classes among the labels, got {n_pos} positive of {len(out)}")
    return out


def _scores(scores, n: int, what: str = "scores") -> np.ndarray:
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be numbers") from None
    if array.ndim != 1 or len(array) != n:
        raise UserError(f"{what} must be one-dimensional with one value per label ({n}), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise UserError(f"{what} contain NaN or infinite values")
    return array


def _probabilities(probabilities, n: int) -> np.ndarray:
    array = _scores(probabilities, n, "probabilities")
    if array.min() < 0 or array.max() > 1:
        raise UserError(f"probabilities must lie in [0, 1], got values from {array.min():.6g} to {array.max():.6g}")
    return array


def _json_number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# ----------------------------------------------------------------------------------------------
# 1. Predictive values and likelihood ratios


def _bayes_ppv(se: float, sp: float, p: float) -> float:
    denominator = se * p + (1 - sp) * (1 - p)
    return se * p / denominator if denominator > 0 else math.nan


def _bayes_npv(se: float, sp: float, p: float) -> float:
    denominator = sp * (1 - p) + (1 - se) * p
    return sp * (1 - p) / denominator if denominator > 0 else math.nan


def _likelihood_ratio(numerator_events: float, numerator_n: float, denominator_events: float,
                      denominator_n: float, z: float) -> dict:
    """Ratio of two independent proportions, (a/n1) / (b/n0), with the log-method CI:
    SE(ln ratio) = sqrt(1/a - 1/n1 + 1/b - 1/n0). A zero count gets 0.5 added to every cell of the
    2x2 table (Haldane-Anscombe), estimate and interval alike, and says so."""
    a, n1, b, n0 = numerator_events, numerator_n, denominator_events, denominator_n
    correction = 0.0
    if a == 0 or b == 0:
        correction = 0.5
        a, n1, b, n0 = a + 0.5, n1 + 1.0, b + 0.5, n0 + 1.0
    value = (a / n1) / (b / n0)
    se_log = math.sqrt(1 / a - 1 / n1 + 1 / b - 1 / n0)
    out = {"value": value, "lower": value * math.exp(-z * se_log), "upper": value * math.exp(z * se_log),
           "se_log": se_log, "method": LR_METHOD, "continuity_correction": correction}
    if correction:
        out["note"] = "a zero count: 0.5 added to every cell of the 2x2 table for the estimate and its CI"
    return out


def _deployment_pv(positive: bool, se_k: int, n1: int, sp_k: int, n0: int, p: float, z: float,
                   level: float) -> dict:
    """PPV (positive=True) or NPV at prevalence p, with its CI.

    Logit method (Mercaldo et al. 2007): logit PPV = logit p + ln(se / (1 - sp)), with
    Var = (1 - se) / (n1 se) + sp / (n0 (1 - sp)) = (1 - se)/TP + sp/FP, i.e. the delta-method
    variance of ln LR+ (so the PPV interval is the post-test probability of the LR+ interval).
    For the NPV: logit NPV = -logit p - ln((1 - se) / sp), Var = se/FN + (1 - sp)/TN.
    When a needed count is zero (TP or FP for the PPV, FN or TN for the NPV) the logit is
    infinite; the interval then falls back to the Clopper-Pearson limits of sensitivity and
    specificity carried through Bayes' theorem (PPV and NPV are monotone in both), which
    contains the point estimate and reaches 0 or 1 where it should.
    """
    se, sp = se_k / n1, sp_k / n0
    value = _bayes_ppv(se, sp, p) if positive else _bayes_npv(se, sp, p)
    if positive:
        needed = (se_k, n0 - sp_k)  # TP, FP
    else:
        needed = (n1 - se_k, sp_k)  # FN, TN
    if min(needed) > 0:
        if positive:
            centre = special.logit(p) + math.log(se / (1 - sp))
            se_logit = math.sqrt((1 - se) / se_k + sp / (n0 - sp_k))
        else:
            centre = -special.logit(p) - math.log((1 - se) / sp)
            se_logit = math.sqrt(se / (n1 - se_k) + (1 - sp) / sp_k)
        lower, upper = special.expit(centre - z * se_logit), special.expit(centre + z * se_logit)
        return {"value": value, "lower": float(lower), "upper": float(upper), "se_logit": se_logit,
                "method": PV_LOGIT}
    se_low, se_high = clopper_pearson(se_k, n1, level)
    sp_low, sp_high = clopper_pearson(sp_k, n0, level)
    bayes = _bayes_ppv if positive else _bayes_npv
    return {"value": value, "lower": bayes(se_low, sp_low, p), "upper": bayes(se_high, sp_high, p), "se_logit": None,
            "method": PV_EXACT_LIMITS,
            "note": f"{'TP or FP' if positive else 'FN or TN'} is zero, so the logit interval is undefined"}


def _clean(value):
    """NaN and infinities to None, numpy scalars to Python, through dicts and lists."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _json_number(value)
    return value


def predictive_values(tp, fp, fn, tn, *, prevalence=None, level: float = 0.95) -> dict:
    """PPV, NPV and likelihood ratios of a 2x2 table, with CIs.

    ``prevalence``: None, one deployment prevalence in (0, 1), or a list of them.

    Keys (every interval is two-sided at ``level``):
      tp, fp, fn, tn, n, level
      sensitivity, specificity, sample_prevalence: {value, k, n, lower, upper} Clopper-Pearson.
      ppv, npv: at the *sample* prevalence, {value, k, n, lower, upper, method="Clopper-Pearson"}.
        Only meaningful when the sample is a cohort (consecutive cases); in an enriched or
        case-control sample use the deployment values instead.
      lr_positive = se / (1 - sp), lr_negative = (1 - se) / sp: {value, lower, upper, se_log,
        method, continuity_correction[, note]}. Log method of Simel et al. (1991):
        SE(ln LR+) = sqrt((1 - se)/TP + sp/FP), SE(ln LR-) = sqrt(se/FN + (1 - sp)/TN). With a zero
        count, 0.5 is added to every cell (continuity_correction = 0.5, and a note).
      deployment: one entry per given prevalence (empty list when none):
        {prevalence, ppv: {value, lower, upper, se_logit, method[, note]}, npv: {...}}.
        Value by Bayes' theorem from the sample sensitivity and specificity, e.g.
        PPV = se p / (se p + (1 - sp)(1 - p)); CI by the logit method of Mercaldo et al. (2007),
        which treats the prevalence as known and propagates the sampling error of se and sp; if a
        needed count is zero, the Clopper-Pearson limits of se and sp through Bayes' theorem.
    Undefined numbers (no diseased cases, say) are None.
    """
    z = _z(level)
    tp, fp, fn, tn = (_count(name, v) for name, v in (("tp", tp), ("fp", fp), ("fn", fn), ("tn", tn)))
    n1, n0 = tp + fn, fp + tn
    if n1 == 0 or n0 == 0:
        raise UserError(f"need both diseased and non-diseased cases, got {n1} diseased and {n0} non-diseased")
    if prevalence is None:
        prevalences = []
    elif isinstance(prevalence, Real):
        prevalences = [prevalence]
    else:
        prevalences = list(prevalence)
    for p in prevalences:
        if not isinstance(p, Real) or not 0 < p < 1:
            raise UserError(f"prevalence must be between 0 and 1 (exclusive), got {p!r}")

    out = {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "n": n1 + n0, "level": float(level),
           "sensitivity": proportion(tp, n1, level), "specificity": proportion(tn, n0, level),
           "sample_prevalence": proportion(n1, n1 + n0, level),
           "ppv": {**proportion(tp, tp + fp, level), "method": "Clopper-Pearson"},
           "npv": {**proportion(tn, tn + fn, level), "method": "Clopper-Pearson"},
           # LR+ = (TP/n1) / (FP/n0); LR- = (FN/n1) / (TN/n0)
           "lr_positive": _likelihood_ratio(tp, n1, fp, n0, z),
           "lr_negative": _likelihood_ratio(fn, n1, tn, n0, z),
           "deployment": [{"prevalence": float(p),
                           "ppv": _deployment_pv(True, tp, n1, tn, n0, float(p), z, level),
                           "npv": _deployment_pv(False, tp, n1, tn, n0, float(p), z, level)}
                          for p in prevalences]}
    return _clean(out)


# ----------------------------------------------------------------------------------------------
# 2. Precision-recall curve and average precision


def _average_precision_counts(cases: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """Average precision from counts per distinct score, scores in *descending* order.

    ``cases``, ``controls``: shape (..., k). With TP_j, FP_j the cumulative counts down to the
    j-th distinct score, AP = sum_j (R_j - R_{j-1}) P_j = sum_j cases_j / P * TP_j / (TP_j + FP_j),
    scikit-learn's ``average_precision_score`` (no interpolation)."""
    tp = np.cumsum(cases, axis=-1)
    called = tp + np.cumsum(controls, axis=-1)
    precision = np.divide(tp, called, out=np.zeros_like(tp, dtype=np.float64), where=called > 0)
    return np.sum(cases * precision, axis=-1) / np.sum(cases, axis=-1)


def _pr_curve(labels: np.ndarray, scores: np.ndarray):
    """scikit-learn's precision_recall_curve (drop_intermediate=False): one point per distinct
    score, in increasing threshold order, then the point (recall 0, precision 1)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last].astype(np.float64)
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    thresholds = s[last]
    return (np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1])


def precision_recall(labels, scores, *, n_bootstrap: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Precision-recall curve, average precision (AUPRC) with a stratified bootstrap CI.

    Keys:
      n, n_positive, level
      prevalence: the fraction positive = precision of a random ranking = the AP baseline.
      average_precision: sum over thresholds of (R_n - R_{n-1}) P_n, scikit-learn's
        ``average_precision_score`` (step-wise, no trapezoidal interpolation).
      ci: {lower, upper, method, n_bootstrap, seed}: percentile interval over ``n_bootstrap``
        resamples drawn separately within positives and negatives (class sizes fixed), as
        bootstrap.py does for the AUC; None when n_bootstrap is 0.
      curve: {precision, recall, thresholds}: scikit-learn's ``precision_recall_curve`` with
        drop_intermediate=False: thresholds are the distinct scores ascending (a score >= threshold
        is positive); precision and recall have one more point, (recall 0, precision 1), at the end.
    """
    y = _labels(labels)
    s = _scores(scores, len(y))
    _z(level)  # validates level
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise UserError(f"n_bootstrap must be a whole number >= 0, got {n_bootstrap!r}")
    precision, recall, thresholds = _pr_curve(y, s)

    unique, inverse = np.unique(-s, return_inverse=True)  # ascending in -s = descending scores
    k = len(unique)
    case_counts = np.bincount(inverse[y], minlength=k)
    control_counts = np.bincount(inverse[~y], minlength=k)
    ap = float(_average_precision_counts(case_counts.astype(np.float64), control_counts.astype(np.float64)))

    ci = None
    if n_bootstrap:
        aps = np.empty(n_bootstrap)
        for start, cases, controls in resampled_counts(case_counts, control_counts, n_bootstrap, seed):
            aps[start:start + len(cases)] = _average_precision_counts(cases, controls)
        alpha = (1 - level) / 2
        low, high = np.quantile(aps, [alpha, 1 - alpha])
        ci = {"lower": float(low), "upper": float(high),
              "method": "percentile bootstrap, resampled within each class", "n_bootstrap": int(n_bootstrap),
              "seed": int(seed)}
    return _clean({"n": len(y), "n_positive": int(y.sum()), "level": float(level), "prevalence": float(y.mean()),
                   "average_precision": ap, "ci": ci,
                   "curve": {"precision": precision.tolist(), "recall": recall.tolist(),
                             "thresholds": thresholds.tolist()}})


# ----------------------------------------------------------------------------------------------
# 3. Decision curve


def decision_curve(labels, probabilities, thresholds=DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """Net benefit per threshold probability (Vickers & Elkin 2006).

    At threshold probability pt a case is treated (called positive) when its probability >= pt,
    and NB = TP/n - FP/n * pt / (1 - pt): true positives minus false positives weighted by the
    odds at which a clinician is indifferent between treating and not. Treat-all:
    NB = prevalence - (1 - prevalence) * pt / (1 - pt); treat-none: 0.

    The probabilities must be *calibrated* probabilities of the outcome in the population at hand:
    net benefit reads pt as a risk, so a raw classifier score, or a model calibrated on a sample
    with another prevalence, gives numbers with no clinical meaning (recalibrate first; see
    ``calibration_fit``). The prevalence is the sample's, so an enriched test set distorts
    both curves.

    Columns: threshold, tp, fp, n, net_benefit (model), treat_all, treat_none,
    interventions_avoided_per_100 = (NB_model - NB_treat_all) / (pt / (1 - pt)) * 100, the net
    reduction in interventions (e.g. follow-up imaging) per 100 patients at no loss of true
    positives (Vickers & Elkin 2006). ``table.attrs`` holds prevalence and n. JSON form:
    ``table.to_dict(orient="list")``.
    """
    y = _labels(labels)
    p = _probabilities(probabilities, len(y))
    try:
        pt = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    except (TypeError, ValueError):
        raise UserError("thresholds must be numbers") from None
    if pt.ndim != 1 or len(pt) == 0 or not np.all((pt > 0) & (pt < 1)):
        raise UserError("thresholds must be a non-empty list of probabilities strictly between 0 and 1")
    n = len(y)
    # TP(pt) = positives with p >= pt: count via the sorted probabilities
    pos_sorted, neg_sorted = np.sort(p[y]), np.sort(p[~y])
    tp = len(pos_sorted) - np.searchsorted(pos_sorted, pt, side="left")
    fp = len(neg_sorted) - np.searchsorted(neg_sorted, pt, side="left")
    odds = pt / (1 - pt)
    prevalence = float(y.mean())
    net_benefit = tp / n - fp / n * odds
    treat_all = prevalence - (1 - prevalence) * odds
    table = pd.DataFrame({"threshold": pt, "tp": tp.astype(int), "fp": fp.astype(int), "n": n,
                          "net_benefit": net_benefit, "treat_all": treat_all, "treat_none": 0.0,
                          "interventions_avoided_per_100": (net_benefit - treat_all) / odds * 100})
    table.attrs.update({"prevalence": prevalence, "n": n})
    return table


# ----------------------------------------------------------------------------------------------
# 4. Calibration slope, calibration-in-the-large and a smoothed calibration curve


def _logistic_fit(x: np.ndarray | None, y: np.ndarray, offset: np.ndarray, max_iter: int = 100,
                  tol: float = 1e-10):
    """Maximum-likelihood logistic regression of y on [1, x] (or on 1 alone when x is None) with
    an offset, by Newton-Raphson with step halving. Returns (coefficients, covariance, converged)."""
    design = np.ones((len(y), 1)) if x is None else np.column_stack([np.ones(len(y)), x])
    beta = np.zeros(design.shape[1])
    if x is not None:
        beta[1] = 1.0  # start from the identity recalibration

    def loglik(b):
        eta = offset + design @ b
        return float(np.sum(y * eta - np.logaddexp(0, eta)))

    current = loglik(beta)
    for _ in range(max_iter):
        mu = special.expit(offset + design @ beta)
        info = design.T @ (design * (mu * (1 - mu))[:, None])
        try:
            step = np.linalg.solve(info, design.T @ (y - mu))
        except np.linalg.LinAlgError:
            return beta, None, False
        for _ in range(50):
            candidate = beta + step
            value = loglik(candidate)
            if value >= current - 1e-12:
                break
            step = step / 2
        beta, current = candidate, value
        if np.max(np.abs(step)) < tol * (1 + np.max(np.abs(beta))):
            mu = special.expit(offset + design @ beta)
            info = design.T @ (design * (mu * (1 - mu))[:, None])
            converged = bool(np.all(np.isfinite(beta)) and np.max(np.abs(beta)) < 1e6)
            try:
                return beta, np.linalg.inv(info), converged
            except np.linalg.LinAlgError:
                return beta, None, False
    return beta, None, False


def _wald(value: float, se: float | None, z: float) -> dict:
    if se is None or not math.isfinite(se):
        return {"value": value, "se": None, "lower": None, "upper": None}
    return {"value": value, "se": se, "lower": value - z * se, "upper": value + z * se}


def lowess(x, y, at, span: float = LOWESS_SPAN) -> np.ndarray:
    """Locally weighted linear regression (LOWESS without robustness iterations) evaluated at ``at``.

    As R's ``lowess(x, y, f=span, iter=0)`` (clowess): at each point x0 the q = floor(span n)
    nearest x values define the radius h (distance to the q-th nearest); weights are tricube,
    (1 - (d/h)^3)^3 for d <= 0.999 h (1 for d <= 0.001 h, 0 beyond); a weighted straight line is
    fitted and read at x0, or the weighted mean when h is 0 or the weighted spread of x is tiny
    (below 0.001 of the range of x). Robustness iterations are left out, as rms::val.prob does for 0/1
    outcomes."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    at = np.atleast_1d(np.asarray(at, dtype=np.float64))
    n = len(x)
    q = max(min(int(span * n + 1e-7), n), 2)
    spread = float(np.ptp(x)) if n else 0.0
    out = np.empty(len(at))
    rows = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, len(at), rows):
        x0 = at[start:start + rows, None]
        d = np.abs(x[None, :] - x0)
        h = np.partition(d, q - 1, axis=1)[:, q - 1:q]
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.clip(1 - (d / h) ** 3, 0, None) ** 3
        w = np.where(d <= 0.999 * h, w, 0.0)
        w = np.where(d <= 0.001 * h, 1.0, w)
        empty = w.sum(axis=1) == 0  # every neighbour exactly at the radius (tied x): equal weights
        w[empty] = (d[empty] <= h[empty]).astype(np.float64)
        w = w / w.sum(axis=1, keepdims=True)
        mean_x = np.sum(w * x, axis=1, keepdims=True)
        c = np.sum(w * (x - mean_x) ** 2, axis=1, keepdims=True)
        linear = (h > 0) & (spread > 0) & (np.sqrt(c) > 0.001 * spread)  # R: a line only when h > 0
        slope_w = np.where(linear, (x0 - mean_x) / np.where(linear, c, 1.0), 0.0)
        w = w * (1 + slope_w * (x - mean_x))
        out[start:start + rows] = np.sum(w * y, axis=1)
    return out


def calibration_fit(labels, probabilities, *, level: float = 0.95, span: float = LOWESS_SPAN,
                    clip: float = CLIP_EPS) -> dict:
    """Calibration slope and intercept by logistic recalibration, and a LOWESS calibration curve.

    Probabilities are clipped to [clip, 1 - clip] (default 1e-6) before logit(p) is taken, so a
    prediction of exactly 0 or 1 does not make the logit infinite; ``n_clipped`` counts them.

    Keys:
      n, n_positive, level, clip, n_clipped, mean_predicted, observed_rate, converged
      slope: {value, se, lower, upper}: b in logit P(y=1) = a + b logit(p) (Cox 1958); 1 is ideal,
        < 1 means predictions too extreme (overfitting), > 1 too modest.
      intercept: {value, se, lower, upper}: calibration-in-the-large, a in
        logit P(y=1) = a + offset(logit(p)) (slope fixed at 1); 0 is ideal, > 0 means risks are
        underestimated on average.
      recalibration: {intercept, slope}: the joint fit a + b logit(p) (its intercept is not the
        calibration-in-the-large), the line that would recalibrate these predictions.
      method: how the numbers were obtained (maximum likelihood by Newton-Raphson; Wald intervals
        from the observed information).
      smooth: {method, span, predicted, observed}: LOWESS of the 0/1 outcome on the clipped
        probability, evaluated at 101 equally spaced predicted probabilities from the smallest to
        the largest, clipped to [0, 1]. Always this module's own LOWESS (see ``lowess``), whether or
        not statsmodels is installed, so the curve is the same everywhere.
      histogram: {edges, positives, negatives}: counts of the predictions in 50 equal bins of [0, 1]
        by class, for a rug/histogram under the curve.
    Numbers that cannot be estimated (e.g. the slope under perfect separation) are None, with
    converged False and a note.
    """
    y = _labels(labels)
    p = _probabilities(probabilities, len(y))
    z = _z(level)
    if not 0 < clip < 0.5:
        raise UserError(f"clip must be between 0 and 0.5, got {clip!r}")
    if not 0 < span <= 1:
        raise UserError(f"span must be in (0, 1], got {span!r}")
    clipped = np.clip(p, clip, 1 - clip)
    logit = special.logit(clipped)
    yf = y.astype(np.float64)
    notes = []

    citl, citl_cov, citl_ok = _logistic_fit(None, yf, logit)
    intercept = _wald(float(citl[0]), math.sqrt(citl_cov[0, 0]) if citl_cov is not None else None, z)
    if np.ptp(logit) == 0:
        joint, joint_cov, joint_ok = np.array([math.nan, math.nan]), None, False
        notes.append("all predictions are equal: no slope")
    else:
        joint, joint_cov, joint_ok = _logistic_fit(logit, yf, np.zeros(len(yf)))
        if not joint_ok:
            notes.append("the recalibration fit did not converge (the predictions separate the classes perfectly?)")
    if joint_ok and joint_cov is not None:
        slope = _wald(float(joint[1]), math.sqrt(joint_cov[1, 1]), z)
        recalibration = {"intercept": float(joint[0]), "slope": float(joint[1])}
    else:
        slope = {"value": None, "se": None, "lower": None, "upper": None}
        recalibration = {"intercept": None, "slope": None}
    if not citl_ok:
        intercept = {"value": None, "se": None, "lower": None, "upper": None}
        notes.append("the calibration-in-the-large fit did not converge")

    grid = np.linspace(clipped.min(), clipped.max(), SMOOTH_POINTS)
    smooth = np.clip(lowess(clipped, yf, grid, span), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    out = {"n": len(y), "n_positive": int(y.sum()), "level": float(level), "clip": float(clip),
           "n_clipped": int(np.sum(clipped != p)), "mean_predicted": float(p.mean()), "observed_rate": float(yf.mean()),
           "converged": bool(joint_ok and citl_ok),
           "slope": slope, "intercept": intercept, "recalibration": recalibration,
           "method": "logistic recalibration on logit(p), maximum likelihood (Newton-Raphson), "
                     "Wald intervals from the observed information",
           "smooth": {"method": f"LOWESS (local linear, tricube weights, span {span:.3g}, no robustness iterations; "
                                "tfxray's own implementation, as R lowess(iter=0))",
                      "span": float(span), "predicted": grid.tolist(), "observed": smooth.tolist()},
           "histogram": {"edges": edges.tolist(),
                         "positives": np.histogram(p[y], bins=edges)[0].tolist(),
                         "negatives": np.histogram(p[~y], bins=edges)[0].tolist()}}
    if notes:
        out["note"] = "; ".join(notes)
    return _clean(out)
