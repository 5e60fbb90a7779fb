"""Per-patient aggregation, hand-worked."""

import numpy as np
import pandas as pd
import pytest

from tfxray.errors import UserError
from tfxray.evaluation.aggregate import aggregate_scores, noisy_or

# Patient A: two negative images; B: one positive of three; C: a single positive image.
PATIENTS = pd.Series(["A", "A", "B", "B", "B", "C"])
LABELS = np.array([False, False, False, True, False, True])
SCORES = pd.DataFrame({"p": [0.1, 0.3, 0.2, 0.5, 0.6, 0.9], "q": [0.2, np.nan, 0.1, 0.4, 0.3, np.nan]})


@pytest.mark.parametrize("method, expected_p", [
    ("max", [0.3, 0.6, 0.9]),
    ("mean", [0.2, (0.2 + 0.5 + 0.6) / 3, 0.9]),
    ("noisy-or", [1 - 0.9 * 0.7, 1 - 0.8 * 0.5 * 0.4, 0.9]),
])
def test_aggregates(method, expected_p):
    table = aggregate_scores(LABELS, SCORES, PATIENTS, method)
    assert table["group"].tolist() == ["A", "B", "C"]
    assert table["label"].tolist() == [False, True, True]  # positive when any image is positive
    assert table["n_images"].tolist() == [2, 3, 1]
    np.testing.assert_allclose(table["p"], expected_p)


def test_missing_scores_are_left_out():
    table = aggregate_scores(LABELS, SCORES, PATIENTS, "max")
    assert table["q"].iloc[0] == 0.2  # A's second image was not scored by q
    assert np.isnan(table["q"].iloc[2])  # C has no q score at all


def test_noisy_or_helper_and_certainty():
    assert noisy_or([0.5, 0.5]) == pytest.approx(0.75)
    assert noisy_or([0.2, 1.0]) == 1.0
    assert noisy_or([1e-3] * 1000) == pytest.approx(1 - (1 - 1e-3) ** 1000)


def test_noisy_or_needs_probabilities():
    with pytest.raises(UserError, match="noisy-or"):
        aggregate_scores(LABELS, SCORES * 10, PATIENTS, "noisy-or")


def test_patient_in_two_folds_is_an_error():
    folds = pd.DataFrame({"fold": [0, 0, 0, 1, 1, 1]})
    with pytest.raises(UserError, match="patient 'B' has rows with different values"):
        aggregate_scores(LABELS, SCORES, PATIENTS, "max", extra=folds)


def test_unknown_method():
    with pytest.raises(UserError, match="aggregate"):
        aggregate_scores(LABELS, SCORES, PATIENTS, "median")
