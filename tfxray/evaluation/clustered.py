"""Image-level AUC with a confidence interval that respects the patient (cluster) as the unit.

When a patient contributes several images, the images are not independent and DeLong's variance,
which treats every image as a separate sampling unit, answers a different question. Two remedies:

Obuchowski (1997, Biometrics 53:567-578, "Nonparametric analysis of clustered ROC curve data"):
the estimand is unchanged (the image-level Mann-Whitney AUC over all case-control image pairs,
pairs within one patient included); only its variance is taken over clusters. With DeLong's
structural components computed on all images (V10 of each case image, V01 of each control image;
delong.placements), summed within each cluster i (V10_i., V01_i.; m_i cases and n_i controls in
the cluster; M = sum m_i, N = sum n_i; I clusters, I10 of them holding a case image, I01 a
control image):

    S10 = I10 / ((I10 - 1) M) * sum_i (V10_i. - m_i A)^2
    S01 = I01 / ((I01 - 1) N) * sum_i (V01_i. - n_i A)^2
    S11 = I / (I - 1)         * sum_i (V10_i. - m_i A)(V01_i. - n_i A)
    Var(A) = S10 / M + S01 / N + 2 S11 / (M N)

and, for two curves r, s on the same images, Cov = S10_rs/M + S01_rs/N + (S11_rs + S11_sr)/(MN)
with the cross products of the two curves' centred cluster sums. This is the formula of the
Cleveland Clinic reference implementation (funcs_clusteredROC.R, ``clusteredROC``; adapted in
DIDSR/mitoticFigureCounts as ``doAUCcluster``). With one image per cluster S11 vanishes, I10 = M,
I01 = N, and Var(A) is DeLong's variance exactly. The CI is A +- z * SE, clipped to [0, 1] as
delong.delong_ci (``ci_unclipped`` keeps the raw limits: one past 1 says the normal approximation
is straining).

The cluster (patient-level) bootstrap: resample whole clusters with replacement, recompute the
image-level AUC on every image of the drawn clusters, take the percentile interval. A resample is
drawn as multinomial counts of the clusters (``rng.multinomial(I, [1/I]*I)``: the same
distribution as drawing I clusters with replacement), and the AUC of a resample is the AUC with
every image weighted by its cluster's count. Resamples without a case image or a control image
have no AUC; they are dropped and counted (``n_degenerate``).

Pure numpy/pandas/scipy, as the rest of evaluation/.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import UserError
from . import delong
from .roc import as_binary_labels, as_scores, direction_symbol, oriented, resolve_direction

METHOD_OBUCHOWSKI = "Obuchowski (1997) clustered DeLong"
METHOD_BOOTSTRAP = "cluster bootstrap (percentile)"
_CHUNK_CELLS = 4_000_000  # resamples x images held in memory at once by the bootstrap


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise UserError(f"confidence level must be between 0 and 1 (exclusive), got {level!r}")
    return float(stats.norm.ppf(1 - (1 - level) / 2))


def cluster_codes(clusters, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(code per image 0..I-1, cluster ids in code order); UserError on a length mismatch or a missing id."""
    ids = pd.Series(np.asarray(clusters, dtype=object) if not isinstance(clusters, pd.Series) else clusters.to_numpy())
    if len(ids) != n:
        raise UserError(f"clusters: {len(ids)} cluster ids for {n} images")
    codes, uniques = pd.factorize(ids, use_na_sentinel=True)
    if (codes < 0).any():
        raise UserError(f"clusters: {int((codes < 0).sum())} images have no cluster (patient) id"
                        f" (first at position {int(np.flatnonzero(codes < 0)[0])})")
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _prepare(labels, scores, clusters, direction: str):
    try:
        labels = as_binary_labels(labels)
        scores = as_scores(scores, len(labels))
    except ValueError as error:
        raise UserError(str(error)) from None
    if labels.all() or not labels.any():
        raise UserError("AUC is undefined with only one class present")
    codes, ids = cluster_codes(clusters, len(labels))
    try:
        direction = resolve_direction(labels, scores, direction_symbol(direction))
    except ValueError as error:
        raise UserError(str(error)) from None
    return labels, scores, codes, ids, direction


