"""A table scored by a saved model: evaluate_table's arguments from the model's info and recipe.

The table has the columns a model's scoring writes (``label``, ``patient_id`` when the manifest
has it, ``score`` for two classes or ``score_<class>`` for more); ``info`` holds the model's
``classes`` (negative first), ``positive`` class and saved ``threshold``. Plain values in, plain
values out: the caller reads the run directory and its recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .choices import DEFAULT_AGGREGATION

LABEL_COLUMN = "label"
PATIENT_COLUMN = "patient_id"  # the manifest's patient column, kept in the scored table


def model_arguments(info: dict, *, label_column: str | None = None, positive=None,
                    threshold: str | None = None) -> dict:
    """evaluate_table's label_column, positive, score_columns, classes, threshold and
    model_threshold: what the user gave, else the model's (label column ``label``, the model's
    positive class, its saved threshold with the rule ``model``)."""
    classes = [str(c) for c in info.get("classes") or []]
    arguments = {
        "label_column": label_column or LABEL_COLUMN,
        "threshold": threshold or "model",
        "model_threshold": info.get("threshold"),
    }
    if len(classes) > 2:
        arguments.update(score_columns=[f"score_{c}" for c in classes], classes=classes, positive=positive)
    else:
        arguments.update(score_columns=["score"], classes=None, positive=positive or info["positive"])
    return arguments


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
