"""Coverage of the DeLong 95% CI of the AUC on simulated binormal data.

Controls ~ N(0, 1), cases ~ N(mu, 1): the true AUC is Phi(mu / sqrt(2)). A correct 95% interval
covers it in about 95% of data sets; the goal is 93-97% over 1,000 data sets.

    python benchmarks/delong_coverage.py [--sets 1000] [--cases 100] [--controls 150] [--mu 1.0] [--seed 0]

Scores are rounded to 0.1 so that ties (the midrank path) are exercised too; rounding both
classes the same way changes the true AUC, so it is computed on the rounded distributions
(P(X > Y) + P(X = Y)/2 summed over the grid) rather than taken from the formula alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfxray.evaluation.delong import delong_ci  # noqa: E402


def true_auc(mu: float, step: float | None) -> float:
    """Phi(mu/sqrt(2)) for continuous scores; with rounding to ``step``, the exact discrete AUC."""
    if not step:
        return float(stats.norm.cdf(mu / np.sqrt(2)))
    grid = np.arange(-12, 12 + mu, step)
    edges = np.append(grid - step / 2, grid[-1] + step / 2)
    p_control = np.diff(stats.norm.cdf(edges))
    p_case = np.diff(stats.norm.cdf(edges - mu))
    below = np.cumsum(p_control) - p_control
    return float(np.sum(p_case * (below + p_control / 2)))


def coverage(n_sets: int = 1000, n_cases: int = 100, n_controls: int = 150, mu: float = 1.0, seed: int = 0,
             step: float | None = 0.1) -> dict:
    rng = np.random.default_rng(seed)
    target = true_auc(mu, step)
    labels = np.r_[np.ones(n_cases, bool), np.zeros(n_controls, bool)]
    covered, widths = 0, []
    for _ in range(n_sets):
        scores = np.r_[rng.normal(mu, 1, n_cases), rng.normal(0, 1, n_controls)]
        if step:
            scores = np.round(scores / step) * step
        fit = delong_ci(labels, scores)
        covered += fit.lower <= target <= fit.upper
        widths.append(fit.upper - fit.lower)
    return {"coverage": covered / n_sets, "true_auc": target, "mean_width": float(np.mean(widths)), "n_sets": n_sets}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=1000)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--controls", type=int, default=150)
    parser.add_argument("--mu", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ties", action="store_true", help="continuous scores (no rounding)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = coverage(args.sets, args.cases, args.controls, args.mu, args.seed, None if args.no_ties else 0.1)
    print(f"{result['n_sets']} binormal data sets, {args.cases} cases / {args.controls} controls, mu = {args.mu},"
          f" {'continuous' if args.no_ties else 'rounded to 0.1 (ties)'}; true AUC {result['true_auc']:.4f}")
    print(f"mean CI width {result['mean_width']:.4f}; {time.perf_counter() - start:.1f} s")
    print(f"coverage: {result['coverage']:.3f}")
    return 0 if 0.93 <= result["coverage"] <= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
