"""Choosing the operating threshold, and saying which rule chose it.

Rules (``--threshold``):
- a number, e.g. ``0.5``: that threshold; applied in the curve's direction (for '<', a score
  >= t is positive; for '>', a score <= t), as pROC's ``coords(x=t, input="threshold")``;
- ``youden``: the threshold(s) maximizing sensitivity + specificity, over pROC's candidate
  thresholds (-inf, midpoints between consecutive distinct scores, +inf). Ties are decided in
  exact integer arithmetic (TP*n_controls + TN*n_cases) and *all* tied points are reported, as
  pROC's ``coords(roc, "best")`` does; the operating point uses the tied threshold with the
  highest sensitivity (in fracture detection a miss costs more than a recall);
- ``sensitivity:X``: among candidate thresholds whose sensitivity is >= X, the one farthest
  toward "fewer positives" (the highest threshold for direction '<'). Sensitivity only falls and
  specificity only rises as the threshold moves that way, so this is the point meeting the target
  sensitivity with the best specificity;
- ``specificity:X``: among candidate thresholds whose specificity is >= X, the one farthest
  toward "more positives" (the lowest for '<'): target specificity met with the best sensitivity;
- ``model``: the threshold saved with the model, passed in by the caller. It is applied with the
  model's own rule, score >= t is positive, whatever the curve's direction, so that the operating
  point is what the deployed model does. It is named with the rule that chose it at training
  (``model_rule_text``: "model's threshold 0.47 (youden on the validation split)"), the words
  training printed.

Where the threshold comes from matters as much as its value. ``youden``, ``sensitivity:X`` and
``specificity:X`` choose it on the very data being evaluated: the operating point is then
*exploratory* (``ThresholdChoice.exploratory``; STARD 2015 item 12a), optimistic on new data, and
its exact binomial CIs, which hold the threshold fixed, are too narrow; the report adds CIs that
bootstrap the choice (bootstrap.py). A number given by the user and the model's saved threshold
(chosen on validation data at training) are fixed in advance: their exact CIs are the right ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from .roc import RocCurve, as_binary_labels, as_scores, roc_curve

DATA_RULES = ("youden", "sensitivity", "specificity")  # rules that choose the threshold on the evaluated data
_RULE_HELP = "use a number (e.g. 0.5), youden, sensitivity:X, specificity:X (X in (0, 1]) or model"


def model_rule_text(threshold, rule: str | None = None) -> str:
    """How a model's saved threshold is named everywhere: "model's threshold 0.47 (youden on the validation split)"."""
    text = f"model's threshold {float(threshold):.4g}"
    return f"{text} ({rule})" if rule else text


@dataclass(frozen=True)
class ThresholdRule:
    kind: str
    target: float | None = None  # the number for fixed, the target for sensitivity/specificity

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"{self.target:g}"
        if self.kind in ("sensitivity", "specificity"):
            return f"{self.kind}:{self.target:g}"
        return self.kind


@dataclass
class ThresholdChoice:
    threshold: float
    rule: str
    direction: str  # how the threshold is applied: '<' (score >= t positive) or '>' (score <= t)
    description: str
    sensitivity: float = math.nan
    specificity: float = math.nan
    ties: list[dict] = field(default_factory=list)  # every tied optimal point (youden)

    @property
    def exploratory(self) -> bool:
        """True when the threshold was chosen on the evaluated data (youden, sensitivity:X, specificity:X)."""
        return self.rule.split(":")[0] in DATA_RULES

    @property
    def chosen_on(self) -> str:
        if self.exploratory:
            return "the evaluated data (exploratory)"
        if self.rule == "model":
            return "the model's training run (saved with the model), before these data"
        return "fixed in advance (given by the user)"

    def as_dict(self) -> dict:
        return {
            "value": self.threshold,
            "rule": self.rule,
            "applied_as": "score >= threshold is positive" if self.direction == "<" else "score <= threshold is positive",
            "description": self.description,
            "ties": self.ties,
            "exploratory": self.exploratory,
            "chosen_on": self.chosen_on,
        }


