"""Threshold rules (hand-worked) and exact binomial intervals (pinned from R's binom.test)."""

import math

import numpy as np
import pytest

from tfxray.errors import UserError
from tfxray.evaluation import binomial, thresholds

# Five controls and five cases, no tied scores; a score >= t is positive.
CONTROLS = [0.1, 0.2, 0.3, 0.5, 0.7]
CASES = [0.4, 0.6, 0.8, 0.9, 0.95]
LABELS = np.array([0] * 5 + [1] * 5)
SCORES = np.array(CONTROLS + CASES)


def test_youden_hand_worked():
    # Sorted: .1c .2c .3c .4x .5c .6x .7c .8x .9x .95x. sens + spec at each midpoint threshold:
    # 0.35: 5/5 + 3/5; 0.45: 4/5 + 3/5; 0.55: 4/5 + 4/5; 0.65: 3/5 + 4/5; 0.75: 3/5 + 5/5.
    # J = 0.6 at 0.35, 0.55 and 0.75: three ties; the highest sensitivity is used.
    choice = thresholds.choose_threshold(LABELS, SCORES, "youden")
    assert [t["threshold"] for t in choice.ties] == pytest.approx([0.35, 0.55, 0.75])
    assert choice.threshold == pytest.approx(0.35)
    assert (choice.sensitivity, choice.specificity) == (1.0, 0.6)
    assert "3 thresholds tie" in choice.description


def test_sensitivity_and_specificity_targets_hand_worked():
    # sensitivity >= 0.8 (4 of 5 cases): highest such threshold is 0.55 (cases 0.6..0.95), spec 4/5.
    sens = thresholds.choose_threshold(LABELS, SCORES, "sensitivity:0.8")
    assert sens.threshold == pytest.approx(0.55) and (sens.sensitivity, sens.specificity) == (0.8, 0.8)
    # specificity >= 0.9 needs all 5 controls below: lowest such threshold 0.75, sens 3/5.
    spec = thresholds.choose_threshold(LABELS, SCORES, "specificity:0.9")
    assert spec.threshold == pytest.approx(0.75) and (spec.sensitivity, spec.specificity) == (0.6, 1.0)
    # A target met exactly: 19/20 = 0.95 meets sensitivity:0.95.
    labels = np.array([1] * 20 + [0] * 5)
    scores = np.concatenate([np.arange(20) / 20 + 0.5, np.arange(5) / 10])
    assert thresholds.choose_threshold(labels, scores, "sensitivity:0.95").sensitivity == 0.95


def test_fixed_and_model_rules():
    fixed = thresholds.choose_threshold(LABELS, SCORES, "0.5")
    assert fixed.threshold == 0.5 and fixed.rule == "0.5" and fixed.direction == "<"
    model = thresholds.choose_threshold(LABELS, SCORES, "model", model_threshold=0.42)
    assert model.threshold == 0.42 and model.rule == "model" and model.description == "model's threshold 0.42"
    # The model's rule is score >= t even when the data's direction is reversed.
    reversed_model = thresholds.choose_threshold(LABELS, -SCORES, "model", direction="auto", model_threshold=0.1)
    assert reversed_model.direction == "<"
    with pytest.raises(UserError, match="model"):
        thresholds.choose_threshold(LABELS, SCORES, "model")


@pytest.mark.parametrize("text", ["sens:0.9", "sensitivity:1.5", "sensitivity:x", "best", "specificity:0", "inf", ""])
def test_malformed_rules_are_user_errors(text):
    with pytest.raises(UserError, match="threshold"):
        thresholds.parse_rule(text)


def test_rule_parsing():
    assert thresholds.parse_rule(" Youden ") == thresholds.ThresholdRule("youden")
    assert thresholds.parse_rule("0.5") == thresholds.ThresholdRule("fixed", 0.5)
    assert str(thresholds.parse_rule("specificity:0.90")) == "specificity:0.9"


# R 4.2.2: binom.test(k, n)$conf.int, printed with %.15f.
R_BINOM = {
    (26, 41): (0.469362548032833, 0.778772137938935),
    (58, 72): (0.695331066701317, 0.889416213321510),
    (0, 10): (0.0, 0.308497107818761),
    (10, 10): (0.691502892181239, 1.0),
    (12, 14): (0.571870839090301, 0.982205484516808),
}


@pytest.mark.parametrize("k_n", list(R_BINOM))
def test_clopper_pearson_matches_r(k_n):
    assert binomial.clopper_pearson(*k_n) == pytest.approx(R_BINOM[k_n], abs=1e-12)


def test_operating_point_hand_worked():
    point = binomial.operating_point(tp=26, fp=14, tn=58, fn=15)
    assert point["sensitivity"]["value"] == pytest.approx(26 / 41)
    assert (point["sensitivity"]["lower"], point["sensitivity"]["upper"]) == pytest.approx(R_BINOM[(26, 41)])
    assert (point["specificity"]["lower"], point["specificity"]["upper"]) == pytest.approx(R_BINOM[(58, 72)])
    assert point["accuracy"]["value"] == pytest.approx(84 / 113)
    assert point["ppv"]["value"] == pytest.approx(26 / 40)
    assert point["npv"]["value"] == pytest.approx(58 / 73)
    assert point["f1"]["value"] == pytest.approx(2 * 26 / (2 * 26 + 14 + 15))
    empty = binomial.operating_point(tp=0, fp=0, tn=5, fn=5)
    assert math.isnan(empty["ppv"]["value"]) and math.isnan(empty["ppv"]["lower"])
