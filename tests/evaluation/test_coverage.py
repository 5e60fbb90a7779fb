"""The DeLong 95% CI covers the true binormal AUC about 95% of the time.

Controls ~ N(0, 1), cases ~ N(mu, 1): true AUC = Phi(mu / sqrt(2)). With 1,000 data sets the
binomial SD of the coverage is ~0.007, so 93-97% is a +-3 SD band; seeds are fixed.
"""

import numpy as np
import pytest
from scipy import stats

from tfxray.evaluation.delong import delong_ci


def simulate_coverage(n_sets, n_cases, n_controls, mu, seed):
    rng = np.random.default_rng(seed)
    truth = stats.norm.cdf(mu / np.sqrt(2))
    labels = np.r_[np.ones(n_cases, bool), np.zeros(n_controls, bool)]
    covered = 0
    for _ in range(n_sets):
        fit = delong_ci(labels, np.r_[rng.normal(mu, 1, n_cases), rng.normal(0, 1, n_controls)])
        covered += fit.lower <= truth <= fit.upper
    return covered / n_sets


def test_coverage_of_1000_binormal_data_sets():
    assert 0.93 <= simulate_coverage(1000, 100, 150, 1.0, seed=0) <= 0.97


@pytest.mark.slow
@pytest.mark.parametrize("n_cases, n_controls, mu, seed", [
    (50, 50, 0.5, 1),
    (200, 100, 1.0, 2),
    (60, 60, 0.0, 3),
    (300, 300, 1.5, 4),
])
def test_coverage_across_designs(n_cases, n_controls, mu, seed):
    # Small samples at high AUC (e.g. 30 cases, AUC 0.86) under-cover slightly (~92-93%), a known
    # property of the normal DeLong interval; these designs stay inside 93-97%.
    assert 0.93 <= simulate_coverage(2000, n_cases, n_controls, mu, seed) <= 0.97
