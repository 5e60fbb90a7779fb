"""DeLong's fast midrank algorithm against a brute-force O(m*n) computation, with ties."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from tfxray.evaluation import delong, roc


def heaviside_placements(labels, scores):
    """Structural components straight from DeLong (1988): psi(x, y) = 1 if x > y, 1/2 if x == y, else 0."""
    labels = np.asarray(labels, dtype=bool)
    x, y = scores[labels], scores[~labels]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    return psi.mean(axis=1), psi.mean(axis=0), psi.mean()


def brute_force_variance(labels, scores):
    v10, v01, _ = heaviside_placements(labels, scores)
    return np.var(v10, ddof=1) / len(v10) + np.var(v01, ddof=1) / len(v01)


def random_tied_data(seed, n=300, levels=12):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.35
    # Rounded binormal scores: many ties within and across classes.
    scores = np.round(rng.normal(labels * 0.8, 1.0) * levels / 4) / (levels / 4)
    return labels, scores


@pytest.mark.parametrize("seed", range(8))
def test_placements_match_brute_force(seed):
    labels, scores = random_tied_data(seed)
    assert len(np.unique(scores)) < len(scores) / 4  # really tied
    v10, v01, auc = heaviside_placements(labels, scores)
    fast = delong.placements(labels, scores)
    np.testing.assert_allclose(fast.cases, v10, atol=1e-12)
    np.testing.assert_allclose(fast.controls, v01, atol=1e-12)
    assert fast.auc == pytest.approx(auc, abs=1e-12)
    assert fast.variance == pytest.approx(brute_force_variance(labels, scores), rel=1e-10)
    assert roc.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_paired_test_matches_brute_force_covariance(seed):
    labels, a = random_tied_data(seed)
    rng = np.random.default_rng(100 + seed)
    b = np.round(a + rng.normal(0, 0.7, len(a)), 1)
    a10, a01, auc_a = heaviside_placements(labels, a)
    b10, b01, auc_b = heaviside_placements(labels, b)
    m, n = len(a10), len(a01)
    var = (np.var(a10, ddof=1) + np.var(b10, ddof=1) - 2 * np.cov(a10, b10, ddof=1)[0, 1]) / m + \
          (np.var(a01, ddof=1) + np.var(b01, ddof=1) - 2 * np.cov(a01, b01, ddof=1)[0, 1]) / n
    z = (auc_a - auc_b) / np.sqrt(var)
    result = delong.paired_test(labels, a, b)
    assert result["z"] == pytest.approx(z, rel=1e-10)
    assert result["p"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    half = stats.norm.ppf(0.975) * np.sqrt(var)
    assert (result["ci_lower"], result["ci_upper"]) == pytest.approx((auc_a - auc_b - half, auc_a - auc_b + half))


def test_unpaired_test_matches_welch_formula():
    la, a = random_tied_data(1, n=150)
    lb, b = random_tied_data(2, n=220)
    va, vb = brute_force_variance(la, a), brute_force_variance(lb, b)
    d = (roc_auc_score(la, a) - roc_auc_score(lb, b)) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1))
    result = delong.unpaired_test(la, a, lb, b)
    assert result["d"] == pytest.approx(d, rel=1e-10)
    assert result["df"] == pytest.approx(df, rel=1e-10)
    assert result["p"] == pytest.approx(2 * stats.t.sf(abs(d), df), rel=1e-9)


def test_ci_is_clipped_to_unit_interval():
    # Nearly separated classes: AUC close to 1, the normal interval would pass 1.
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.75, 0.7, 0.8, 0.9, 0.95])
    fit = delong.delong_ci(labels, scores)
    assert fit.auc == pytest.approx(15 / 16)
    assert fit.upper == 1.0
    assert fit.lower < fit.auc


def test_identical_models_give_z_zero():
    labels, scores = random_tied_data(3)
    result = delong.paired_test(labels, scores, scores)
    assert result["z"] == 0.0 and result["p"] == 1.0


def test_placements_keep_case_order_under_direction_flip():
    labels, scores = random_tied_data(5)
    flipped = delong.placements(labels, -scores, direction=">")
    straight = delong.placements(labels, scores)
    np.testing.assert_allclose(flipped.cases, straight.cases)
    assert delong.delong_ci(labels, -scores, direction="auto").auc == pytest.approx(straight.auc)


def test_one_class_is_an_error():
    with pytest.raises(ValueError, match="one class"):
        delong.delong_ci([1, 1, 1], [0.1, 0.2, 0.3])
