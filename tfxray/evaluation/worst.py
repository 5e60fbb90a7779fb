"""The worst cases of a scored table: the highest-scoring negatives and the lowest-scoring positives.

What a reader looks at first when a model disappoints: the negatives it is surest are positive
(false positives, or nearly) and the positives it is surest are negative. Plain table in, plain
table out; ``scoring.predict.worst_gallery`` draws their Grad-CAM panels.
"""

from __future__ import annotations

import pandas as pd

FALSE_POSITIVES, FALSE_NEGATIVES = "false_positives", "false_negatives"


def worst_cases(table: pd.DataFrame, *, label_column: str, positive, score_column: str, n: int) -> pd.DataFrame:
    """Up to ``n`` highest-scoring negatives and ``n`` lowest-scoring positives of ``table``.

    Columns: kind (``false_positives`` or ``false_negatives``), rank (1 = worst), and the table's
    own columns. Ties keep the table's order (a stable sort).
    """
    scores = pd.to_numeric(table[score_column], errors="coerce")
    is_positive = table[label_column].astype(str) == str(positive)
    known = scores.notna()
    negatives = table[~is_positive & known].assign(_s=scores).sort_values("_s", ascending=False, kind="stable")
    positives = table[is_positive & known].assign(_s=scores).sort_values("_s", ascending=True, kind="stable")
    parts = []
    for kind, part in ((FALSE_POSITIVES, negatives), (FALSE_NEGATIVES, positives)):
        part = part.head(int(n)).drop(columns="_s")
        parts.append(part.assign(kind=kind, rank=range(1, len(part) + 1)))
    out = pd.concat(parts, ignore_index=True)
    return out[["kind", "rank", *table.columns]]
