"""Preflight audit of a folder of images: what is there, what decodes, what would leak.

``audit_folder`` reads every file (the first frame of multi-frame files) through ``read_image``,
so "decodable" means what training and scoring will see. One row per file; with a manifest
(``path``, ``split`` or ``fold``, ``patient_id``), patients with images in more than one split
are flagged. Patient names never enter the table (``read_image`` never reports them); patient
IDs appear as the files and the manifest hold them.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd

from ..errors import UserError
from .base import ImageReadError, NotAnImageError, describe
from .sniff import list_files, sniff

AUDIT_COLUMNS = [
    "path", "kind", "status", "reason", "modality", "photometric", "bits_stored", "transfer_syntax", "rows", "cols",
    "frames", "sop_uid", "study_uid", "patient_id", "duplicate_sop",
]
PROFILE_COLUMN = "outside_profile"  # with a run's profile check: why the file lies outside it ('' inside)
# Decode at most this size: the audit checks decodability, it does not need full-size pixels.
_AUDIT_MAX_SIZE = 1024


def audit_folder(folder, manifest=None, *, progress: bool = False, profile=None) -> pd.DataFrame:
    """One row per file under ``folder``: kind, status (ok | error | skipped), reason and header facts.

    ``manifest``: a CSV path or a DataFrame with ``path``, ``split`` (or ``fold``) and
    ``patient_id`` columns; relative paths resolve against the CSV's folder (against ``folder``
    for a DataFrame). The frame's ``attrs`` hold the manifest facts the rows cannot:
    ``leaking_patients`` (manifest patient IDs in more than one split) and
    ``manifest_missing`` (manifest paths not found under ``folder``).

    ``profile``: a check of a readable file's metadata (``data.profile.ProfileCheck.reason``, a
    callable giving '' inside the model's training profile, else the reason): adds the column
    ``outside_profile``.
    """
    from ..progress import progress as progress_bar

    from .reader import read_image

    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    files = [folder / name for name in list_files(folder)]

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every odd header; the table says what matters
        for path in progress_bar(files, desc="inspect", unit="file", disable=not progress):
            rows.append(_audit_file(path, folder, read_image, profile))
    table = pd.DataFrame(rows, columns=AUDIT_COLUMNS + ([PROFILE_COLUMN] if profile is not None else []))
    for column in ("bits_stored", "rows", "cols", "frames"):
        table[column] = table[column].astype("Int64")

    sop = table["sop_uid"]
    table["duplicate_sop"] = sop.notna() & sop.duplicated(keep=False)
    table.attrs["leaking_patients"], table.attrs["manifest_missing"] = [], []
    if manifest is not None:
        table = _join_manifest(table, folder, manifest)
    return table


def _audit_file(path: Path, folder: Path, read_image, profile=None) -> dict:
    row = dict.fromkeys(AUDIT_COLUMNS)
    row["path"] = path.relative_to(folder).as_posix()
    try:
        image = read_image(path, frame=0, max_size=_AUDIT_MAX_SIZE)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001  the audit reports, it never stops on one file
        return _failed_row(row, path, exc)
    meta = image.meta
    row.update(kind=meta.get("kind"), status="ok", reason="")
    for key in ("modality", "photometric", "bits_stored", "transfer_syntax", "rows", "cols", "frames", "sop_uid",
                "study_uid", "patient_id"):
        row[key] = meta.get(key)
    if profile is not None:
        row[PROFILE_COLUMN] = profile(meta)
    return row


def _failed_row(row: dict, path: Path, exc: Exception) -> dict:
    """A file ``read_image`` refused: its kind (sniffed now: the rare path) and what its header still tells."""
    try:
        kind = sniff(path)
    except OSError as error:
        row.update(kind="unknown", status="error", reason=f"cannot open: {error.strerror or describe(error)}")
        return row
    row["kind"] = kind or "other"
    if not isinstance(exc, ImageReadError):
        row.update(status="error", reason=f"unexpected {describe(exc)}")
        return row
    row.update(status="skipped" if isinstance(exc, NotAnImageError) else "error", reason=exc.reason)
    row.update(_header_facts(path, kind))
    return row


def _header_facts(path: Path, kind: str | None) -> dict:
    """What the header of an unreadable DICOM file still tells (modality, syntax, UIDs)."""
    if kind != "dicom":
        return {}
    try:
        import pydicom

        from .dicom import dicom_meta
        from .sniff import open_regular

        with open_regular(path) as handle:  # never a pipe; no read past the file's end (a bit-flipped length)
            meta = dicom_meta(pydicom.dcmread(handle, force=True, stop_before_pixels=True))
    except Exception:  # noqa: BLE001  nothing more to learn
        return {}
    keys = ("modality", "photometric", "bits_stored", "transfer_syntax", "rows", "cols", "sop_uid", "study_uid",
            "patient_id")
    return {key: meta.get(key) for key in keys}


def _join_manifest(table: pd.DataFrame, folder: Path, manifest) -> pd.DataFrame:
    if isinstance(manifest, pd.DataFrame):
        frame, base, name = manifest.astype(str), folder, "manifest"
    else:
        manifest = Path(manifest)
        if not manifest.is_file():
            raise UserError(f"{manifest}: no such manifest file")
        try:
            frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"{manifest}: not a readable CSV ({describe(exc)})") from None
        base, name = manifest.parent, str(manifest)
    group_column = "split" if "split" in frame.columns else ("fold" if "fold" in frame.columns else None)
    missing = [c for c in ("path", "patient_id") if c not in frame.columns] + ([] if group_column else ["split or fold"])
    if missing:
        raise UserError(f"{name}: missing column(s) {', '.join(missing)} (need path, split or fold, patient_id)")

    frame = frame[["path", group_column, "patient_id"]].rename(columns={group_column: "split"})
    frame["split"] = frame["split"].astype(str).str.strip()
    frame["patient_id"] = frame["patient_id"].astype(str).str.strip()
    frame["key"] = [_resolved(base, p) for p in frame["path"]]

    named = frame[(frame["patient_id"] != "") & (frame["split"] != "")]
    sides = named.groupby("patient_id")["split"].nunique()
    leaking = sorted(sides[sides > 1].index)

    by_key = frame.drop_duplicates("key").set_index("key")
    keys = [_resolved(folder, p) for p in table["path"]]
    table["in_manifest"] = [k in by_key.index for k in keys]
    table["split"] = [by_key.at[k, "split"] if k in by_key.index else None for k in keys]
    table["manifest_patient_id"] = [by_key.at[k, "patient_id"] if k in by_key.index else None for k in keys]
    table["leaking_patient"] = table["manifest_patient_id"].isin(leaking)
    found = set(keys)
    table.attrs["leaking_patients"] = leaking
    table.attrs["manifest_missing"] = sorted(p for p, k in zip(frame["path"], frame["key"]) if k not in found)
    return table


def _resolved(base: Path, path: str) -> str:
    candidate = Path(path)
    return os.path.normpath(os.path.abspath(candidate if candidate.is_absolute() else base / candidate))


def write_audit(table: pd.DataFrame, out) -> Path:
    """Write the table as CSV atomically (a temporary file, then ``os.replace``); a disk that cannot take
    it is a one-line ``RunError`` naming ``out``, with any earlier table left as it was (``io.atomic_path``).
    ``tfxray inspect`` checks ``out`` writable before it reads a file (``io.check_writable``)."""
    from ..io import atomic_path

    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    return Path(out)


def summarize_audit(table: pd.DataFrame, *, top: int = 10) -> list[str]:
    """Lines for the screen: counts by kind, modality, photometric, syntax; failures; duplicates; leaks."""
    lines = []
    status = Counter(table["status"])
    lines.append(f"files: {len(table)} (readable {status.get('ok', 0)}, undecodable {status.get('error', 0)},"
                 f" not images {status.get('skipped', 0)})")
    images = table[table["status"] == "ok"]
    for title, column in (("kind", "kind"), ("modality", "modality"), ("photometric", "photometric"),
                          ("bits stored", "bits_stored"), ("transfer syntax", "transfer_syntax")):
        source = table if column == "kind" else images
        if len(source):
            lines.append(f"by {title}: {_counts(source[column])}")
    if len(images):
        sizes = images["rows"].astype("float") * images["cols"].astype("float")
        if sizes.notna().any():
            smallest = images.loc[sizes.idxmin()]
            largest = images.loc[sizes.idxmax()]
            lines.append(f"image size: {smallest['rows']}x{smallest['cols']} to {largest['rows']}x{largest['cols']}"
                         " (rows x columns)")
    for title, state in (("undecodable", "error"), ("skipped (not images)", "skipped")):
        reasons = Counter(table.loc[table["status"] == state, "reason"])
        if reasons:
            lines.append(f"{title} by reason:")
            lines += [f"  {count:>6}  {reason}" for reason, count in reasons.most_common(top)]
            if len(reasons) > top:
                lines.append(f"  … and {len(reasons) - top} other reasons (see the CSV)")
    if PROFILE_COLUMN in table.columns:
        outside = Counter(r for r in table[PROFILE_COLUMN] if isinstance(r, str) and r)
        lines.append(f"outside the model's training profile (scoring skips them): {sum(outside.values())}")
        lines += [f"  {count:>6}  {reason}" for reason, count in outside.most_common(top)]
        if len(outside) > top:
            lines.append(f"  … and {len(outside) - top} other reasons (see the CSV)")
    duplicates = table[table["duplicate_sop"]]
    if len(duplicates):
        lines.append(f"duplicate SOP instance UIDs: {duplicates['sop_uid'].nunique()} UID(s) shared by"
                     f" {len(duplicates)} files (the same image exported twice?)")
    else:
        lines.append("duplicate SOP instance UIDs: none")
    if "in_manifest" in table.columns:
        leaking = table.attrs.get("leaking_patients", [])
        if leaking:
            shown = ", ".join(map(str, leaking[:top])) + (" …" if len(leaking) > top else "")
            lines.append(f"patients with images in more than one split: {len(leaking)} ({shown})")
        else:
            lines.append("patients with images in more than one split: none")
        missing = table.attrs.get("manifest_missing", [])
        outside = int((~table["in_manifest"]).sum())
        lines.append(f"manifest rows whose file is not under the folder: {len(missing)};"
                     f" files not in the manifest: {outside}")
    return lines


def audit_problems(table: pd.DataFrame) -> int:
    """How many findings should stop a run: undecodable files, duplicate UIDs, leaking patients, and
    (with a run's profile) files outside what the model was trained on."""
    outside = 0
    if PROFILE_COLUMN in table.columns:
        outside = int(sum(isinstance(r, str) and bool(r) for r in table[PROFILE_COLUMN]))
    return (int((table["status"] == "error").sum()) + int(table["duplicate_sop"].sum())
            + len(table.attrs.get("leaking_patients", [])) + outside)


def _counts(values: pd.Series) -> str:
    counts = Counter("-" if pd.isna(v) or v == "" else str(v) for v in values)
    return ", ".join(f"{name} {count}" for name, count in counts.most_common())
