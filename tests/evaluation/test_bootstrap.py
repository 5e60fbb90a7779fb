"""Stratified bootstrap: same distribution as naive row resampling, seeded, sane band."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tfxray.evaluation import bootstrap, roc


def small_data(seed=0, n=80):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) < n * 0.4
    scores = np.round(rng.normal(labels * 1.0, 1), 1)
    return labels, scores


def test_auc_distribution_matches_naive_row_resampling():
    labels, scores = small_data()
    cases, controls = scores[labels], scores[~labels]
    # Heaviside kernel of every (case, control) pair; a resample's AUC is the mean over its pairs.
    psi = (cases[:, None] > controls[None, :]) + 0.5 * (cases[:, None] == controls[None, :])
    assert psi.mean() == pytest.approx(roc_auc_score(labels, scores))
    rng = np.random.default_rng(123)
    naive = np.array([psi[rng.integers(0, len(cases), len(cases))][:, rng.integers(0, len(controls), len(controls))]
                      .mean() for _ in range(3000)])
    ours = bootstrap.stratified_bootstrap(labels, scores, 3000, seed=0).aucs
    assert ours.mean() == pytest.approx(naive.mean(), abs=0.004)
    assert ours.std() == pytest.approx(naive.std(), rel=0.06)
    assert np.quantile(ours, [0.025, 0.975]) == pytest.approx(np.quantile(naive, [0.025, 0.975]), abs=0.01)


def test_seeded_and_reproducible():
    labels, scores = small_data(1)
    a = bootstrap.bootstrap_auc_ci(labels, scores, 500, seed=7)
    b = bootstrap.bootstrap_auc_ci(labels, scores, 500, seed=7)
    c = bootstrap.bootstrap_auc_ci(labels, scores, 500, seed=8)
    assert a == b and a != c
    assert a[0] < roc.auc(labels, scores) < a[1]


def test_band_is_ordered_monotone_and_holds_the_curve():
    labels, scores = small_data(2, n=200)
    result = bootstrap.stratified_bootstrap(labels, scores, 1000, seed=0)
    assert np.all(result.sensitivity_lower <= result.sensitivity_upper)
    assert np.all(np.diff(result.sensitivity_upper) <= 1e-12)  # sensitivity falls as specificity rises
    curve = roc.roc_curve(labels, scores, "<")
    # The observed best sensitivity at each grid specificity lies inside the band almost everywhere.
    observed = [curve.sensitivity[curve.specificity >= s - 1e-12].max() for s in result.specificity]
    inside = (result.sensitivity_lower - 1e-12 <= observed) & (observed <= result.sensitivity_upper + 1e-12)
    assert inside.mean() > 0.95


def test_direction_is_kept_from_the_full_sample():
    labels, scores = small_data(3)
    straight = bootstrap.stratified_bootstrap(labels, scores, 300, seed=0)
    flipped = bootstrap.stratified_bootstrap(labels, -scores, 300, seed=0, direction="auto")
    assert flipped.direction == ">"
    np.testing.assert_allclose(flipped.aucs, straight.aucs)
