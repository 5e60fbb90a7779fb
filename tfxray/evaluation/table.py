"""From a scores table to the arrays each analysis level works on, checking the user's data.

Every problem with the table is a UserError naming the column (one line). Conventions:
- binary task: the label column holds two values; ``positive`` names the cases, the other value
  the controls. Labels are matched as text, or as numbers when both sides are numbers (1 == "1.0");
- multi-class task: the label column holds more than two values (or ``classes`` lists more than
  two); one score column per class, named after the class or ``score_<class>``;
- a missing score (empty cell, NaN) is allowed only when several models are compared in one
  table: it means "this model did not score this row". With one model, or in a multi-class
  table, it is an error; so is an infinite score, and so is a NaN *written* in a CSV cell (a
  model's NaN output; the CLI reads only empty cells as missing);
- patient level: rows grouped by the patient (or study) column; see aggregate.py. The image
  level then keeps each image's patient id (``LevelData.groups``) for the cluster-aware CIs, and
  the patient level its patients' ids (``LevelData.ids``), in the same text form as the grouping.

``screen_rows`` is the CLI's --scores screen: rows that cannot be analysed (a label cell left
empty, no score in any score column, a file the scorer could not read) are taken out *before*
the checks above and returned with their reason, for the flow of cases (flow.py), instead of
stopping the evaluation or being dropped silently. ``evaluate_table`` itself still refuses them.

``read_scores_csv`` and ``read_readers_csv`` read the CLI's tables with these conventions;
``readers_file_kind`` tells the two kinds of --readers file apart (reader operating points, or a
reads table for an MRMC analysis, read by ``read_reads_file``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UserError
from .aggregate import aggregate_scores
from .choices import AGGREGATIONS


@dataclass
class LevelData:
    name: str  # "image" or "patient"
    labels: np.ndarray  # bool (binary: True = positive) or class names as text (multi-class)
    scores: pd.DataFrame  # one column per score column; NaN = not scored by that model
    folds: np.ndarray | None
    n_images: np.ndarray | None = None  # images per patient (patient level)
    groups: np.ndarray | None = None  # image level with a patient column: each image's patient id (text)
    ids: np.ndarray | None = None  # patient level: each patient's id (text), in the order of ``labels``


def _data_row(position: int) -> str:
    return f"data row {position + 1}"


def _same_label(value, wanted) -> bool:
    if str(value) == str(wanted):
        return True
    try:
        return math.isclose(float(value), float(wanted), rel_tol=0, abs_tol=0)
    except (TypeError, ValueError):
        return False


TABLE_CAP_BYTES = 2_000_000_000  # a scores table of tens of millions of files; beyond, a file given by mistake


def read_table_csv(path, **options) -> pd.DataFrame:
    """A CSV table the user gave (scores, boxes, reads), refused in one line naming the file when it is
    not one: over ``TABLE_CAP_BYTES``, holding a NUL byte (a binary file), not UTF-8, or not CSV."""
    import io

    from ..io import read_text_file

    text = read_text_file(path, cap=TABLE_CAP_BYTES, over_cap=f"over {TABLE_CAP_BYTES:,} bytes: not a table to read whole",
                          nul="a table is a text CSV, not a binary file", not_utf8="save the table as UTF-8 CSV")
    try:
        return pd.read_csv(io.StringIO(text), **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def read_scores_csv(path) -> pd.DataFrame:
    """A scores table from a CSV file. Only empty cells are missing: a written "nan" is a model's
    NaN output, kept as text so that ``score_frame`` reports it."""
    return read_table_csv(path, keep_default_na=False, na_values=[""])


SCORER_STATUS = {"ok": None, "error": "unreadable", "skipped": "skipped by the scorer"}  # `tfxray score`'s status


def screen_rows(df: pd.DataFrame, label_column: str, score_columns, status_column: str = "status"
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows to analyse, rows left out with a ``reason`` column) of a scores table read from CSV.

    A row is left out, with the first reason that applies, when: its ``status`` is ``error``
    ("unreadable") or ``skipped`` ("skipped by the scorer"), only when the table has the status
    column of `tfxray score` (every value ok, error or skipped; another column of that name is
    not read); its label cell is empty ("unknown label"); none of the score columns holds a
    value ("no score": an empty cell; a written NaN is a model's output and stays an error, as
    do a text or infinite score). Both tables keep the input's columns and row order.
    """
    score_columns = [score_columns] if isinstance(score_columns, str) else list(score_columns)
    check_columns(df, label_column=label_column, score_column=score_columns)
    reason = pd.Series([None] * len(df), index=df.index, dtype=object)
    if status_column in df.columns:
        status = df[status_column].astype(str).str.strip().str.lower().where(df[status_column].notna(), "")
        if status.isin(list(SCORER_STATUS)).all():
            for value, why in SCORER_STATUS.items():
                if why is not None:
                    reason[(status == value) & reason.isna()] = why
    reason[df[label_column].isna() & reason.isna()] = "unknown label"
    unscored = pd.concat([df[c].isna() for c in score_columns], axis=1).all(axis=1)
    reason[unscored & reason.isna()] = "no score"
    left_out = reason.notna()
    return df[~left_out], df[left_out].assign(reason=reason[left_out])