def _centred_cluster_sums(labels: np.ndarray, scores: np.ndarray, codes: np.ndarray, n_clusters: int, direction: str):
    """(A, a, b, m_i, n_i, placements): the AUC, the centred cluster sums a_i = V10_i. - m_i A and
    b_i = V01_i. - n_i A, the cases and controls per cluster, and DeLong's placements."""
    p = delong.placements(labels, oriented(scores, direction), "<")
    m_i = np.bincount(codes[labels], minlength=n_clusters)
    n_i = np.bincount(codes[~labels], minlength=n_clusters)
    v10 = np.bincount(codes[labels], weights=p.cases, minlength=n_clusters)
    v01 = np.bincount(codes[~labels], weights=p.controls, minlength=n_clusters)
    return p.auc, v10 - m_i * p.auc, v01 - n_i * p.auc, m_i, n_i, p


def _components(a_r, b_r, a_s, b_s, m_i, n_i) -> dict:
    """Obuchowski's S10, S01, S11 (and S11 with the roles swapped) of curves r and s."""
    n_clusters = len(m_i)
    i10, i01 = int((m_i > 0).sum()), int((n_i > 0).sum())
    big_m, big_n = int(m_i.sum()), int(n_i.sum())
    if i10 < 2 or i01 < 2:
        nan = float("nan")
        return {"S10": nan, "S01": nan, "S11": nan, "S11_swapped": nan, "I": n_clusters, "I10": i10, "I01": i01,
                "M": big_m, "N": big_n}
    return {
        "S10": float(i10 / ((i10 - 1) * big_m) * np.dot(a_r, a_s)),
        "S01": float(i01 / ((i01 - 1) * big_n) * np.dot(b_r, b_s)),
        "S11": float(n_clusters / (n_clusters - 1) * np.dot(a_r, b_s)),
        "S11_swapped": float(n_clusters / (n_clusters - 1) * np.dot(a_s, b_r)),
        "I": n_clusters, "I10": i10, "I01": i01, "M": big_m, "N": big_n,
    }


def _covariance(c: dict) -> float:
    return c["S10"] / c["M"] + c["S01"] / c["N"] + (c["S11"] + c["S11_swapped"]) / (c["M"] * c["N"])


def _sizes(codes: np.ndarray, n_clusters: int) -> dict:
    per = np.bincount(codes, minlength=n_clusters)
    return {"min": int(per.min()), "median": float(np.median(per)), "max": int(per.max())}


