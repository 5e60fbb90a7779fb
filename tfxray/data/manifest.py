"""Manifests: one table of images and one of boxes, validated all at once.

A data set is a folder with one sub-folder per class, or a CSV manifest with columns
path, label and optionally patient_id, study_id, series_id, slice_index, x1, y1, x2, y2,
split, fold. Relative paths resolve against the CSV's folder. An image may appear on
several rows, one per box; an identical duplicate row is an error. A box is (x1, y1, x2, y2) in
the original image's pixels with 0 <= x1 < x2 and 0 <= y1 < y2; when files are checked, also
x2 <= columns and y2 <= rows of the image (read from its header, no pixels decoded).

Headers are matched without regard to case or separators (``PatientID``, ``Patient ID``,
``patient-id`` are ``patient_id``), and the usual other names of the id columns are read as
them (``COLUMN_ALIASES``: ``patient``, ``subject_id``, ``StudyInstanceUID``...). A header one
typing slip from a column tfxray reads (``patinet_id``) is refused with the column it nearly
names, so a misspelt patient column never turns a patient-grouped split into an image-grouped one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError

IMAGE_COLUMNS = ("path", "label", "patient_id", "study_id", "series_id", "slice_index", "split", "fold")
BOX_COLUMNS = ("x1", "y1", "x2", "y2")
TEXT_COLUMNS = ("patient_id", "study_id", "series_id", "label")  # ids stay text: "007" is not 7
MAX_LISTED_PROBLEMS = 20
# Other names of the id columns (normalised: lower case, letters and digits only)
COLUMN_ALIASES = {
    "patient": "patient_id", "patientnumber": "patient_id", "patientno": "patient_id", "subject": "patient_id",
    "subjectid": "patient_id",
    "study": "study_id", "studyuid": "study_id", "studyinstanceuid": "study_id", "accessionnumber": "study_id",
    "series": "series_id", "seriesuid": "series_id", "seriesinstanceuid": "series_id",
    "slice": "slice_index",
}


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

    @property
    def group_by(self) -> str:
        """The unit splits keep on one side: patient_id, else study_id, else image."""
        from .splits import group_unit

        return group_unit(self.images)

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
            header = pd.read_csv(source, nrows=0).columns
            names = canonical_columns(header, source)
            table = pd.read_csv(source, dtype={h: str for h in header if names.get(h, h) in TEXT_COLUMNS})
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise UserError(f"{source}: not a readable CSV ({str(exc).splitlines()[0]})") from None
        table = table.rename(columns=names)
        base = source.parent
    else:
        raise UserError(f"{source}: no such manifest file or folder")
    return _validate(table, base, source, classes, check_files)


def _normalised(name) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    previous2, previous = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb))
            if previous2 is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], previous2[j - 2] + 1)
        previous2, previous = previous, row
    return previous[-1]


def canonical_columns(header, source) -> dict[str, str]:
    """{header: column tfxray reads} for the headers that name one, however spelt; see the module docstring.

    A header that is exactly a column's name wins over a spelling of it, and a spelling over an
    alias; two headers naming one column at the same rank are refused, as is a header one slip
    (an edit, or two in a long name) from a column the manifest lacks.
    """
    known = IMAGE_COLUMNS + BOX_COLUMNS
    spelt = {_normalised(c): c for c in known}
    ranked: dict[str, list[tuple[int, str]]] = {}
    for name in header:
        key = _normalised(name)
        if name in known:
            column, rank = name, 0
        elif key in spelt:
            column, rank = spelt[key], 1
        else:
            column, rank = COLUMN_ALIASES.get(key), 2
        if column is not None:
            ranked.setdefault(column, []).append((rank, name))
    names = {}
    for column, candidates in ranked.items():
        best = min(rank for rank, _ in candidates)
        chosen = [name for rank, name in candidates if rank == best]
        if len(chosen) > 1:
            raise UserError(f"{source}: columns {', '.join(map(repr, chosen))} all name {column}; keep one")
        names[chosen[0]] = column
    for name in header:
        if name in names or _normalised(name) in spelt or _normalised(name) in COLUMN_ALIASES:
            continue
        key = _normalised(name)
        for target in [*spelt, *COLUMN_ALIASES]:
            column = spelt.get(target) or COLUMN_ALIASES[target]
            near = len(target) >= 4 and _edit_distance(key, target) <= (2 if len(target) >= 9 else 1)
            if near and column not in ranked:
                raise UserError(f"{source}: column {name!r} is not one tfxray reads (did you mean {column!r}?); "
                                f"rename it")
    return names


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


def _boxes_outside(table: pd.DataFrame, coords: pd.DataFrame, well_formed: pd.Series, exists: dict, row_name
                   ) -> list[str]:
    """A problem per well-formed box that reaches past its image (x2 > cols or y2 > rows), from each file's header.

    Headers only (``profile.header_meta``: no pixels decoded), one read per image. A file whose
    header cannot be read is left to the decoder, which reports it with its reason.
    """
    from .profile import header_meta

    sizes: dict[str, tuple[int, int] | None] = {}
    problems = []
    for i in np.flatnonzero(well_formed.to_numpy()):
        path = table["path"].iat[i]
        if not exists.get(path):
            continue
        if path not in sizes:
            try:
                meta = header_meta(path)
                sizes[path] = (int(meta["rows"]), int(meta["cols"])) if meta.get("rows") and meta.get("cols") else None
            except Exception:  # noqa: BLE001  not readable as an image here: the decoder says why
                sizes[path] = None
        if sizes[path] is None:
            continue
        rows, cols = sizes[path]
        x1, y1, x2, y2 = coords.iloc[i]
        if x2 > cols or y2 > rows:
            problems.append(f"{row_name(i)}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) outside the image "
                            f"({cols} x {rows} px: need x2 <= {cols}, y2 <= {rows})")
    return problems


def _validate(table: pd.DataFrame, base: Path, source: Path, classes: list[str] | None, check_files: bool) -> Manifest:
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise UserError(f"{source}: missing column(s) {', '.join(missing)} (found: {', '.join(table.columns)})")
    table = table.copy()
    table["label"] = table["label"].astype(str).str.strip()
    table["path"] = [os.path.abspath(p if Path(p).is_absolute() else (base / p)) for p in table["path"].astype(str)]
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
        if check_files:
            problems.extend(_boxes_outside(table, coords, complete & ordered, exists, row_name))
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
    # Without a patient column splits group by study, else by image (data.splits.group_unit); an
    # image left without a patient in a patient column is its own patient.
    for column in ("patient_id", "study_id"):  # an empty column names nothing
        if column in images.columns and (images[column].fillna("").astype(str).str.strip() == "").all():
            images = images.drop(columns=column)
    if "patient_id" in images.columns:
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