def read_readers_csv(path) -> pd.DataFrame:
    """Reader operating points from a CSV file (columns as ``readers_table`` expects)."""
    return read_table_csv(path)


POINT_COLUMNS = ("name", "sensitivity", "specificity")  # optional: level
READ_COLUMNS = ("case", "reader", "modality", "truth", "rating")  # as mrmc.COLUMNS


def readers_file_kind(path) -> str:
    """"points" for reader operating points (columns name, sensitivity, specificity[, level]),
    "reads" for a reads table (columns case, reader, modality, truth, rating, or a LABMRMC .lrc
    file); any other file is a one-line UserError naming what each kind needs."""
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() == ".lrc":
        return "reads"
    columns = [str(c).strip() for c in read_table_csv(path, nrows=0).columns]
    if all(c in columns for c in READ_COLUMNS):
        return "reads"
    if all(c in columns for c in POINT_COLUMNS):
        return "points"
    shown = ", ".join(columns[:12]) + (" ..." if len(columns) > 12 else "")
    raise UserError(f"{path}: neither reader operating points (columns {', '.join(POINT_COLUMNS)}[, level]) nor a"
                    f" reads table (columns {', '.join(READ_COLUMNS)}; or a LABMRMC .lrc file); it has columns"
                    f" {shown or 'none'}")


def read_reads_file(path, positive=None) -> pd.DataFrame:
    """A reads table from a CSV (columns case, reader, modality, truth, rating) or a LABMRMC .lrc
    file, checked by mrmc.validate_reads (fully crossed; one reader is allowed here, as a model
    may be added as another). ``positive`` names the diseased truth value when the truth column
    is not 0/1."""
    from pathlib import Path

    from .mrmc import read_lrc, read_reads_csv

    path = Path(path)
    if path.suffix.lower() == ".lrc":
        return read_lrc(path)
    truth = read_table_csv(path, usecols=["truth"], dtype=str)["truth"].dropna().str.strip()
    binary = truth.isin(["0", "1", "0.0", "1.0", "True", "False", "true", "false"]).all()
    return read_reads_csv(path, None if binary else positive, min_readers=1)


def check_columns(df: pd.DataFrame, **columns) -> None:
    """Each named option's column(s) must exist; the message lists what the table has."""
    available = ", ".join(map(str, df.columns[:20])) + (" ..." if len(df.columns) > 20 else "")
    for option, names in columns.items():
        if names is None:
            continue
        for name in [names] if isinstance(names, str) else names:
            if name not in df.columns:
                raise UserError(f"{option.replace('_', ' ')} {name!r}: no such column (columns: {available})")


def label_values(df: pd.DataFrame, label_column: str) -> pd.Series:
    labels = df[label_column]
    missing = labels.isna().to_numpy()
    if missing.any():
        raise UserError(f"label column {label_column!r}: {int(missing.sum())} rows have no label"
                        f" (first: {_data_row(int(np.flatnonzero(missing)[0]))})")
    return labels


def binary_labels(labels: pd.Series, label_column: str, positive) -> tuple[np.ndarray, str, str]:
    """(True where positive, positive value, negative value) for a two-class label column."""
    values = list(pd.unique(labels))
    shown = ", ".join(sorted(map(str, values))[:10])
    if positive is None:
        raise UserError(f"label column {label_column!r}: say which value is positive (values: {shown})")
    matches = [v for v in values if _same_label(v, positive)]
    if not matches:
        raise UserError(f"positive {str(positive)!r} is not a value of label column {label_column!r} (values: {shown})")
    if len(values) == 1:
        raise UserError(f"label column {label_column!r}: only one class ({shown}); AUC is undefined")
    if len(values) > 2:
        raise UserError(f"label column {label_column!r} has {len(values)} classes ({shown}); for one-vs-rest give one"
                        " score column per class (named after the class or score_<class>)")
    negative = next(v for v in values if v not in matches)
    is_positive = np.array([_same_label(v, positive) for v in labels], dtype=bool)
    return is_positive, str(matches[0]), str(negative)


