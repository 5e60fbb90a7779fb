"""AUC + DeLong 95% CI (tfxray) against scikit-learn's roc_auc_score alone, on 1,000,000 scores.

Binormal scores (controls N(0, 1), cases N(1, 1), 30% cases) rounded to 3 decimals, so that
ties are common. Both sides are timed in the same process on the same arrays; each is run
``--repeat`` times and the best time kept. The goal is tfxray at most 3x sklearn's time, although
tfxray also computes the placements and the variance sklearn does not.

    python benchmarks/evaluate.py [--n 1000000] [--repeat 5] [--seed 0]

Prints both times and, as the last line, ``ratio: <tfxray time / sklearn time>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best_time(function, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from sklearn.metrics import roc_auc_score

    from tfxray.evaluation.delong import delong_ci

    rng = np.random.default_rng(args.seed)
    labels = rng.random(args.n) < 0.3
    scores = np.round(rng.normal(labels * 1.0, 1.0), 3)
    distinct = len(np.unique(scores))

    ours_time, ours = best_time(lambda: delong_ci(labels, scores), args.repeat)
    sklearn_time, sklearn_auc = best_time(lambda: roc_auc_score(labels, scores), args.repeat)
    assert abs(ours.auc - sklearn_auc) < 1e-9, (ours.auc, sklearn_auc)

    print(f"{args.n:,} scores ({int(labels.sum()):,} cases), {distinct:,} distinct values; best of {args.repeat}")
    print(f"tfxray AUC + DeLong CI: {ours_time:.3f} s  (AUC {ours.auc:.6f}, 95% CI {ours.lower:.6f}-{ours.upper:.6f})")
    print(f"sklearn roc_auc_score:  {sklearn_time:.3f} s  (AUC {sklearn_auc:.6f})")
    print(f"ratio: {ours_time / sklearn_time:.2f}")


if __name__ == "__main__":
    main()