def parse_rule(text, source: str = "threshold") -> ThresholdRule:
    """Parse a threshold rule; a malformed one is a UserError naming ``source``."""
    if isinstance(text, ThresholdRule):
        return text
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text):
            raise UserError(f"{source}: {text!r} is not a finite number")
        return ThresholdRule("fixed", float(text))
    raw = str(text).strip().lower()
    if raw in ("youden", "model"):
        return ThresholdRule(raw)
    if ":" in raw:
        kind, _, value = raw.partition(":")
        kind = kind.strip()
        if kind not in ("sensitivity", "specificity"):
            raise UserError(f"{source}: {text!r} is not a rule; {_RULE_HELP}")
        try:
            target = float(value)
        except ValueError:
            raise UserError(f"{source}: {text!r}: {value.strip()!r} is not a number; {_RULE_HELP}") from None
        if not 0 < target <= 1:
            raise UserError(f"{source}: {text!r}: the target {kind} must be a proportion in (0, 1]")
        return ThresholdRule(kind, target)
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"{source}: {text!r} is not a rule; {_RULE_HELP}") from None
    if not math.isfinite(value):
        raise UserError(f"{source}: {text!r} is not a finite number")
    return ThresholdRule("fixed", value)


def _point(curve: RocCurve, j: int) -> dict:
    return {
        "threshold": float(curve.thresholds[j]),
        "sensitivity": float(curve.sensitivity[j]),
        "specificity": float(curve.specificity[j]),
    }


def choose_threshold(
    labels,
    scores,
    rule="youden",
    *,
    direction: str = "<",
    model_threshold: float | None = None,
    model_rule: str | None = None,
    curve: RocCurve | None = None,
) -> ThresholdChoice:
    """The threshold chosen by ``rule`` on these labels (1/True = positive) and scores.

    ``direction`` is the curve's ('<', '>' or 'auto', see roc.py); pass ``curve`` when the
    caller already holds it. Returns a ThresholdChoice with the value, how to apply it, a
    sentence saying which rule chose it, and the tied optimal points for youden. ``model_rule``:
    the rule that chose the model's threshold at training, for its description.
    """
    rule = parse_rule(rule)
    labels = as_binary_labels(labels)
    scores = as_scores(scores, len(labels))
    if curve is None:
        curve = roc_curve(labels, scores, direction)
    direction = curve.direction

    if rule.kind == "model":
        if model_threshold is None or not math.isfinite(float(model_threshold)):
            raise UserError("threshold: rule 'model' needs the model's saved threshold, and none was given")
        t = float(model_threshold)
        return ThresholdChoice(t, "model", "<", model_rule_text(t, model_rule))
    if rule.kind == "fixed":
        t = float(rule.target)
        return ThresholdChoice(t, str(rule), direction, f"fixed threshold {t:.6g} given by the user")

    # Candidate index j runs from "everything positive" (0) to "nothing positive" (K).
    if rule.kind == "youden":
        # Exact integers: sens + spec = (TP*n + TN*m) / (m*n); no floating-point near-ties.
        kind = np.int64 if 2 * curve.n_cases * curve.n_controls < 2**62 else object  # object: Python ints
        criterion = curve.tp.astype(kind) * curve.n_controls + curve.tn.astype(kind) * curve.n_cases
        best = criterion.max()
        tied = [int(j) for j in np.flatnonzero(criterion == best)]
        ties = [_point(curve, j) for j in tied]
        j_stat = float(best) / (curve.n_cases * curve.n_controls) - 1.0
        description = f"youden: maximizes sensitivity + specificity (J = {j_stat:.4f})"
        if len(tied) > 1:
            description += f"; {len(tied)} thresholds tie, the one with the highest sensitivity is used"
        p = ties[0]  # the tied point with the highest sensitivity
        return ThresholdChoice(p["threshold"], "youden", direction, description, p["sensitivity"], p["specificity"], ties)

    target = float(rule.target)
    tolerance = 1e-9  # so that e.g. 19/20 counts as meeting 0.95
    if rule.kind == "sensitivity":
        meets = np.flatnonzero(curve.tp >= target * curve.n_cases - tolerance)
        chosen = int(meets.max())
        description = (f"sensitivity:{target:g}: the threshold with sensitivity >= {target:g} and the best specificity"
                       f" ({'highest' if direction == '<' else 'lowest'} such threshold)")
    else:
        meets = np.flatnonzero(curve.tn >= target * curve.n_controls - tolerance)
        chosen = int(meets.min())
        description = (f"specificity:{target:g}: the threshold with specificity >= {target:g} and the best sensitivity"
                       f" ({'lowest' if direction == '<' else 'highest'} such threshold)")
    p = _point(curve, chosen)
    return ThresholdChoice(p["threshold"], str(rule), direction, description, p["sensitivity"], p["specificity"])