def class_names(values, classes) -> list:
    """Each label value as the name of its class in ``classes`` (matched as ``binary_labels`` does:
    as text, or as numbers when both are numbers), None for an empty cell, else the value as text."""
    out = []
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            out.append(None)
            continue
        out.append(next((str(c) for c in classes if _same_label(value, c)), str(value)))
    return out


def class_of_column(column: str) -> str:
    return column[len("score_"):] if column.startswith("score_") else column


def class_columns(labels: pd.Series, label_column: str, score_columns: list[str], classes=None) -> dict[str, str]:
    """Class name -> its score column, for a multi-class table."""
    known = [str(c) for c in classes] if classes is not None else None
    mapping = {}
    for column in score_columns:
        name = column if known is not None and column in known else class_of_column(column)
        if known is not None and name not in known:
            raise UserError(f"score column {column!r}: no class of that name (classes: {', '.join(known)})")
        if name in mapping:
            raise UserError(f"score columns {mapping[name]!r} and {column!r}: both are for class {name!r}")
        mapping[name] = column
    label_text = labels.astype(str)
    unknown = sorted(set(label_text) - set(mapping))
    if unknown:
        raise UserError(f"label column {label_column!r}: no score column for class {unknown[0]!r}; give one score column"
                        f" per class, named after the class or score_<class> (got {', '.join(score_columns)})")
    return mapping


def score_frame(df: pd.DataFrame, score_columns: list[str], allow_missing: bool) -> pd.DataFrame:
    """The score columns as floats; text, infinite and (unless allowed) missing values are errors."""
    if len(set(score_columns)) != len(score_columns):
        raise UserError(f"score column: a column is given twice ({', '.join(score_columns)})")
    out = {}
    for column in score_columns:
        raw = df[column]
        textual = not (pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw))
        values = pd.to_numeric(raw, errors="coerce") if textual else raw
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            raise UserError(f"score column {column!r}: not numeric") from None
        words = raw.astype(str).str.strip().str.lower()
        written_nan = textual & words.isin(["nan", "-nan", "+nan"]).to_numpy()
        if written_nan.any():  # a model that output NaN; an empty cell is how "not scored" is written
            first = int(np.flatnonzero(written_nan)[0])
            raise UserError(f"score column {column!r}: NaN score in {_data_row(first)}"
                            f" ({int(written_nan.sum())} rows); an empty cell means 'not scored'")
        text = values.isna().to_numpy() & raw.notna().to_numpy() & ~words.isin([""]).to_numpy()
        if text.any():
            first = int(np.flatnonzero(text)[0])
            raise UserError(f"score column {column!r}: {raw.iloc[first]!r} in {_data_row(first)} is not a number")
        array = values.to_numpy()
        infinite = np.isinf(array)
        if infinite.any():
            first = int(np.flatnonzero(infinite)[0])
            raise UserError(f"score column {column!r}: {int(infinite.sum())} infinite scores (first: {_data_row(first)})")
        missing = np.isnan(array)
        if missing.all():
            raise UserError(f"score column {column!r}: no scores (every value is empty or NaN)")
        if missing.any() and not allow_missing:
            first = int(np.flatnonzero(missing)[0])
            raise UserError(f"score column {column!r}: {int(missing.sum())} rows have no score (empty or NaN;"
                            f" first: {_data_row(first)})")
        out[column] = array
    frame = pd.DataFrame(out, index=df.index).reset_index(drop=True)
    unscored = frame.isna().all(axis=1).to_numpy()
    if unscored.any():
        first = int(np.flatnonzero(unscored)[0])
        raise UserError(f"score columns: {_data_row(first)} has no score in any of {', '.join(score_columns)}")
    return frame


def fold_values(df: pd.DataFrame, fold_column: str | None) -> np.ndarray | None:
    if fold_column is None:
        return None
    folds = df[fold_column]
    missing = folds.isna().to_numpy()
    if missing.any():
        raise UserError(f"fold column {fold_column!r}: {int(missing.sum())} rows have no fold"
                        f" (first: {_data_row(int(np.flatnonzero(missing)[0]))})")
    folds = folds.astype(str).to_numpy()
    if len(set(folds)) < 2:
        raise UserError(f"fold column {fold_column!r}: only one fold ({folds[0]}); cross-validation needs two or more")
    return folds


