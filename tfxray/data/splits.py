"""Patient-grouped, label-stratified splits: no patient ever sits on two sides.

The unit kept whole is the manifest's ``patient_id``; without a patient column, its
``study_id``; without either, the image (``group_unit``). The split table records it in its
``group_by`` column.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import UserError

SPLITS = ("train", "validation", "test")
GROUP_COLUMNS = ("patient_id", "study_id")  # in order of preference; then the image itself
GROUP_COLUMN = "group_by"  # the split table's record of the unit
UNIT_WORDS = {"patient_id": ("patient", "patients"), "study_id": ("study", "studies"), "image": ("image", "images")}


def group_unit(images: pd.DataFrame) -> str:
    """What a split keeps on one side: 'patient_id' when the manifest names patients, else
    'study_id' when it names studies, else 'image'."""
    for column in GROUP_COLUMNS:
        if column in images.columns and images[column].notna().any():
            return column
    return "image"


def group_keys(images: pd.DataFrame) -> pd.Series:
    """The group of each image: its patient (or study) id; an image without one is a group of its own."""
    unit = group_unit(images)
    paths = "image:" + images["path"].astype(str)
    if unit == "image":
        return paths
    values = images[unit]
    named = values.notna() & (values.astype(str).str.strip() != "")
    return values.astype(str).where(named, paths)


def grouping_note(images: pd.DataFrame, source=None) -> str:
    """One line saying which unit the split keeps whole, and why when it is not the patient."""
    unit = group_unit(images)
    where = f" in {source}" if source else ""
    if unit == "patient_id":
        return "split grouped by patient_id: no patient on two sides"
    if unit == "study_id":
        return (f"no patient column (patient_id){where}: the split is grouped by study_id, so one patient's "
                f"studies may fall on different sides")
    return (f"no patient column (patient_id) or study_id{where}: the split is grouped by image, so one patient's "
            f"images may fall on different sides")


def _grouped_folds(images: pd.DataFrame, n_splits: int, seed: int) -> np.ndarray:
    """Fold index per image from scikit-learn's StratifiedGroupKFold (groups: ``group_keys``)."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups = group_keys(images)
    n_groups = groups.nunique()
    if n_groups < n_splits:
        word = UNIT_WORDS[group_unit(images)]
        raise UserError(f"split: {n_groups} {word[1]} cannot fill {n_splits} {word[0]}-grouped folds")
    folds = np.full(len(images), -1, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class rarer than n_splits is handled, just less evenly
        warnings.simplefilter("ignore", UserWarning)
        for k, (_, held) in enumerate(splitter.split(images, images["label"], groups=groups)):
            folds[held] = k
    return folds


def kfold_assignments(images: pd.DataFrame, k: int, seed: int = 0) -> np.ndarray:
    """Fold number 0..k-1 for each image, stratified by label and grouped by patient."""
    return _grouped_folds(images, k, seed)


def holdout_assignments(images: pd.DataFrame, ratios=(0.8, 0.1, 0.1), seed: int = 0) -> np.ndarray:
    """'train' / 'validation' / 'test' for each image, in the given proportions of patients.

    The patients are cut into 20 stratified groups (fewer when there are fewer patients)
    and whole groups go to each side, so proportions are met to within 1/20.
    """
    n_patients = group_keys(images).nunique()
    n_groups = int(min(20, n_patients))
    counts = np.floor(np.asarray(ratios) * n_groups + 0.5).astype(int)
    for side in (1, 2):  # a requested side keeps at least one group
        if ratios[side] > 0 and counts[side] == 0:
            counts[side] = 1
    counts[0] = n_groups - counts[1] - counts[2]
    if counts[0] < 1:
        word = UNIT_WORDS[group_unit(images)][1]
        raise UserError(f"split: {n_patients} {word} are too few for a {list(ratios)} split")
    folds = _grouped_folds(images, n_groups, seed)
    side_of_fold = np.repeat(np.arange(3), counts)
    return np.asarray(SPLITS, dtype=object)[side_of_fold[folds]]


def leaking_patients(images: pd.DataFrame, column: str) -> list[str]:
    """Patients (or studies: ``group_keys``) whose images fall on more than one side of ``column`` (split or fold)."""
    sides = images[column].groupby(group_keys(images).to_numpy()).nunique()
    return sorted(sides[sides > 1].index.astype(str))


def check_user_split(images: pd.DataFrame, column: str, allow_leaks: bool = False) -> None:
    """Refuse a given split/fold column that puts one patient on two sides (or warn if allowed)."""
    if column == "split":
        bad = sorted(set(images["split"].dropna().astype(str)) - set(SPLITS))
        if bad:
            raise UserError(f"manifest split column: unknown value(s) {bad} (expected {', '.join(SPLITS)})")
    leaks = leaking_patients(images, column)
    if leaks:
        listed = ", ".join(leaks[:20]) + (f" and {len(leaks) - 20} more" if len(leaks) > 20 else "")
        word = UNIT_WORDS[group_unit(images)][0]
        message = f"manifest {column} column puts {len(leaks)} {word}(s) on more than one side: {listed}"
        if not allow_leaks:
            raise UserError(message + " (use --allow-leaks to accept this)")
        warnings.warn(message, stacklevel=2)


# Columns that name things: read back as text, so "007" stays "007" and "1.10" stays "1.10".
TEXT_COLUMNS = ("path", "label", "patient_id", "study_id", "series_id", "split", GROUP_COLUMN)


def assign_splits(images: pd.DataFrame, ratios=(0.8, 0.1, 0.1), seed: int = 0,
                  allow_leaks: bool = False) -> pd.DataFrame:
    """The split table: every column of the manifest's image table, with ``split`` set and the
    unit kept whole in ``group_by`` (``group_unit``).

    The manifest's own split column (checked for leaks) when every image has one, else a
    patient-grouped holdout split in ``ratios``. Series, slice positions and folds travel with
    the images, so a resumed run rebuilds its inputs (CT neighbours included) from ``split.csv``
    and the manifest's box table.
    """
    if "split" in images.columns and images["split"].notna().all():
        check_user_split(images, "split", allow_leaks=allow_leaks)
        split = images["split"].astype(str).to_numpy()
    else:
        split = holdout_assignments(images, tuple(ratios), seed=seed)
    table = images.reset_index(drop=True).copy()
    table["split"] = split
    table[GROUP_COLUMN] = group_unit(images)
    return table


def read_split_table(path) -> pd.DataFrame:
    """A split or fold table read back (``split.csv``, cross-validation's ``folds.csv``), its text columns as text."""
    return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS})  # absent columns are ignored
