"""Stratified bootstrap of the ROC curve: AUC percentile CI and a sensitivity band.

Stratified as pROC's ``ci(..., method="bootstrap", stratified=TRUE)``: each resample draws the
cases and the controls separately, with replacement, so both class sizes stay fixed. The curve's
direction is kept from the full sample. A resample only matters through how many times each
distinct score is drawn, so it is drawn as multinomial counts over the distinct case values and
the distinct control values (same distribution as drawing rows, far less work). Seeded: the
same seed gives the same numbers.

scipy.stats.bootstrap has no ``stratified`` option, but given the case scores and the control
scores as two samples (``paired=False``, its default) it resamples each separately, which is this
same design; it draws rows rather than counts, and leaves the AUC statistic and the band to the
caller. scikit-learn has no bootstrap CI (``sklearn.utils.resample(stratify=...)`` draws one
resample per call).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .roc import as_binary_labels, as_scores, check_both_classes, oriented, resolve_direction

DEFAULT_GRID = np.linspace(0.0, 1.0, 101)
_CHUNK_CELLS = 20_000_000  # resamples x distinct values held in memory at once


@dataclass
class BootstrapResult:
    aucs: np.ndarray  # one AUC per resample
    specificity: np.ndarray  # grid of the band
    sensitivity_lower: np.ndarray
    sensitivity_upper: np.ndarray
    level: float
    seed: int
    direction: str

    @property
    def n_bootstrap(self) -> int:
        return len(self.aucs)

    def auc_ci(self) -> tuple[float, float]:
        """Percentile interval (R's default quantile type 7 = numpy's linear)."""
        alpha = (1 - self.level) / 2
        low, high = np.quantile(self.aucs, [alpha, 1 - alpha])
        return float(low), float(high)


def stratified_bootstrap(
    labels,
    scores,
    n_bootstrap: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    direction: str = "<",
    grid: np.ndarray = DEFAULT_GRID,
) -> BootstrapResult:
    """AUC of every resample and the pointwise ``level`` band of sensitivity over ``grid``.

    The band's sensitivity at specificity s is the best sensitivity among the resample's
    operating points with specificity >= s (the upper envelope of the step curve).
    """
    labels = as_binary_labels(labels)
    scores = as_scores(scores, len(labels))
    check_both_classes(labels)
    direction = resolve_direction(labels, scores, direction)
    values = oriented(scores, direction)
    unique, inverse = np.unique(values, return_inverse=True)
    k = len(unique)
    case_counts = np.bincount(inverse[labels], minlength=k)
    control_counts = np.bincount(inverse[~labels], minlength=k)
    case_slots, control_slots = np.flatnonzero(case_counts), np.flatnonzero(control_counts)
    m, n = int(labels.sum()), int((~labels).sum())
    case_p, control_p = case_counts[case_slots] / m, control_counts[control_slots] / n

    rng = np.random.default_rng(seed)
    grid = np.asarray(grid, dtype=np.float64)
    aucs = np.empty(n_bootstrap)
    band = np.empty((n_bootstrap, len(grid)))
    chunk = max(1, _CHUNK_CELLS // max(k, 1))
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        cases = np.zeros((b, k))
        controls = np.zeros((b, k))
        cases[:, case_slots] = rng.multinomial(m, case_p, size=b)
        controls[:, control_slots] = rng.multinomial(n, control_p, size=b)
        controls_below = np.cumsum(controls, axis=1) - controls
        aucs[start:start + b] = np.sum(cases * (controls_below + controls / 2.0), axis=1) / (m * n)
        # Operating point j (score >= unique[j] positive; j = k: nothing positive):
        # TP_j = cases at or above unique[j], TN_j = controls below it.
        tp = np.concatenate((np.cumsum(cases[:, ::-1], axis=1)[:, ::-1], np.zeros((b, 1))), axis=1)
        tn = np.concatenate((controls_below, np.full((b, 1), n)), axis=1)
        needed = grid * n - 1e-9
        for row in range(b if len(grid) else 0):
            first = np.searchsorted(tn[row], needed, side="left")  # tn is non-decreasing in j
            band[start + row] = tp[row, first] / m
    alpha = (1 - level) / 2
    lower, upper = np.quantile(band, [alpha, 1 - alpha], axis=0)
    return BootstrapResult(aucs, grid, lower, upper, level, seed, direction)


def bootstrap_auc_ci(labels, scores, n_bootstrap: int = 2000, seed: int = 0, level: float = 0.95,
                     direction: str = "<") -> tuple[float, float]:
    """Stratified percentile bootstrap CI of the AUC."""
    return stratified_bootstrap(labels, scores, n_bootstrap, seed, level, direction, grid=np.zeros(0)).auc_ci()