def build_levels(df: pd.DataFrame, settings: dict) -> dict[str, LevelData]:
    """The image level and, with a patient column, the patient level, from ``settings``
    (label_column, positive, score_columns, patient_column, aggregate, fold_column, task)."""
    labels = label_values(df, settings["label_column"])
    multiclass = settings["task"] == "multiclass"
    if multiclass:
        image_labels = labels.astype(str).to_numpy()
    else:
        image_labels, _, _ = binary_labels(labels, settings["label_column"], settings["positive"])
    scores = score_frame(df, settings["score_columns"], allow_missing=not multiclass and len(settings["score_columns"]) > 1)
    folds = fold_values(df, settings.get("fold_column"))
    levels = {"image": LevelData("image", image_labels, scores, folds)}

    patient_column = settings.get("patient_column")
    if patient_column:
        missing = df[patient_column].isna().to_numpy()
        if missing.any():
            raise UserError(f"patient column {patient_column!r}: {int(missing.sum())} rows have no patient"
                            f" (first: {_data_row(int(np.flatnonzero(missing)[0]))})")
        # as aggregate_scores groups them: ids as text (17 and "17" are one patient)
        levels["image"].groups = df[patient_column].astype(str).to_numpy()
        fold_key = settings.get("fold_column")
        extra = pd.DataFrame({fold_key: folds}) if folds is not None else None
        if multiclass:
            # A patient's class must be one: there is no "any positive" rule between classes.
            per_patient = pd.Series(image_labels).groupby(df[patient_column].astype(str).to_numpy()).nunique()
            mixed = per_patient[per_patient > 1]
            if len(mixed):
                raise UserError(f"patient column {patient_column!r}: patient {mixed.index[0]!r} has images of different"
                                " classes; per-patient multi-class evaluation needs one class per patient")
            classes = pd.DataFrame({"__class__": image_labels})
            extra = classes if extra is None else pd.concat([extra, classes], axis=1)
            flags = np.zeros(len(image_labels), dtype=bool)
        else:
            flags = image_labels
        table = aggregate_scores(flags, scores, df[patient_column], settings["aggregate"], extra=extra,
                                 group_name="patient")
        patient_labels = table["__class__"].astype(str).to_numpy() if multiclass else table["label"].to_numpy(dtype=bool)
        patient_folds = table[fold_key].to_numpy() if folds is not None else None
        levels["patient"] = LevelData("patient", patient_labels, table[settings["score_columns"]].reset_index(drop=True),
                                      patient_folds, table["n_images"].to_numpy(),
                                      ids=table["group"].astype(str).to_numpy())
    return levels


def check_aggregate(aggregate: str) -> None:
    if aggregate not in AGGREGATIONS:
        raise UserError(f"aggregate: {aggregate!r} is not one of {', '.join(AGGREGATIONS)}")


def readers_table(readers: pd.DataFrame | None, source: str = "readers") -> list[dict]:
    """Reader operating points: name, sensitivity, specificity (proportions), optional level, and
    optional CI limits (sensitivity_lower, sensitivity_upper, specificity_lower,
    specificity_upper: proportions around the point; a limit left empty is not drawn). A point
    without limits gets whiskers from the level's counts on the ROC figure (plots.py)."""
    if readers is None:
        return []
    needed = ["name", "sensitivity", "specificity"]
    missing = [c for c in needed if c not in readers.columns]
    if missing:
        raise UserError(f"{source}: no column {missing[0]!r} (needs name, sensitivity, specificity; optional level)")
    out = []
    for position, record in enumerate(readers.to_dict("records")):
        point = {"name": str(record["name"])}
        for key in ("sensitivity", "specificity"):
            try:
                value = float(record[key])
            except (TypeError, ValueError):
                raise UserError(f"{source}: {key} {record[key]!r} in {_data_row(position)} is not a number") from None
            if not 0 <= value <= 1:
                raise UserError(f"{source}: {key} {value:g} in {_data_row(position)} is not a proportion in [0, 1]")
            point[key] = value
        for key in ("sensitivity", "specificity"):
            for side in ("lower", "upper"):
                name = f"{key}_{side}"
                given = record.get(name)
                if given is None or (isinstance(given, float) and math.isnan(given)):
                    continue
                try:
                    limit = float(given)
                except (TypeError, ValueError):
                    raise UserError(f"{source}: {name} {given!r} in {_data_row(position)} is not a number") from None
                if not 0 <= limit <= 1:
                    raise UserError(f"{source}: {name} {limit:g} in {_data_row(position)} is not a proportion in"
                                    " [0, 1]")
                if (side == "lower" and limit > point[key]) or (side == "upper" and limit < point[key]):
                    raise UserError(f"{source}: {name} {limit:g} in {_data_row(position)} is on the wrong side of"
                                    f" {key} {point[key]:g}")
                point[name] = limit
        level = record.get("level")
        if level is not None and not (isinstance(level, float) and math.isnan(level)):
            if str(level) not in ("image", "patient"):
                raise UserError(f"{source}: level {level!r} in {_data_row(position)} must be image or patient")
            point["level"] = str(level)
        out.append(point)
    return out
