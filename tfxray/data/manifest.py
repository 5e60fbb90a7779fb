"""Manifests: one table of images and one of boxes, validated all at once.

A data set is a folder with one sub-folder per class, or a CSV manifest with columns
path, label and optionally patient_id, study_id, series_id, slice_index, x1, y1, x2, y2,
split, fold. Relative paths resolve against the CSV's folder. An image may appear on
several rows, one per box; an identical duplicate row is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError

IMAGE_COLUMNS = ("path", "label", "patient_id", "study_id", "series_id", "slice_index", "split", "fold")
BOX_COLUMNS = ("x1", "y1", "x2", "y2")
MAX_LISTED_PROBLEMS = 20


@dataclass
class Manifest:
    images: pd.DataFrame  # one row per image: path (absolute), label, patient_id, study_id, ...
    boxes: pd.DataFrame  # one row per box: path, x1, y1, x2, y2 (pixels of the original image)
    classes: list[str]
    source: Path

    def __len__(self) -> int:
        return len(self.images)

    def label_index(self) -> np.ndarray:
        return self.images["label"].map({c: i for i, c in enumerate(self.classes)}).to_numpy(np.int64)

    def subset(self, mask) -> Manifest:
        images = self.images[np.asarray(mask)].reset_index(drop=True)
        boxes = self.boxes[self.boxes["path"].isin(images["path"])].reset_index(drop=True)
        return Manifest(images, boxes, self.classes, self.source)

    def table(self) -> pd.DataFrame:
        """The manifest as a CSV holds it: one row per box, one row for an image without a box."""
        return self.images.merge(self.boxes, on="path", how="left")

    def boxes_for(self, path: str) -> np.ndarray:
        return self.boxes.loc[self.boxes["path"] == path, list(BOX_COLUMNS)].to_numpy(np.float32)


def load_manifest(source: str | Path, classes: list[str] | None = None, check_files: bool = True) -> Manifest:
    """Read a CSV manifest or a class-per-folder tree; report every bad row in one error."""
    source = Path(source)
    if source.is_dir():
        table = _table_from_folders(source)
        base = source
    elif source.is_file():
        try:
            table = pd.read_csv(source, dtype={"patient_id": str, "study_id": str, "series_id": str, "label": str})
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise UserError(f"{source}: not a readable CSV ({str(exc).splitlines()[0]})") from None
        base = source.parent
    else:
        raise UserError(f"{source}: no such manifest file or folder")
    return _validate(table, base, source, classes, check_files)


def _table_from_folders(folder: Path) -> pd.DataFrame:
    rows = [
        {"path": str(p.relative_to(folder)), "label": sub.name}
        for sub in sorted(p for p in folder.iterdir() if p.is_dir())
        for p in sorted(sub.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]
    if not rows:
        raise UserError(f"{folder}: no class sub-folders with files")
    return pd.DataFrame(rows)


def _validate(table: pd.DataFrame, base: Path, source: Path, classes: list[str] | None, check_files: bool) -> Manifest:
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise UserError(f"{source}: missing column(s) {', '.join(missing)} (found: {', '.join(table.columns)})")
    table = table.copy()
    table["label"] = table["label"].astype(str).str.strip()
    table["path"] = [str(p if Path(p).is_absolute() else (base / p)) for p in table["path"].astype(str)]
    has_boxes = all(c in table.columns for c in BOX_COLUMNS)
    problems: list[str] = []

    def row_name(i: int) -> str:
        return f"row {i + 2}"  # 1-based, after the header line, as a spreadsheet shows it

    duplicated = table.duplicated(keep="first")
    for i in np.flatnonzero(duplicated):
        problems.append(f"{row_name(i)}: duplicate of an earlier row ({table['path'].iat[i]})")
    if classes is None:
        classes = sorted(table["label"].unique())
    else:
        unknown = ~table["label"].isin(classes)
        for i in np.flatnonzero(unknown):
            problems.append(f"{row_name(i)}: unknown label {table['label'].iat[i]!r} (expected {', '.join(classes)})")
    counts = table.drop_duplicates("path")["label"].value_counts()
    for cls in classes:
        if counts.get(cls, 0) == 0:
            problems.append(f"class {cls!r} has no images")
    if check_files:
        exists = {p: Path(p).is_file() for p in table["path"].unique()}
        for i, p in enumerate(table["path"]):
            if not exists[p]:
                problems.append(f"{row_name(i)}: file not found: {p}")
    if has_boxes:
        coords = table[list(BOX_COLUMNS)].apply(pd.to_numeric, errors="coerce")
        given = coords.notna().any(axis=1)
        complete = coords.notna().all(axis=1)
        ordered = (coords.x2 > coords.x1) & (coords.y2 > coords.y1) & (coords >= 0).all(axis=1)
        for i in np.flatnonzero(given & ~(complete & ordered)):
            problems.append(f"{row_name(i)}: bad box {tuple(table[list(BOX_COLUMNS)].iloc[i])} (need 0 <= x1 < x2, y1 < y2)")
    if "slice_index" in table.columns:  # the order of slices in a series (CT neighbours)
        position = pd.to_numeric(table["slice_index"], errors="coerce")
        for i in np.flatnonzero(position.isna() & table["slice_index"].notna()):
            problems.append(f"{row_name(i)}: slice_index {table['slice_index'].iat[i]!r} is not a number")
        if "series_id" in table.columns:
            slices = table.assign(_position=position).dropna(subset=["series_id", "_position"])
            slices = slices.drop_duplicates("path")
            clash = slices.duplicated(["series_id", "_position"], keep="first")
            for i in slices.index[clash]:
                problems.append(f"{row_name(i)}: series {table['series_id'].iat[i]} already has a slice "
                                f"{position.iat[i]:g}")
    # The same image must not carry two labels or two patients.
    per_image = table.groupby("path")
    for column in ("label", "patient_id", "split", "fold", "series_id", "slice_index"):
        if column in table.columns:
            conflicting = per_image[column].nunique(dropna=False) > 1
            for path in conflicting[conflicting].index:
                problems.append(f"{path}: rows disagree on {column}")
    if problems:
        shown = problems[:MAX_LISTED_PROBLEMS]
        more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise UserError(f"{source}: {len(problems)} problem(s): " + "; ".join(shown) + more)

    image_columns = [c for c in IMAGE_COLUMNS if c in table.columns]
    images = table[image_columns].drop_duplicates("path").reset_index(drop=True)
    if "patient_id" not in images.columns:  # without patients, each image is its own group
        images["patient_id"] = [f"image-{i}" for i in range(len(images))]
    images["patient_id"] = images["patient_id"].fillna("").astype(str)
    images.loc[images["patient_id"] == "", "patient_id"] = [
        f"image-{i}" for i in np.flatnonzero(images["patient_id"] == "")
    ]
    if has_boxes:
        boxes = table.loc[table[list(BOX_COLUMNS)].notna().all(axis=1), ["path", *BOX_COLUMNS]]
        boxes = boxes.astype({c: np.float32 for c in BOX_COLUMNS}).reset_index(drop=True)
    else:
        boxes = pd.DataFrame({c: pd.Series(dtype=np.float32 if c != "path" else object) for c in ("path", *BOX_COLUMNS)})
    return Manifest(images=images, boxes=boxes, classes=list(classes), source=source)
