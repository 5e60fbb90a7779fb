"""Stratified bootstrap of the ROC curve: AUC percentile CI, the pointwise sensitivity band, and
the operating point with its threshold re-chosen in each resample.

Stratified as pROC's ``ci(..., method="bootstrap", stratified=TRUE)``: each resample draws the
cases and the controls separately, with replacement, so both class sizes stay fixed. The curve's
direction is kept from the full sample. A resample only matters through how many times each
distinct score is drawn, so it is drawn as multinomial counts over the distinct case values and
the distinct control values (same distribution as drawing rows, far less work). Seeded: the
same seed gives the same numbers.

- The band is pROC's ``ci.se``: in each resample, the sensitivity at each specificity of a grid,
  on the resample's ROC curve with pROC's ``coords(input="specificity")`` convention
  (``roc.interpolated_sensitivity``: the straight line between ROC points, the highest
  sensitivity where a point has that specificity exactly); then the percentile interval at each
  specificity. It is *pointwise*: each specificity's interval holds 95% on its own, not the whole
  curve at once. Evaluated on the same curve construction as the curve drawn, and at the curve's
  own points (``band_grid``), the band and the curve it surrounds are comparable point for point.
- The operating point with the threshold choice, as pROC's ``ci.coords(x = "best")``: in each
  resample the threshold is chosen again by the same rule (youden, sensitivity:X or
  specificity:X, with thresholds.py's tie rules) and the sensitivity and specificity are read at
  it; their percentile intervals include the variability of the choice itself, which the exact
  binomial intervals at a fixed threshold leave out.

scipy.stats.bootstrap has no ``stratified`` option, but given the case scores and the control
scores as two samples (``paired=False``, its default) it resamples each separately, which is this
same design; it draws rows rather than counts, and leaves the AUC statistic and the band to the
caller. scikit-learn has no bootstrap CI (``sklearn.utils.resample(stratify=...)`` draws one
resample per call).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .roc import (RocCurve, as_binary_labels, as_scores, check_both_classes, interpolated_sensitivity, oriented,
                  resolve_direction)

DEFAULT_GRID = np.linspace(0.0, 1.0, 101)
GRID_CURVE_POINTS = 1000  # the curve's own specificities join the band's grid up to this many distinct ones
VERTICAL_STEP = 1e-6  # just right of a vertical segment of the curve: the band at its lower end
CHOICE_RULES = ("youden", "sensitivity", "specificity")  # thresholds chosen on the data (thresholds.py)
_CHUNK_CELLS = 20_000_000  # resamples x distinct values held in memory at once
_TOLERANCE = 1e-9  # as thresholds.py: so that e.g. 19/20 counts as meeting 0.95


@dataclass
class BootstrapResult:
    aucs: np.ndarray  # one AUC per resample
    specificity: np.ndarray  # grid of the band
    sensitivity_lower: np.ndarray
    sensitivity_upper: np.ndarray
    level: float
    seed: int
    direction: str
    chosen_sensitivity: np.ndarray | None = None  # per resample, at the threshold re-chosen by ``rule``
    chosen_specificity: np.ndarray | None = None
    rule: str | None = None

    @property
    def n_bootstrap(self) -> int:
        return len(self.aucs)

    def _interval(self, values: np.ndarray) -> tuple[float, float]:
        """Percentile interval (R's default quantile type 7 = numpy's linear)."""
        alpha = (1 - self.level) / 2
        low, high = np.quantile(values, [alpha, 1 - alpha])
        return float(low), float(high)

    def auc_ci(self) -> tuple[float, float]:
        return self._interval(self.aucs)

    def choice_ci(self) -> dict[str, tuple[float, float]] | None:
        """{sensitivity, specificity: (lower, upper)} with the threshold re-chosen in each resample."""
        if self.chosen_sensitivity is None:
            return None
        return {"sensitivity": self._interval(self.chosen_sensitivity),
                "specificity": self._interval(self.chosen_specificity)}

    def band_has_no_width(self) -> bool:
        return bool(len(self.specificity)) and bool(np.all(self.sensitivity_upper - self.sensitivity_lower <= 1e-12))


def band_grid(curve: RocCurve | None = None, grid: np.ndarray = DEFAULT_GRID) -> np.ndarray:
    """The band's specificities: ``grid`` plus the curve's own points (and, just right of each
    vertical segment, its lower end) when the curve has at most GRID_CURVE_POINTS distinct
    specificities. Between two of these the curve is a straight line, and so is the band as
    drawn, so the curve lies inside the drawn band wherever it does at the grid's points."""
    grid = np.asarray(grid, dtype=np.float64)
    if curve is None:
        return grid
    specificity = curve.specificity
    distinct = np.unique(specificity)
    if len(distinct) > GRID_CURVE_POINTS:
        return grid
    same = specificity[1:] == specificity[:-1]
    vertical = np.unique(specificity[1:][same & (curve.tp[1:] != curve.tp[:-1])])
    right = vertical[vertical < 1.0 - 2 * VERTICAL_STEP] + VERTICAL_STEP
    return np.unique(np.concatenate((grid, distinct, right)))


def _rule_parts(rule) -> tuple[str, float | None] | None:
    if rule is None:
        return None
    from .thresholds import parse_rule

    parsed = parse_rule(rule)
    if parsed.kind not in CHOICE_RULES:
        return None  # a threshold fixed in advance: nothing is chosen on the data
    return parsed.kind, parsed.target


