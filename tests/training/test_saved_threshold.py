"""The threshold saved with a model is always a finite number that does what the rule chose."""

import json
import math

import numpy as np

from tfxray.training.trainer import choose_saved_threshold


def test_youden_midpoint_between_separated_scores():
    threshold, rule = choose_saved_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.6, 0.9]), "youden")
    assert threshold == (0.3 + 0.6) / 2 and rule == "youden on the validation split"


def test_inverted_validation_scores_save_a_finite_all_positive_threshold():
    # Every cut inside the curve is worse than an end: youden ties "everything positive"
    # (-inf) with "nothing positive" (+inf) and takes the more sensitive one.
    labels, scores = np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])
    threshold, rule = choose_saved_threshold(labels, scores, "youden")
    assert threshold == 0.0 and "every image is called positive" in rule
    assert np.all(scores >= threshold)  # the same operating point as -inf on scores in [0, 1]
    json.loads(json.dumps({"threshold": threshold}, allow_nan=False))


def test_specificity_one_on_tied_scores_saves_a_threshold_above_every_score():
    labels, scores = np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])
    threshold, rule = choose_saved_threshold(labels, scores, "specificity:1")
    assert math.isfinite(threshold) and threshold > 1.0 and "no image is called positive" in rule
    assert not np.any(np.array([0.0, 0.5, 1.0]) >= threshold)


def test_one_class_validation_split_falls_back_to_half():
    assert choose_saved_threshold(np.array([1, 1, 1]), np.array([0.2, 0.4, 0.9]), "youden")[0] == 0.5