def clustered_auc(labels, scores, clusters, level: float = 0.95, direction: str = "<") -> dict:
    """Image-level AUC with Obuchowski's (1997) cluster-aware variance and normal CI.

    ``clusters`` holds one id per image (the patient). ``direction`` is '<' (higher score =
    positive), '>' or 'auto' (pROC's rule, resolved on all images); the names higher, lower and
    auto are accepted too. Keys: auc, se, variance, ci
    [lower, upper] (clipped to [0, 1]), ci_unclipped, level, method, direction, n_images, n_cases,
    n_controls, n_clusters, n_clusters_with_cases, n_clusters_with_controls, images_per_cluster
    {min, median, max}, components {S10, S01, S11}, delong_se (the same AUC's SE with every image
    independent), variance_ratio (clustered / DeLong variance: the design effect), note (why the
    SE is undefined, else None).
    """
    labels, scores, codes, ids, direction = _prepare(labels, scores, clusters, direction)
    n_clusters = len(ids)
    auc, a, b, m_i, n_i, placements = _centred_cluster_sums(labels, scores, codes, n_clusters, direction)
    comp = _components(a, b, a, b, m_i, n_i)
    note = None
    if np.isnan(comp["S10"]):
        variance = float("nan")
        note = (f"the clustered variance needs at least 2 clusters with a case image and 2 with a control image"
                f" (have {comp['I10']} and {comp['I01']})")
    else:
        variance = _covariance(comp)
        if variance < 0:
            note = f"the clustered variance estimate is negative ({variance:.3g}): no CI"
            variance = float("nan")
    se = float(np.sqrt(variance))
    half = _z(level) * se
    raw = [auc - half, auc + half]
    naive = placements.variance
    return {
        "auc": float(auc),
        "se": se,
        "variance": float(variance),
        "ci": [float(max(raw[0], 0.0)), float(min(raw[1], 1.0))] if np.isfinite(se) else [float("nan")] * 2,
        "ci_unclipped": [float(v) for v in raw],
        "level": level,
        "method": METHOD_OBUCHOWSKI,
        "direction": direction,
        "n_images": int(len(labels)),
        "n_cases": int(labels.sum()),
        "n_controls": int((~labels).sum()),
        "n_clusters": n_clusters,
        "n_clusters_with_cases": comp["I10"],
        "n_clusters_with_controls": comp["I01"],
        "images_per_cluster": _sizes(codes, n_clusters),
        "components": {"S10": comp["S10"], "S01": comp["S01"], "S11": comp["S11"]},
        "delong_se": float(np.sqrt(naive)),
        "variance_ratio": float(variance / naive) if naive > 0 and np.isfinite(variance) else float("nan"),
        "note": note,
    }


def clustered_paired_test(labels, scores_a, scores_b, clusters, level: float = 0.95,
                          directions=("<", "<")) -> dict:
    """Two models scored on the same clustered images: Obuchowski's test of equal AUCs.

    Z = (A_a - A_b) / sqrt(Var_a + Var_b - 2 Cov_ab), two-sided normal p, CI d +- z * SE (the
    clustered counterpart of delong.paired_test, with the same keys where they apply, plus
    n_clusters and the components of the covariance).
    """
    labels, a_scores, codes, ids, dir_a = _prepare(labels, scores_a, clusters, directions[0])
    try:
        b_scores = as_scores(scores_b, len(labels))
        dir_b = resolve_direction(labels, b_scores, direction_symbol(directions[1]))
    except ValueError as error:
        raise UserError(str(error)) from None
    n_clusters = len(ids)
    auc_a, a_a, b_a, m_i, n_i, _ = _centred_cluster_sums(labels, a_scores, codes, n_clusters, dir_a)
    auc_b, a_b, b_b, _, _, _ = _centred_cluster_sums(labels, b_scores, codes, n_clusters, dir_b)
    comp_aa = _components(a_a, b_a, a_a, b_a, m_i, n_i)
    comp_bb = _components(a_b, b_b, a_b, b_b, m_i, n_i)
    comp_ab = _components(a_a, b_a, a_b, b_b, m_i, n_i)
    var_a, var_b, cov = _covariance(comp_aa), _covariance(comp_bb), _covariance(comp_ab)
    variance = var_a + var_b - 2 * cov
    sigma = float(np.sqrt(variance)) if variance >= 0 else float("nan")
    return {
        "test": "Obuchowski (1997) clustered test of two correlated ROC curves",
        "auc_a": float(auc_a),
        "auc_b": float(auc_b),
        "directions": [dir_a, dir_b],
        **delong.difference_z_test(auc_a - auc_b, sigma, level),
        "se_a": float(np.sqrt(var_a)),
        "se_b": float(np.sqrt(var_b)),
        "correlation": float(cov / np.sqrt(var_a * var_b)) if var_a > 0 and var_b > 0 else float("nan"),
        "n_images": int(len(labels)),
        "n_cases": int(labels.sum()),
        "n_controls": int((~labels).sum()),
        "n_clusters": n_clusters,
        "components": {"a": {k: comp_aa[k] for k in ("S10", "S01", "S11")},
                       "b": {k: comp_bb[k] for k in ("S10", "S01", "S11")},
                       "ab": {"S10": comp_ab["S10"], "S01": comp_ab["S01"], "S11_ab": comp_ab["S11"],
                              "S11_ba": comp_ab["S11_swapped"]}},
    }