def _chosen(kind: str, target: float | None, tp: np.ndarray, tn: np.ndarray, m: int, n: int) -> np.ndarray:
    """Index of the chosen point in each resample (rows), by thresholds.choose_threshold's rules."""
    if kind == "youden":
        # sens + spec = (TP*n + TN*m) / (m*n), exact in floats for counts below 2**26; the first
        # maximum is the tied point with the highest sensitivity, as thresholds.py uses.
        return np.argmax(tp * n + tn * m, axis=1)
    if kind == "sensitivity":  # the point farthest toward fewer positives with sensitivity >= target
        return np.sum(tp >= target * m - _TOLERANCE, axis=1) - 1
    return np.sum(tn < target * n - _TOLERANCE, axis=1)  # specificity: the first point meeting the target


def resampled_counts(case_counts: np.ndarray, control_counts: np.ndarray, n_bootstrap: int, seed: int):
    """Stratified resamples as counts per distinct score: yields ``(start, cases, controls)`` chunks of
    (b, k) arrays, rows ``start .. start + b`` of ``n_bootstrap``. Each class is redrawn with its size
    fixed (a multinomial over that class's observed scores), so one row is one bootstrap sample
    without materialising its indices; chunks keep the arrays near ``_CHUNK_CELLS`` cells."""
    k = len(case_counts)
    m, n = int(case_counts.sum()), int(control_counts.sum())
    case_slots, control_slots = np.flatnonzero(case_counts), np.flatnonzero(control_counts)
    case_p, control_p = case_counts[case_slots] / m, control_counts[control_slots] / n
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(k, 1))
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        cases = np.zeros((b, k))
        controls = np.zeros((b, k))
        cases[:, case_slots] = rng.multinomial(m, case_p, size=b)
        controls[:, control_slots] = rng.multinomial(n, control_p, size=b)
        yield start, cases, controls


def stratified_bootstrap(
    labels,
    scores,
    n_bootstrap: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    direction: str = "<",
    grid: np.ndarray = DEFAULT_GRID,
    rule=None,
) -> BootstrapResult:
    """AUC of every resample, the pointwise ``level`` band of sensitivity over ``grid`` (pROC's
    ``ci.se``), and with ``rule`` (youden, sensitivity:X, specificity:X) the sensitivity and
    specificity at the threshold re-chosen by that rule in every resample (pROC's ``ci.coords``
    with ``x = "best"``). A fixed or model rule chooses nothing: no choice is bootstrapped.
    """
    labels = as_binary_labels(labels)
    scores = as_scores(scores, len(labels))
    check_both_classes(labels)
    direction = resolve_direction(labels, scores, direction)
    choice = _rule_parts(rule)
    values = oriented(scores, direction)
    unique, inverse = np.unique(values, return_inverse=True)
    k = len(unique)
    case_counts = np.bincount(inverse[labels], minlength=k)
    control_counts = np.bincount(inverse[~labels], minlength=k)
    m, n = int(labels.sum()), int((~labels).sum())

    grid = np.asarray(grid, dtype=np.float64)
    aucs = np.empty(n_bootstrap)
    band = np.empty((n_bootstrap, len(grid)))
    chosen_se = np.empty(n_bootstrap) if choice else None
    chosen_sp = np.empty(n_bootstrap) if choice else None
    for start, cases, controls in resampled_counts(case_counts, control_counts, n_bootstrap, seed):
        b = len(cases)
        controls_below = np.cumsum(controls, axis=1) - controls
        aucs[start:start + b] = np.sum(cases * (controls_below + controls / 2.0), axis=1) / (m * n)
        # Operating point j (score >= unique[j] positive; j = k: nothing positive):
        # TP_j = cases at or above unique[j], TN_j = controls below it. A value the resample did not
        # draw repeats the previous point, which changes neither the curve nor any rule's choice.
        tp = np.concatenate((np.cumsum(cases[:, ::-1], axis=1)[:, ::-1], np.zeros((b, 1))), axis=1)
        tn = np.concatenate((controls_below, np.full((b, 1), n)), axis=1)
        for row in range(b if len(grid) else 0):
            band[start + row] = interpolated_sensitivity(tn[row], tp[row], n, m, grid)
        if choice:
            index = _chosen(*choice, tp, tn, m, n)
            rows = np.arange(b)
            chosen_se[start:start + b] = tp[rows, index] / m
            chosen_sp[start:start + b] = tn[rows, index] / n
    alpha = (1 - level) / 2
    if len(grid):
        lower, upper = np.quantile(band, [alpha, 1 - alpha], axis=0)
    else:
        lower = upper = np.zeros(0)
    return BootstrapResult(aucs, grid, lower, upper, level, seed, direction, chosen_se, chosen_sp,
                           None if choice is None else str(rule))


def bootstrap_auc_ci(labels, scores, n_bootstrap: int = 2000, seed: int = 0, level: float = 0.95,
                     direction: str = "<") -> tuple[float, float]:
    """Stratified percentile bootstrap CI of the AUC."""
    return stratified_bootstrap(labels, scores, n_bootstrap, seed, level, direction, grid=np.zeros(0)).auc_ci()
