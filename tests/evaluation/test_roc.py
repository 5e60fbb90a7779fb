"""ROC curve and AUC: scikit-learn, hand-worked examples, pROC's thresholds and direction rule."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve as sk_roc_curve

from tfxray.evaluation import roc


def test_auc_hand_worked_with_ties():
    # Cases 0.4, 0.6; controls 0.2, 0.4: pairs (0.4>0.2)=1, (0.4=0.4)=1/2, (0.6>0.2)=1, (0.6>0.4)=1 -> 3.5/4.
    assert roc.auc([1, 1, 0, 0], [0.4, 0.6, 0.2, 0.4]) == pytest.approx(0.875)


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(500) < 0.2
    scores = np.round(rng.normal(labels * 1.0, 1), 1)
    assert roc.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert roc.roc_curve(labels, scores, "<").auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_curve_points_match_sklearn():
    rng = np.random.default_rng(7)
    labels = rng.random(200) < 0.4
    scores = np.round(rng.random(200), 2)
    curve = roc.roc_curve(labels, scores, "<")
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    ours = set(zip(np.round(1 - curve.specificity, 12), np.round(curve.sensitivity, 12)))
    assert ours == set(zip(np.round(fpr, 12), np.round(tpr, 12)))


def test_thresholds_are_midpoints_and_infinities():
    curve = roc.roc_curve([0, 0, 1, 1], [1.0, 2.0, 2.0, 5.0], "<")
    np.testing.assert_allclose(curve.thresholds, [-np.inf, 1.5, 3.5, np.inf])
    np.testing.assert_array_equal(curve.tp, [2, 2, 1, 0])
    np.testing.assert_array_equal(curve.fp, [2, 1, 0, 0])


def test_direction_auto_compares_medians():
    # Controls' median above the cases': pROC picks ">" and the AUC is that of the reversed scores.
    labels = [0, 0, 0, 1, 1, 1]
    scores = [5, 6, 7, 1, 2, 6]
    assert roc.choose_direction(labels, scores) == ">"
    assert roc.auc(labels, scores, "auto") == pytest.approx(1 - roc_auc_score(labels, scores))
    # Equal medians: "<" (pROC: median(controls) <= median(cases)).
    assert roc.choose_direction([0, 0, 1, 1], [1, 3, 2, 2]) == "<"


def test_confusion_at_threshold_both_directions():
    labels = [1, 1, 0, 0, 1]
    scores = [0.9, 0.5, 0.5, 0.1, 0.2]
    assert roc.confusion_at(labels, scores, 0.5) == {"tp": 2, "fp": 1, "tn": 1, "fn": 1}
    assert roc.confusion_at(labels, scores, 0.5, ">") == {"tp": 2, "fp": 2, "tn": 0, "fn": 1}


def test_bad_labels_rejected():
    with pytest.raises(ValueError, match="0/1"):
        roc.auc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        roc.auc([0, 1], [0.1, np.nan])