def weighted_aucs(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of each row of ``weights`` (resamples x images): every image counted ``weight`` times.

    Sum over case-control pairs of w_i w_j psi(x_i, y_j) / (sum of case weights * sum of control
    weights), ties counted 1/2; nan where a row has no case or no control weight. ``scores`` are
    oriented (higher = positive).
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    is_case = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order]
    case_w = np.add.reduceat(np.where(is_case, w, 0.0), starts, axis=1)
    control_w = np.add.reduceat(np.where(is_case, 0.0, w), starts, axis=1)
    below = np.cumsum(control_w, axis=1) - control_w
    numerator = np.sum(case_w * (below + 0.5 * control_w), axis=1)
    denominator = case_w.sum(axis=1) * control_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def cluster_bootstrap_auc(labels, scores, clusters, n_bootstrap: int = 2000, seed: int = 0, level: float = 0.95,
                          direction: str = "<", return_resamples: bool = False) -> dict:
    """Image-level AUC with a percentile CI from resampling whole clusters (patients).

    Keys: auc (on the full sample), se (SD of the resampled AUCs, ddof=1), ci [lower, upper]
    (percentile, numpy's linear = R's type 7), level, method, direction, n_bootstrap,
    n_used (resamples with both classes), n_degenerate, seed, n_images, n_cases, n_controls,
    n_clusters, images_per_cluster, note; with ``return_resamples`` also resamples (the AUC of
    every resample, nan where degenerate). The direction is fixed from the full sample.
    Seeded: the same seed gives the same numbers.
    """
    labels, scores, codes, ids, direction = _prepare(labels, scores, clusters, direction)
    n_bootstrap = int(n_bootstrap)
    if n_bootstrap < 2:
        raise UserError(f"n_bootstrap must be at least 2, got {n_bootstrap}")
    _z(level)
    n_clusters = len(ids)
    oriented_scores = oriented(scores, direction)
    auc = float(delong.placements(labels, oriented_scores, "<").auc)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(len(labels), n_clusters))
    aucs = []
    uniform = np.full(n_clusters, 1.0 / n_clusters)
    for start in range(0, n_bootstrap, chunk):
        counts = rng.multinomial(n_clusters, uniform, size=min(chunk, n_bootstrap - start)).astype(np.float64)
        aucs.append(weighted_aucs(labels, oriented_scores, counts[:, codes]))
    aucs = np.concatenate(aucs)
    used = aucs[np.isfinite(aucs)]
    alpha = (1 - level) / 2
    note = None
    if len(used) < 2:
        lower = upper = se = float("nan")
        note = f"only {len(used)} of {n_bootstrap} cluster resamples held both classes: no bootstrap CI"
    else:
        lower, upper = (float(v) for v in np.quantile(used, [alpha, 1 - alpha]))
        se = float(np.std(used, ddof=1))
        if len(used) < n_bootstrap:
            note = (f"{n_bootstrap - len(used)} of {n_bootstrap} cluster resamples held only one class and were"
                    " dropped")
    result = {
        "auc": auc,
        "se": se,
        "ci": [lower, upper],
        "level": level,
        "method": METHOD_BOOTSTRAP,
        "direction": direction,
        "n_bootstrap": n_bootstrap,
        "n_used": int(len(used)),
        "n_degenerate": int(n_bootstrap - len(used)),
        "seed": seed,
        "n_images": int(len(labels)),
        "n_cases": int(labels.sum()),
        "n_controls": int((~labels).sum()),
        "n_clusters": n_clusters,
        "images_per_cluster": _sizes(codes, n_clusters),
        "note": note,
    }
    if return_resamples:
        result["resamples"] = aucs
    return result
