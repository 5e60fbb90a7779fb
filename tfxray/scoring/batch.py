"""Scoring whole folders: streaming, one CSV row per file (per frame of a multi-frame file),
resumable and shardable.

Files stream through ``stream.frame_dataset`` (sniff, decode and resize in parallel workers),
the model predicts each batch as one traced graph (split across GPUs under MirroredStrategy,
``devices.py``), and rows reach disk batch by batch, each batch in one ``write`` call followed
by fsync. All rows of a multi-frame file go out in the same write, so a killed run leaves whole
files. ``--resume`` skips the paths already in the CSV after cutting the last file's rows (and a
torn line, should the system crash mid-write), so a run killed with ``kill -9`` continues with
no row lost and none duplicated. ``path`` is unique per file; ``(path, frame)`` per row.

Memory stays flat: per file the run keeps its relative path (a short string) and nothing else;
images live only in the decode workers and the few batches in flight.
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
from ..io import atomic_write_text
from ..models.bundle import load_bundle
from .predict import geometry_of, needs_manifest, score_columns

ID_COLUMNS = ("patient_id", "study_id")
AGGREGATES = ("max", "mean", "noisy-or")


@dataclass
class ScoreSummary:
    total: int = 0  # files in this shard
    already_done: int = 0  # files found in the CSV on --resume
    files: int = 0  # files handled by this run
    scored: int = 0  # rows scored: one per image, one per frame of a multi-frame file
    multi_frame_files: int = 0
    skipped: int = 0
    errors: int = 0
    positives: int = 0
    panels: int = 0  # Grad-CAM panels written
    replicas: int = 1  # devices the predictions were split across
    reasons: Counter = field(default_factory=Counter)  # error reasons, the file's own path taken out
    seconds: float = 0.0
    rollups: Path | None = None  # the roll-up CSV, None when none was written
    rollup_note: str = ""  # why there is none, told to the user

    def lines(self) -> list[str]:
        rate = self.scored / self.seconds if self.seconds > 0 else 0.0
        frames = f" from {self.multi_frame_files} multi-frame file(s)" if self.multi_frame_files else ""
        out = [
            f"files: {self.total} (already in the CSV: {self.already_done}); scored {self.scored} image(s){frames} "
            f"({rate:.1f}/s), skipped {self.skipped}, errors {self.errors}; positive calls: {self.positives}"
        ]
        if self.replicas > 1:
            out.append(f"predictions split across {self.replicas} devices (MirroredStrategy)")
        if self.panels:
            out.append(f"Grad-CAM panels: {self.panels}")
        for reason, count in self.reasons.most_common(10):
            out.append(f"  {count:>6} x {reason}")
        if self.rollup_note:
            out.append(self.rollup_note)
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


def relative_files(folder: Path) -> list[str]:
    """Paths (relative, '/'-separated) of every file under ``folder``, sorted; hidden names left out.

    Strings, not Path objects: a few dozen bytes per file, which is all the run keeps per file.
    """
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        prefix = os.path.relpath(root, folder).replace(os.sep, "/")
        prefix = "" if prefix == "." else prefix + "/"
        found.extend(prefix + n for n in names if not n.startswith("."))
    return sorted(found)


def hash_id(value: str | None, salt: str) -> str | None:
    if value in (None, ""):
        return value
    return hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:16]


def _resume_state(out_csv: Path, header: list[str]) -> set[str]:
    """Paths already in the CSV, after cutting its tail back to the start of the last file's rows.

    Rows reach the file a batch per ``write``, all rows of a file (every frame) in the same write,
    so a ``kill -9`` leaves whole files. A crash of the machine may still tear the last write
    anywhere; rather than proving the last file's rows complete, they are cut (with any torn
    line) and that one file is scored again. Read as a stream: memory holds the set of paths only.
    """
    if not out_csv.is_file() or out_csv.stat().st_size == 0:
        return set()
    done: set[str] = set()
    header_end = keep = 0  # byte offsets: end of the header; where the last file's rows start
    last_path, record, record_start, offset = None, b"", 0, 0
    with open(out_csv, "rb") as handle:
        for line in handle:
            if not record:
                record_start = offset
            record += line
            offset += len(line)
            if not line.endswith(b"\n") or record.count(b'"') % 2:
                continue  # torn, or a quoted field that goes on over the next line
            fields = record[:-1].decode("utf-8", "replace").split(",") if b'"' not in record \
                else next(csv.reader(io.StringIO(record.decode("utf-8", "replace"))))
            record = b""
            if not header_end:
                if fields != header:
                    raise UserError(f"{out_csv}: not a scores CSV of this model and tfxray version (its columns "
                                    "differ); choose another --out")
                header_end = keep = offset
                continue
            if fields[0] != last_path:
                last_path, keep = fields[0], record_start
                done.add(last_path)
    if not header_end:  # not even a whole header: start the file again
        keep = 0
    done.discard(last_path)
    if keep < out_csv.stat().st_size:
        with open(out_csv, "r+b") as handle:
            handle.truncate(keep)
    return done


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
    gradcam_dir: str | Path | None = None,
    gradcam_only_positives: bool = False,
    gradcam_method: str = "gradcam",
    devices: list[str] | str | None = None,
) -> ScoreSummary:
    """Score every file under ``folder`` into ``out_csv``: one row per file, one per frame of multi-frame files.

    ``gradcam_dir``: also write a Grad-CAM panel per scored image (only positive calls with
    ``gradcam_only_positives``), computed batch by batch from the decoded images. ``devices``:
    see ``scoring.devices`` (MirroredStrategy on several GPUs).
    """
    from tqdm import tqdm

    from .devices import Predictor, parse_devices, scoring_strategy
    from .stream import ERROR, OK, SKIPPED, frame_dataset

    folder, out_csv = Path(folder), Path(out_csv)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    if hash_ids and not salt:
        raise UserError("--hash-ids needs a salt: --salt TEXT or the TFXRAY_ID_SALT environment variable")
    if aggregate not in AGGREGATES:
        raise UserError(f"--aggregate: expected one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    if out_csv.exists() and not resume:
        raise UserError(f"{out_csv}: already exists (use --resume to continue it, or choose another --out)")
    if batch_size < 1:
        raise UserError(f"--batch-size: must be at least 1, got {batch_size}")
    if gradcam_dir is not None and gradcam_method not in ("gradcam", "gradcam++"):
        raise UserError(f"--gradcam-method: expected gradcam or gradcam++, got {gradcam_method!r}")
    strategy = scoring_strategy(parse_devices(devices))  # before TensorFlow starts: it may split the CPU
    if strategy is not None:
        with strategy.scope():
            bundle = load_bundle(run_dir)
    else:
        bundle = load_bundle(run_dir)
    if needs_manifest(bundle):
        raise UserError(f"{run_dir}: this model reads a region of interest and neighbouring slices, which a folder "
                        "does not give; score it from a manifest: tfxray evaluate RUN_DIR --data MANIFEST")
    predict = Predictor(bundle.model, strategy)
    classes = bundle.meta.classes
    columns = score_columns(classes)
    header = ["path", "sop_instance_uid", "patient_id", "study_id", "frame", *columns, "call", "status", "error"]
    blank_scores = [""] * len(columns)

    files = [r for r in relative_files(folder) if in_shard(r, shard)]
    done = _resume_state(out_csv, header) if resume and out_csv.exists() else set()
    todo = [r for r in files if r not in done]
    summary = ScoreSummary(total=len(files), already_done=len(files) - len(todo), replicas=predict.replicas)
    del files, done  # from here on, the run keeps one short string per file still to score
    gradcam_dir = Path(gradcam_dir) if gradcam_dir is not None else None

    out_csv.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_csv, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    start = time.perf_counter()
    threshold = bundle.meta.threshold
    try:
        if os.fstat(fd).st_size == 0:
            _write_rows(fd, [header])

        def ids(meta: dict) -> tuple:
            patient, study = meta.get("patient_id"), meta.get("study_uid")
            if hash_ids:
                patient, study = hash_id(patient, salt), hash_id(study, salt)
            return meta.get("sop_uid"), patient, study

        dataset = frame_dataset([os.path.join(folder, r) for r in todo], geometry_of(bundle), batch_size)
        pending: list[list] = []  # rows of the file whose frames are still coming (it spans batches)
        pending_left = 0
        with tqdm(total=len(todo), unit="file", desc="scoring", disable=not progress) as bar:
            for index, frame, frames, status, reasons, metas, images in dataset:
                index, frame, frames, status = index.numpy(), frame.numpy(), frames.numpy(), status.numpy()
                reasons, metas = reasons.numpy(), metas.numpy()
                ok = status == OK
                scores = None
                if ok.any():
                    scores = predict(images if ok.all() else tf_boolean_mask(images, ok))
                positions = np.cumsum(ok) - 1  # row j's position among the scored images
                ready, finished = [], 0
                explain = []  # (position, relative path, frame or None) of the panels to draw
                for j in range(len(index)):
                    relative = todo[index[j]]
                    if frame[j] == 0:
                        pending_left = int(frames[j])
                        if frames[j] > 1:
                            summary.multi_frame_files += 1
                    frame_text = int(frame[j]) if (status[j] == OK or frames[j] > 1 or frame[j] > 0) else ""
                    if status[j] != OK:
                        reason = reasons[j].decode()
                        if status[j] == SKIPPED:
                            summary.skipped += 1
                        else:
                            summary.errors += 1
                            # decoders often name the file in their message: without it, like errors group
                            summary.reasons[reason.replace(os.path.join(folder, relative), "<file>")] += 1
                        label = "skipped" if status[j] == SKIPPED else "error"
                        pending.append([relative, "", "", "", frame_text, *blank_scores, "", label, reason])
                    else:
                        meta = json.loads(metas[j])
                        values = [float(v) for v in scores[positions[j]]]
                        if len(columns) == 1:
                            call = classes[1] if values[0] >= threshold else classes[0]
                        else:
                            call = classes[int(np.argmax(values))]
                        positive = call == classes[-1]
                        summary.positives += int(positive)
                        summary.scored += 1
                        pending.append([relative, *ids(meta), frame_text, *[f"{v:.6f}" for v in values], call, "ok", ""])
                        if gradcam_dir is not None and (positive or not gradcam_only_positives):
                            explain.append((positions[j], relative, int(frame[j]) if frames[j] > 1 else None))
                    pending_left -= 1
                    if pending_left <= 0:  # the file's last frame: its rows can go to disk
                        ready += pending
                        pending = []
                        finished += 1
                if explain:  # panels first: a file in the CSV has its panel
                    summary.panels += _write_panels(bundle, images, ok, scores, explain, gradcam_dir, gradcam_method)
                if ready:
                    _write_rows(fd, ready)
                summary.files += finished
                bar.update(finished)
        if pending:  # cannot happen (a file's frames all follow it), but never lose a row
            _write_rows(fd, pending)
    finally:
        os.close(fd)
    summary.seconds = time.perf_counter() - start
    summary.rollups = write_rollups(out_csv, classes, aggregate, bundle.meta.threshold)
    if summary.rollups is None:
        summary.rollup_note = (f"roll-ups: none written (per-study and per-patient roll-ups need a two-class model; "
                               f"this one has {len(classes)} classes)")
    return summary


def tf_boolean_mask(images, mask: np.ndarray):
    import tensorflow as tf

    return tf.boolean_mask(images, mask)


def _write_panels(bundle, images, ok: np.ndarray, scores: np.ndarray, explain: list, out_dir: Path, method: str) -> int:
    """Grad-CAM panels for some scored images of a batch: one gradient computation for all of them."""
    from ..explain.gradcam import explain_images, panel_name, save_panel

    chosen = [position for position, _, _ in explain]
    scored_images = np.asarray(images)[ok]
    heatmaps = explain_images(bundle, scored_images[chosen], [relative for _, relative, _ in explain],
                              scores[chosen], method=method, frames=[frame for _, _, frame in explain])
    for heatmap, (_, relative, frame) in zip(heatmaps, explain):
        save_panel(heatmap, out_dir / panel_name(relative, frame, method))
    return len(heatmaps)


def _write_rows(fd: int, rows: list[list]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    data = buffer.getvalue().encode()
    while data:  # one write per batch (a regular file takes it whole): whole rows, whole files, or none
        data = data[os.write(fd, data):]
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
