"""Scoring whole folders: streaming, one CSV row per file, resumable and shardable.

Rows reach disk batch by batch, each batch in one ``write`` call followed by fsync, so a
killed run leaves only whole rows (a torn last line, should the system crash mid-write,
is cut off on ``--resume``). ``--resume`` skips the paths already in the CSV, so a run
killed with ``kill -9`` continues with no row lost and none duplicated.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..images import sniff
from ..io import atomic_write_text
from ..models.bundle import load_bundle
from .predict import geometry_of, needs_manifest, score_columns

ID_COLUMNS = ("patient_id", "study_id")
AGGREGATES = ("max", "mean", "noisy-or")


@dataclass
class ScoreSummary:
    total: int = 0  # files in this shard
    already_done: int = 0  # rows found in the CSV on --resume
    scored: int = 0
    skipped: int = 0
    errors: int = 0
    positives: int = 0
    reasons: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        rate = self.scored / self.seconds if self.seconds > 0 else 0.0
        out = [
            f"files: {self.total} (already in the CSV: {self.already_done}); scored {self.scored} "
            f"({rate:.1f} files/s), skipped {self.skipped}, errors {self.errors}; positive calls: {self.positives}"
        ]
        for reason, count in self.reasons.most_common(10):
            out.append(f"  {count:>6} x {reason}")
        return out


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``I/N`` with 1 <= I <= N: this machine scores the I-th of N deterministic parts."""
    if not text:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text}: expected I/N, e.g. 1/4") from None
    if not 1 <= index <= count:
        raise UserError(f"--shard {text}: I must be between 1 and N")
    return index, count


def in_shard(relative_path: str, shard: tuple[int, int] | None) -> bool:
    if shard is None:
        return True
    digest = hashlib.sha1(relative_path.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard[1] == shard[0] - 1


def list_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def hash_id(value: str | None, salt: str) -> str | None:
    if value in (None, ""):
        return value
    return hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:16]


def _read_done(out_csv: Path) -> set[str]:
    """Paths already scored; a torn last line (no newline) is cut off first."""
    if not out_csv.is_file() or out_csv.stat().st_size == 0:
        return set()
    data = out_csv.read_bytes()
    if not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(out_csv, "r+b") as handle:
            handle.truncate(keep)
    table = pd.read_csv(out_csv, usecols=["path"], dtype=str, keep_default_na=False)
    return set(table["path"])


