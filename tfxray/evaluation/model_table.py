"""A table scored by a saved model: evaluate_table's arguments from the model's info and recipe.

The table has the columns a model's scoring writes (``label``, ``patient_id`` when the manifest
has it, ``score`` for two classes or ``score_<class>`` for more); ``info`` holds the model's
``classes`` (negative first), ``positive`` class and saved ``threshold``. Plain values in, plain
values out: the caller reads the run directory and its recipe.

A model's score is the probability of its positive class, "higher = positive" by construction:
its direction is ``higher`` unless the user asks for another (``--direction``), so that a model
worse than chance on some data reads an AUC below 0.5 instead of being flipped above it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .choices import DEFAULT_AGGREGATION, DIRECTION_FOR_RUNS, DIRECTIONS

LABEL_COLUMN = "label"
PATIENT_COLUMN = "patient_id"  # the manifest's patient column, kept in the scored table


def run_direction(direction: str | None) -> str:
    """The direction of a model's scores: the one given (higher, lower, auto), else higher."""
    if direction is None:
        return DIRECTION_FOR_RUNS
    if direction not in DIRECTIONS:
        raise UserError(f"--direction: {direction!r} is not one of {', '.join(DIRECTIONS)}")
    return direction


def model_arguments(info: dict, *, label_column: str | None = None, positive=None,
                    threshold: str | None = None, direction: str | None = None) -> dict:
    """evaluate_table's label_column, positive, score_columns, classes, threshold,
    model_threshold, model_threshold_rule and direction: what the user gave, else the model's
    (label column ``label``, the model's positive class, its saved threshold with the rule
    ``model``, named by the rule that chose it at training, and direction ``higher``).

    A two-class model's score is the probability of its positive class: a ``positive`` that is
    the model's other class contradicts it and is refused (a UserError, one line).
    """
    classes = [str(c) for c in info.get("classes") or []]
    arguments = {
        "label_column": label_column or LABEL_COLUMN,
        "threshold": threshold or "model",
        "model_threshold": info.get("threshold"),
        "model_threshold_rule": info.get("threshold_rule"),
        "direction": run_direction(direction),
    }
    if len(classes) > 2:
        arguments.update(score_columns=[f"score_{c}" for c in classes], classes=classes, positive=positive)
    else:
        check_positive(info, positive)
        arguments.update(score_columns=["score"], classes=None, positive=positive or info["positive"])
    return arguments


def check_positive(info: dict, positive) -> None:
    """Refuse a ``--positive`` that names the model's negative class (its score is the positive class's)."""
    model_positive = str(info.get("positive"))
    classes = [str(c) for c in info.get("classes") or []]
    if positive is not None and str(positive) != model_positive and str(positive) in classes:
        name = f"{info['name']}'s" if info.get("name") else "the model's"
        raise UserError(f"--positive {positive}: {name} positive class is {model_positive} (its score is the"
                        f" probability of {model_positive}); leave --positive out or give --positive {model_positive}")


def models_arguments(infos: dict[str, dict], *, label_column: str | None = None, positive=None,
                     threshold: str | None = None, direction: str | None = None) -> dict:
    """evaluate_table's arguments for several two-class models scored on the same cases, one score
    column per model (``infos``: {score column: the model's info}).

    The models must share their classes and positive class; each keeps its own saved threshold;
    all read in one direction (``higher`` unless given), so that their DeLong test compares curves
    of the same direction.
    """
    names = list(infos)
    first = infos[names[0]]
    for name in names:
        info = infos[name]
        if len(info.get("classes") or []) != 2:
            raise UserError(f"{name}: comparing runs needs two-class models; this one has classes"
                            f" {'/'.join(map(str, info.get('classes') or []))}")
        if [str(c) for c in info["classes"]] != [str(c) for c in first["classes"]]:
            raise UserError(f"{name}: classes {'/'.join(map(str, info['classes']))} differ from {names[0]}'s"
                            f" {'/'.join(map(str, first['classes']))} (negative first): the runs answer different"
                            " questions")
        check_positive({**info, "name": name}, positive)
    return {
        "label_column": label_column or LABEL_COLUMN,
        "threshold": threshold or "model",
        "model_threshold": {name: info.get("threshold") for name, info in infos.items()},
        "model_threshold_rule": {name: info.get("threshold_rule") for name, info in infos.items()},
        "score_columns": names,
        "classes": None,
        "positive": positive or first["positive"],
        "direction": run_direction(direction),
    }


@dataclass(frozen=True)
class PatientLevel:
    column: str | None  # None: image level only
    aggregate: str
    note: str = ""  # one line saying what the run's recipe decided, or ""


def patient_level(patient_column: str | None = None, aggregate: str | None = None, *,
                  recipe_patient_level: bool = False, recipe_aggregate: str | None = None,
                  columns=None) -> PatientLevel:
    """The patient column and the aggregation of a model's evaluation.

    Each is decided on its own, by precedence: a value given (``None`` = not given; the command
    line or the environment) > the run's recipe (``evaluate.patient_level: true`` groups by
    ``patient_id``; ``evaluate.aggregate``) > the default (image level only; max). ``columns``:
    the scored table's columns, to say that the recipe's patient level needs ``patient_id``.
    """
    from_recipe = []
    column = patient_column
    if column is None and recipe_patient_level:
        column = PATIENT_COLUMN
        from_recipe.append("evaluate.patient_level: true")
        if columns is not None and column not in columns:
            raise UserError(f"the run's recipe asks for a per-patient evaluation (evaluate.patient_level: true), but"
                            f" the manifest has no {PATIENT_COLUMN} column (give --patient-column)")
    how = aggregate
    if how is None:
        how = recipe_aggregate or DEFAULT_AGGREGATION
        if recipe_aggregate is not None and column is not None:
            from_recipe.append(f"evaluate.aggregate: {how}")
    note = ""
    if column is not None and from_recipe:
        note = (f"per patient: rows grouped by {column}, each patient scored by the {how} of its images"
                f" (from the run's recipe: {', '.join(from_recipe)})")
    return PatientLevel(column, how, note)
