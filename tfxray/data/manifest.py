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

A manifest is user input, checked before pandas sees it: a file over the size cap
(``TFXRAY_MAX_MANIFEST_MB``, default 200 MB), with a NUL byte, or not UTF-8 is refused naming the line;
a row with more fields than the header names its line. A relative path must stay inside the
manifest's folder, after ``..`` and symlinks are followed: a row leading outside is refused (a
manifest shipped with a data set cannot reach ``../../home/...`` or through a planted symlink). An
absolute path is taken as written (tfxray's own split.csv and test.csv hold absolute paths): it is
the user's explicit choice, so a data set kept elsewhere (or behind a symlink) is listed with
absolute paths. A class-per-folder tree follows the same rule. Every bad row is named, at most
``MAX_LISTED_PROBLEMS`` of them, in one line, with quoted values cut to ``SHOWN`` characters.
"""

from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..io import read_text_file

IMAGE_COLUMNS = ("path", "label", "patient_id", "study_id", "series_id", "slice_index", "split", "fold")
BOX_COLUMNS = ("x1", "y1", "x2", "y2")
TEXT_COLUMNS = ("patient_id", "study_id", "series_id", "label")  # ids stay text: "007" is not 7
MAX_LISTED_PROBLEMS = 20
MAX_MANIFEST_MB = 200.0  # default size cap; TFXRAY_MAX_MANIFEST_MB overrides it
MANIFEST_CAP_VARIABLE = "TFXRAY_MAX_MANIFEST_MB"
SHOWN = 60  # characters of a value quoted in an error message
SHOWN_PATH = 200  # characters of a path quoted in an error message
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
        text = _manifest_text(source)
        try:
            header = pd.read_csv(io.StringIO(text), nrows=0).columns
            names = canonical_columns(header, source)
            text_columns = (*TEXT_COLUMNS, "path")  # a path '00012' (a DICOM file) is not the number 12
            table = pd.read_csv(io.StringIO(text), dtype={h: str for h in header if names.get(h, h) in text_columns})
        except pd.errors.EmptyDataError:
            raise UserError(f"{source}: empty file (a manifest needs a header line: path,label,...)") from None
        except (pd.errors.ParserError, ValueError, OverflowError) as exc:
            raise UserError(f"{source}: {_parser_problem(exc)}") from None
        table = table.rename(columns=names)
        base = source.parent
    else:
        raise UserError(f"{source}: no such manifest file or folder")
    return _validate(table, base, source, classes, check_files)


def manifest_cap() -> int:
    """The largest manifest read, in bytes: $TFXRAY_MAX_MANIFEST_MB (megabytes of 10^6 bytes), else
    ``MAX_MANIFEST_MB``."""
    raw = os.environ.get(MANIFEST_CAP_VARIABLE, "").strip()
    if not raw:
        return int(MAX_MANIFEST_MB * 1_000_000)
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = math.nan
    if not math.isfinite(megabytes) or megabytes <= 0:
        raise UserError(f"{MANIFEST_CAP_VARIABLE}={_shown(raw)}: a positive number of megabytes expected")
    return int(megabytes * 1_000_000)


def _manifest_text(source: Path) -> str:
    """The manifest's text, refused in one line when it is over the size cap, holds a NUL byte or is
    not UTF-8 (the line and byte named); a UTF-8 byte-order mark is dropped."""
    cap = manifest_cap()
    return read_text_file(source, cap=cap, over_cap=f"a manifest over {cap:,} bytes ({cap / 1e6:,g} MB) is refused "
                                                    f"(set {MANIFEST_CAP_VARIABLE} to raise the limit)",
                          nul="a manifest is a text CSV, not a binary file", not_utf8="save the manifest as UTF-8 CSV")


def _parser_problem(exc: BaseException) -> str:
    """pandas' complaint about a CSV in one line; a row with too many fields names its line."""
    text = " ".join(str(exc).split())
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if fields:
        expected, line, saw = fields.groups()
        return f"line {line}: {saw} fields, but the header has {expected} (a value holding a comma needs quotes)"
    return f"not a readable CSV ({text[:200]}{'...' if len(text) > 200 else ''})"


def _shown(value, limit: int = SHOWN) -> str:
    """``value`` as an error message quotes it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _cut(value, limit: int = SHOWN) -> str:
    """``str(value)`` cut to ``limit`` characters."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _shown_path(path: str) -> str:
    return _cut(path, SHOWN_PATH)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _resolved(written: list[str], base: Path) -> list[str]:
    """Each path as an absolute path: a relative one against ``base`` (``..`` folded, symlinks kept)."""
    base_abs = os.path.abspath(base)
    return [os.path.abspath(p) if os.path.isabs(p) else os.path.normpath(os.path.join(base_abs, p)) for p in written]


def _escapes(written: list[str], resolved: list[str], base: Path) -> dict[int, str]:
    """{row position: how it leaves} for the relative paths (``written``, as ``_resolved`` made them
    absolute) that lead outside ``base``: by '..', or through a symlink (checked on the real path,
    every symlink on the way followed)."""
    base_abs = os.path.abspath(base)
    base_real = os.path.realpath(base_abs)
    real_parents: dict[str, str] = {}
    escapes = {}
    for i, (path, full) in enumerate(zip(written, resolved)):
        if not path or os.path.isabs(path):
            continue  # no path (reported apart), or the user's explicit choice (module docstring)
        if not _inside(full, base_abs):
            escapes[i] = "through '..'"
            continue
        parent, name = os.path.split(full)
        if parent not in real_parents:
            real_parents[parent] = os.path.realpath(parent)
        real = os.path.join(real_parents[parent], name)
        if os.path.islink(real):
            real = os.path.realpath(real)
        if not _inside(real, base_real):
            escapes[i] = f"through a symlink (to {_shown_path(real)})"
    return escapes


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
        found = ", ".join(map(str, table.columns))
        found = found if len(found) <= SHOWN_PATH else found[:SHOWN_PATH] + "..."
        raise UserError(f"{source}: missing column(s) {', '.join(missing)} (found: {found})")
    table = table.copy()
    folder = source.is_dir()
    empty_path, empty_label = table["path"].isna().to_numpy(), table["label"].isna().to_numpy()
    written = ["" if empty else str(p) for p, empty in zip(table["path"], empty_path)]  # as the manifest has it
    labels = ["" if empty else str(v).strip() for v, empty in zip(table["label"], empty_label)]
    no_path = np.array([not p.strip() for p in written], dtype=bool)
    no_label = np.array([not v for v in labels], dtype=bool)
    table["label"] = labels
    table["path"] = resolved = _resolved(written, base)
    has_boxes = all(c in table.columns for c in BOX_COLUMNS)
    problems: list[str] = []

    def row_name(i: int) -> str:
        if folder:
            return _shown_path(written[i])
        return f"row {i + 2}"  # 1-based, after the header line, as a spreadsheet shows it

    for i in np.flatnonzero(no_path):
        problems.append(f"{row_name(i)}: no path")
    for i in np.flatnonzero(no_label & ~no_path):
        problems.append(f"{row_name(i)}: no label")
    for i, how in _escapes(written, resolved, base).items():
        if folder:
            problems.append(f"{row_name(i)}: leads outside the folder {how}; refused (list the file in a CSV "
                            f"manifest by its absolute path if it is meant)")
        else:
            problems.append(f"{row_name(i)}: path {_shown_path(written[i])} leads outside the manifest's folder "
                            f"{how}; refused (write an absolute path if that file is meant)")
    duplicated = table.duplicated(keep="first")
    for i in np.flatnonzero(duplicated):
        problems.append(f"{row_name(i)}: duplicate of an earlier row ({_shown_path(table['path'].iat[i])})")
    if classes is None:
        classes = sorted(table.loc[~no_label, "label"].unique())
    else:
        unknown = ~table["label"].isin(classes).to_numpy() & ~no_label
        for i in np.flatnonzero(unknown):
            problems.append(f"{row_name(i)}: unknown label {_shown(table['label'].iat[i])} "
                            f"(expected {', '.join(classes)})")
    counts = table.drop_duplicates("path")["label"].value_counts()
    for cls in classes:
        if counts.get(cls, 0) == 0:
            problems.append(f"class {cls!r} has no images")
    if check_files:
        exists = {p: os.path.isfile(p) for p in table["path"].unique()}  # False, never an error, for odd paths
        for i, p in enumerate(table["path"]):
            if not exists[p] and not no_path[i]:
                problems.append(f"{row_name(i)}: file not found: {_shown_path(p)}")
    if has_boxes:
        coords = table[list(BOX_COLUMNS)].apply(pd.to_numeric, errors="coerce")
        given = coords.notna().any(axis=1)
        complete = coords.notna().all(axis=1)
        ordered = (coords.x2 > coords.x1) & (coords.y2 > coords.y1) & (coords >= 0).all(axis=1)
        for i in np.flatnonzero(given & ~(complete & ordered)):
            problems.append(f"{row_name(i)}: bad box {_shown(tuple(table[list(BOX_COLUMNS)].iloc[i]))} "
                            f"(need 0 <= x1 < x2, y1 < y2)")
        if check_files:
            problems.extend(_boxes_outside(table, coords, complete & ordered, exists, row_name))
    if "slice_index" in table.columns:  # the order of slices in a series (CT neighbours)
        position = pd.to_numeric(table["slice_index"], errors="coerce")
        for i in np.flatnonzero(position.isna() & table["slice_index"].notna()):
            problems.append(f"{row_name(i)}: slice_index {_shown(table['slice_index'].iat[i])} is not a number")
        if "series_id" in table.columns:
            slices = table.assign(_position=position).dropna(subset=["series_id", "_position"])
            slices = slices.drop_duplicates("path")
            clash = slices.duplicated(["series_id", "_position"], keep="first")
            for i in slices.index[clash]:
                problems.append(f"{row_name(i)}: series {_cut(table['series_id'].iat[i])} already has a slice "
                                f"{position.iat[i]:g}")
    # The same image must not carry two labels or two patients.
    per_image = table.groupby("path")
    for column in ("label", "patient_id", "split", "fold", "series_id", "slice_index"):
        if column in table.columns:
            conflicting = per_image[column].nunique(dropna=False) > 1
            for path in conflicting[conflicting].index:
                problems.append(f"{_shown_path(path)}: rows disagree on {column}")
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