def score_folder(
    run_dir: str | Path,
    folder: str | Path,
    out_csv: str | Path,
    *,
    batch_size: int = 32,
    resume: bool = False,
    shard: tuple[int, int] | None = None,
    hash_ids: bool = False,
    salt: str | None = None,
    aggregate: str = "max",
    progress: bool = True,
) -> ScoreSummary:
    from tqdm import tqdm

    folder, out_csv = Path(folder), Path(out_csv)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    if hash_ids and not salt:
        raise UserError("--hash-ids needs a salt: --salt TEXT or the TFXRAY_ID_SALT environment variable")
    if aggregate not in AGGREGATES:
        raise UserError(f"--aggregate: expected one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    if out_csv.exists() and not resume:
        raise UserError(f"{out_csv}: already exists (use --resume to continue it, or choose another --out)")
    bundle = load_bundle(run_dir)
    if needs_manifest(bundle):
        raise UserError(f"{run_dir}: this model reads a region of interest and neighbouring slices, which a folder "
                        "does not give; score it from a manifest: tfxray evaluate RUN_DIR --data MANIFEST")
    classes = bundle.meta.classes
    columns = score_columns(classes)
    header = ["path", "sop_instance_uid", "patient_id", "study_id", "frame", *columns, "call", "status", "error"]

    files = [p for p in list_files(folder) if in_shard(p.relative_to(folder).as_posix(), shard)]
    done = _read_done(out_csv) if resume else set()
    summary = ScoreSummary(total=len(files), already_done=len(done & {p.relative_to(folder).as_posix() for p in files}))
    todo = [p for p in files if p.relative_to(folder).as_posix() not in done]

    out_csv.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_csv, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    start = time.perf_counter()
    try:
        if os.fstat(fd).st_size == 0:
            _write_rows(fd, [header], header_only=True)

        def emit(rows: list[list]) -> None:
            _write_rows(fd, rows)

        def ids(meta: dict) -> tuple:
            patient, study = meta.get("patient_id"), meta.get("study_uid")
            if hash_ids:
                patient, study = hash_id(patient, salt), hash_id(study, salt)
            return meta.get("sop_uid"), patient, study

        images: list[Path] = []
        skipped_rows = []
        for path in todo:
            kind = _kind(path)
            if kind in ("dicom", "png", "jpeg", "tiff"):
                images.append(path)
            else:
                reason = "DICOMDIR (a directory index, not an image)" if kind == "dicomdir" else "not an image file"
                skipped_rows.append([path.relative_to(folder).as_posix(), "", "", "", "", *[""] * len(columns), "", "skipped", reason])
                summary.skipped += 1
        if skipped_rows:
            emit(skipped_rows)

        from ..data.pipeline import inference_dataset

        dataset = inference_dataset([str(p) for p in images], geometry_of(bundle), batch_size)
        threshold = bundle.meta.threshold
        position = 0
        with tqdm(total=len(todo), initial=len(skipped_rows), unit="file", desc="scoring", disable=not progress) as bar:
            for batch_images, messages, metas in dataset:
                scores = np.asarray(bundle.model(batch_images, training=False))
                rows = []
                for j, (message, meta_json) in enumerate(zip(messages.numpy(), metas.numpy())):
                    path = images[position + j]
                    relative = path.relative_to(folder).as_posix()
                    error = message.decode()
                    if error:
                        summary.errors += 1
                        summary.reasons[error] += 1
                        rows.append([relative, "", "", "", "", *[""] * len(columns), "", "error", error])
                        continue
                    meta = json.loads(meta_json)
                    values = [float(scores[j, 0])] if len(columns) == 1 else [float(v) for v in scores[j]]
                    if len(columns) == 1:
                        call = classes[1] if values[0] >= threshold else classes[0]
                    else:
                        call = classes[int(np.argmax(values))]
                    summary.positives += int(call == classes[-1])
                    summary.scored += 1
                    rows.append(
                        [relative, *ids(meta), meta.get("frame", 0), *[f"{v:.6f}" for v in values], call, "ok", ""]
                    )
                position += len(rows)
                emit(rows)
                bar.update(len(rows))
    finally:
        os.close(fd)
    summary.seconds = time.perf_counter() - start
    write_rollups(out_csv, classes, aggregate, bundle.meta.threshold)
    return summary


def _kind(path: Path) -> str | None:
    try:
        return sniff(path)
    except OSError:
        return None


def _write_rows(fd: int, rows: list[list], header_only: bool = False) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    os.write(fd, buffer.getvalue().encode())  # one write per batch: whole rows or none
    os.fsync(fd)


def rollup_path(out_csv: Path) -> Path:
    return out_csv.with_name(out_csv.stem + "_rollup.csv")


def write_rollups(out_csv: Path, classes: list[str], how: str, threshold: float) -> Path | None:
    """Per-study and per-patient scores and calls (two-class models) beside the scores CSV."""
    from ..evaluation.aggregate import AGGREGATORS

    if len(classes) != 2:
        return None
    table = pd.read_csv(out_csv, dtype={"patient_id": str, "study_id": str}, keep_default_na=False)
    table = table[table["status"] == "ok"]
    parts = []
    for level, column in (("study", "study_id"), ("patient", "patient_id")):
        known = table[table[column] != ""]
        if known.empty:
            continue
        scores = AGGREGATORS[how](known["score"].astype(float).reset_index(drop=True), known[column].reset_index(drop=True))
        counts = known.groupby(column).size()
        parts.append(pd.DataFrame({"level": level, "id": scores.index, "n_files": counts.loc[scores.index].to_numpy(),
                                   "score": scores.to_numpy()}))
    columns = ["level", "id", "n_files", "score", "aggregate", "call"]
    rollup = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns[:4])
    rollup["aggregate"] = how
    rollup["call"] = np.where(rollup["score"].astype(float) >= threshold, classes[1], classes[0])
    return atomic_write_text(rollup_path(out_csv), rollup[columns].to_csv(index=False, float_format="%.6f"))
