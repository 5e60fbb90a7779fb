"""Scoring whole folders: streaming, one CSV row per file (per frame of a multi-frame file),
resumable and shardable.

Files stream through ``data.inputs.status_dataset`` (read and resize in parallel workers),
the model predicts each batch as one traced graph (split across GPUs under MirroredStrategy,
``devices.py``), and rows reach disk batch by batch, each batch in one ``write`` call followed
by fsync. All rows of a multi-frame file go out in the same write, so a killed run leaves whole
files; a write the disk cannot take whole is cut back to the last whole row and stops the run in one
line (``io.append_whole``): free space and ``--resume``. ``--resume`` skips the paths already in the CSV after cutting the last file's rows (and a
torn line, should the system crash mid-write), so a run killed with ``kill -9`` continues with
no row lost and none duplicated. ``path`` is unique per file; ``(path, frame)`` per row.

One writer per CSV: a run holds an exclusive lock (``<out>.lock``) from its checks to its roll-ups, and a
second run on the same ``--out`` is refused in one line. Shards (``--shard I/N``) each write their own
``--out`` (concatenate them afterwards). Output locations are checked writable before the model loads.

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

from ..data.inputs import ERROR, OK, OUTSIDE, SKIPPED, status_dataset
from ..errors import UserError
from ..evaluation.aggregate import AGGREGATIONS, AGGREGATORS
from ..explain.gradcam import METHODS as GRADCAM_METHODS
from ..images import list_files
from ..io import append_whole, atomic_write_text, check_writable, exclusive_lock, lock_path, sweep_stale_temps
from ..models.bundle import Bundle, load_bundle
from ..models.inference import Predictor, box_fields, call, inputs_for, profile_note, score_columns
from ..progress import progress as progress_bar



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
    detector: bool = False  # a detector's run: boxes.csv beside the scores
    boxes: int = 0  # a detector's boxes written to boxes.csv
    overlays: int = 0  # pictures of them
    replicas: int = 1  # devices the predictions were split across
    reasons: Counter = field(default_factory=Counter)  # error reasons, the file's own path taken out
    outside: Counter = field(default_factory=Counter)  # reasons of the files skipped by the training profile
    profile_note: str = ""  # said once when inputs are not checked against a training profile
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
        if self.boxes or self.overlays:
            out.append(f"boxes: {self.boxes}" + (f"; overlays: {self.overlays}" if self.overlays else ""))
        for reason, count in self.reasons.most_common(10):
            out.append(f"  {count:>6} x {reason}")
        if self.outside:
            out.append(f"skipped outside the model's training profile: {sum(self.outside.values())}"
                       " (--allow-modality scores them anyway)")
            out += [f"  {count:>6} x {reason}" for reason, count in self.outside.most_common(10)]
        if self.profile_note:
            out.append(self.profile_note)
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
    run: str | Path | Bundle,
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
    allow_modality: bool = False,
    overlays_dir: str | Path | None = None,
) -> ScoreSummary:
    """Score every file under ``folder`` into ``out_csv``: one row per file, one per frame of multi-frame files.

    ``run``: a run directory, or its bundle already loaded.

    ``gradcam_dir``: also write a Grad-CAM panel per scored image (only positive calls with
    ``gradcam_only_positives``), computed batch by batch from the decoded images. ``devices``:
    see ``scoring.devices`` (MirroredStrategy on several GPUs). Files outside the model's training
    profile (``data.profile``) are skipped with the reason, unless ``allow_modality``.

    A detector's run also writes ``boxes.csv`` beside ``out_csv`` (``box_path``): one row per predicted
    box in original-image pixels; its image rows score the highest box confidence (0 without a box)
    and call it at the saved cut-off. ``overlays_dir``: a picture per scored image with its boxes.
    """
    folder, out_csv = Path(folder), Path(out_csv)
    _check_options(folder, out_csv, resume=resume, hash_ids=hash_ids, salt=salt, aggregate=aggregate,
                   batch_size=batch_size, gradcam_dir=gradcam_dir, gradcam_method=gradcam_method,
                   overlays_dir=overlays_dir)
    try:
        out_csv.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out_csv}: cannot create its folder ({exc.strerror or exc})") from None
    with exclusive_lock(out_csv, "another tfxray score is writing it", "; shards each write their own --out"):
        if out_csv.exists() and not resume:
            raise UserError(f"{out_csv}: already exists (use --resume to continue it, or choose another --out)")
        sweep_stale_temps(out_csv.parent)  # what a killed run's atomic writes (roll-ups, boxes) left
        return _score_locked(run, folder, out_csv, batch_size=batch_size, resume=resume, shard=shard,
                             hash_ids=hash_ids, salt=salt, aggregate=aggregate, progress=progress,
                             gradcam_dir=gradcam_dir, gradcam_only_positives=gradcam_only_positives,
                             gradcam_method=gradcam_method, devices=devices, allow_modality=allow_modality,
                             overlays_dir=overlays_dir)


def _score_locked(run, folder: Path, out_csv: Path, *, batch_size, resume, shard, hash_ids, salt, aggregate, progress,
                  gradcam_dir, gradcam_only_positives, gradcam_method, devices, allow_modality,
                  overlays_dir) -> ScoreSummary:
    """``score_folder`` once its options are checked and it holds the CSV's lock."""
    bundle, predict = _load_for_scoring(run, devices)
    detector = bundle.meta.is_detection
    if detector and gradcam_dir is not None:
        raise UserError("--gradcam: a detector's evidence is its boxes; use --overlays DIR to draw them")
    if overlays_dir is not None and not detector:
        raise UserError("--overlays: draws a detector's boxes; this run is a classifier (use --gradcam DIR)")
    # refuses CT models (a folder gives no boxes or series); checks each file against the training profile
    builder = inputs_for(bundle, check_profile=not allow_modality)
    writer = _RowWriter(bundle.meta, hash_ids=hash_ids, salt=salt)

    own = _own_outputs(folder, out_csv)
    files = [r for r in list_files(folder) if r not in own and in_shard(r, shard)]
    done = _resume_state(out_csv, writer.header) if resume and out_csv.exists() else set()
    todo = [r for r in files if r not in done]
    summary = ScoreSummary(total=len(files), already_done=len(files) - len(todo), replicas=predict.replicas,
                           profile_note=profile_note(bundle.meta, not allow_modality), detector=detector)
    del files, done  # from here on, the run keeps one short string per file still to score
    panels = _PanelWriter(bundle, Path(gradcam_dir), gradcam_method, gradcam_only_positives) if gradcam_dir else None
    boxes = _BoxWriter(box_path(out_csv), bundle, folder, overlays_dir, resume) if detector else None

    try:
        fd = os.open(out_csv, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        from ..io import write_error

        raise write_error(out_csv, exc) from None
    start = time.perf_counter()
    try:
        if os.fstat(fd).st_size == 0:
            _write_rows(fd, [writer.header], out_csv)
        if boxes is not None:  # boxes of files that never reached the scores CSV (a killed run) go
            boxes.open(keep=set(_paths_in(out_csv)))
        dataset = status_dataset(builder, [os.path.join(folder, r) for r in todo], batch_size, all_frames=True)
        with progress_bar(total=len(todo), unit="file", desc="scoring", disable=not progress) as bar:
            for batch in dataset:
                finished = _score_batch(batch, todo, folder, predict, writer, panels, summary, fd, boxes, out_csv)
                summary.files += finished
                bar.update(finished)
        if writer.pending:  # cannot happen (a file's frames all follow it), but never lose a row
            _write_rows(fd, writer.take_pending(), out_csv)
    finally:
        os.close(fd)
        if boxes is not None:
            boxes.close()
            summary.boxes, summary.overlays = boxes.written, boxes.overlays
    summary.seconds = time.perf_counter() - start
    summary.panels = panels.written if panels else 0
    classes = bundle.meta.classes
    summary.rollups = write_rollups(out_csv, classes, aggregate, bundle.meta.threshold)
    if summary.rollups is None:
        summary.rollup_note = (f"roll-ups: none written (per-study and per-patient roll-ups need a two-class model; "
                               f"this one has {len(classes)} classes)")
    return summary


def _own_outputs(folder: Path, out_csv: Path) -> set[str]:
    """The run's own files (the CSV, its roll-ups, boxes and lock) as ``list_files`` names them, when
    ``--out`` lies inside the scored folder: they are the run's output, never rows of their own."""
    root = folder.resolve()
    own = set()
    for path in (out_csv, rollup_path(out_csv), box_path(out_csv), lock_path(out_csv)):
        try:
            own.add(path.resolve().relative_to(root).as_posix())
        except ValueError:  # outside the folder
            pass
    return own


def _check_options(folder: Path, out_csv: Path, *, resume: bool, hash_ids: bool, salt: str | None, aggregate: str,
                   batch_size: int, gradcam_dir, gradcam_method: str, overlays_dir=None) -> None:
    """Refuse a bad option in one line before any model is loaded: output locations included (writable)."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    check_writable(out_csv, "--out")
    if gradcam_dir is not None:
        check_writable(gradcam_dir, "--gradcam", folder=True)
    if overlays_dir is not None:
        check_writable(overlays_dir, "--overlays", folder=True)
    if hash_ids and not salt:
        raise UserError("--hash-ids needs a salt: --salt TEXT or the TFXRAY_ID_SALT environment variable")
    if aggregate not in AGGREGATIONS:
        raise UserError(f"--aggregate: expected one of {', '.join(AGGREGATIONS)}, got {aggregate!r}")
    if batch_size < 1:
        raise UserError(f"--batch-size: must be at least 1, got {batch_size}")
    if gradcam_dir is not None and gradcam_method not in GRADCAM_METHODS:
        raise UserError(f"--gradcam-method: expected one of {', '.join(GRADCAM_METHODS)}, got {gradcam_method!r}")


def _load_for_scoring(run: str | Path | Bundle, devices):
    """The bundle and its predictor, on one device or mirrored across ``devices``.

    A bundle already loaded is used as it is on one device; mirrored, it is loaded again inside
    the strategy's scope (its variables must live on every replica).
    """
    from .devices import parse_devices, scoring_strategy

    strategy = scoring_strategy(parse_devices(devices))  # before TensorFlow starts: it may split the CPU
    if strategy is None:
        bundle = run if isinstance(run, Bundle) else load_bundle(run)
    else:
        with strategy.scope():
            bundle = load_bundle(run.path if isinstance(run, Bundle) else run)
    if bundle.meta.is_detection:
        if strategy is not None:
            raise UserError("--devices: a detector scores on one device (its box search runs per image)")
        return bundle, _DetectorScores(bundle)
    return bundle, Predictor(bundle.model, strategy)


class _DetectorScores:
    """A detector as the scoring loop sees it: per image, the highest box confidence (0 without a box),
    and the boxes in original-image pixels (``models.inference.image_boxes``)."""

    replicas = 1

    def __init__(self, bundle):
        from ..models.inference import detector_predictor_for, geometry_of

        self.meta = bundle.meta
        self.geometry = geometry_of(bundle)
        self.box_classes = bundle.meta.detection.get("box_classes") or bundle.meta.classes[1:]
        self.predict = detector_predictor_for(bundle.model)

    def __call__(self, images, metas: list[dict]) -> tuple[np.ndarray, list[list[tuple]]]:
        from ..models.inference import image_boxes

        found = self.predict(images)
        boxes = [image_boxes(found, i, int(m.get("rows") or self.geometry.size), int(m.get("cols") or self.geometry.size),
                             self.geometry, self.box_classes) for i, m in enumerate(metas)]
        scores = np.array([[max((b[4] for b in image), default=0.0)] for image in boxes], np.float64).reshape(-1, 1)
        return scores, boxes


def box_path(out_csv: Path) -> Path:
    """A detector's boxes.csv beside the scores CSV (``scores.csv`` -> ``boxes.csv``; ``x.csv`` -> ``x_boxes.csv``)."""
    out_csv = Path(out_csv)
    return out_csv.with_name("boxes.csv" if out_csv.name == "scores.csv" else f"{out_csv.stem}_boxes.csv")


def _paths_in(out_csv: Path):
    """Paths of the rows of a scores CSV (streamed)."""
    with open(out_csv, newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for row in reader:
            if row:
                yield row[0]


class _BoxWriter:
    """boxes.csv: one row per predicted box, ``path, frame, x1, y1, x2, y2, score, class`` in original pixels.

    A batch's boxes are written (and fsynced) before its rows reach the scores CSV, like Grad-CAM panels:
    a killed run may leave boxes of files the scores CSV does not list yet; ``open`` drops them on resume,
    so the two files always agree. Optional overlays: a PNG per scored image with its boxes.
    """

    def __init__(self, path: Path, bundle, folder: Path, overlays_dir, resume: bool):
        from ..models.inference import BOX_COLUMNS_OUT

        if path.exists() and not resume:
            raise UserError(f"{path}: already exists (use --resume to continue it, or choose another --out)")
        self.path, self.folder, self.header = path, folder, BOX_COLUMNS_OUT
        self.cutoff = float(bundle.meta.threshold)
        self.overlays_dir = Path(overlays_dir) if overlays_dir is not None else None
        self.fd = None
        self.written = self.overlays = 0

    def open(self, keep: set[str]) -> None:
        if self.path.exists():  # resume: keep the boxes of files the scores CSV holds, atomically
            table = pd.read_csv(self.path, dtype=str, keep_default_na=False)  # text: rows kept byte for byte
            if list(table.columns) != self.header:
                raise UserError(f"{self.path}: not a boxes CSV of this tfxray version (its columns differ)")
            atomic_write_text(self.path, table[table["path"].isin(keep)].to_csv(index=False))
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            from ..io import write_error

            raise write_error(self.path, exc) from None
        if os.fstat(self.fd).st_size == 0:
            _write_rows(self.fd, [self.header], self.path)

    def write(self, relative: str, frame: int, boxes: list[tuple]) -> None:
        rows = [[relative, frame, *box_fields(*box[:5]), box[5]] for box in boxes]
        if rows:
            _write_rows(self.fd, rows, self.path)
            self.written += len(rows)
        if self.overlays_dir is not None:
            from ..explain.overlays import draw_box_overlay
            from ..explain.panels import panel_name

            predicted = pd.DataFrame([box[:5] for box in boxes], columns=["x1", "y1", "x2", "y2", "score"])
            draw_box_overlay(self.folder / relative, predicted, None,
                             self.overlays_dir / panel_name(relative, frame or None, "boxes"), cutoff=self.cutoff,
                             title=relative, frame=frame)
            self.overlays += 1

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _RowWriter:
    """CSV rows of scored frames; a multi-frame file's rows are held until its last frame arrives."""

    def __init__(self, meta, *, hash_ids: bool, salt: str | None):
        self.meta, self.hash_ids, self.salt = meta, hash_ids, salt
        self.columns = score_columns(meta.classes)
        self.header = ["path", "sop_instance_uid", "patient_id", "study_id", "frame", *self.columns, "call", "status",
                       "error"]
        self.pending: list[list] = []  # rows of the file whose frames are still coming (it spans batches)
        self.left = 0  # frames of that file still to come

    def ids(self, meta: dict) -> tuple:
        patient, study = meta.get("patient_id"), meta.get("study_uid")
        if self.hash_ids:
            patient, study = hash_id(patient, self.salt), hash_id(study, self.salt)
        return meta.get("sop_uid"), patient, study

    def add(self, row: list, frame: int, frames: int) -> bool:
        """Hold ``row``; True when it was its file's last frame (the file's rows can go to disk)."""
        if frame == 0:
            self.left = frames
        self.pending.append(row)
        self.left -= 1
        return self.left <= 0

    def take_pending(self) -> list[list]:
        rows, self.pending = self.pending, []
        return rows


class _PanelWriter:
    """Grad-CAM panels for the scored images of each batch: one gradient computation per batch."""

    def __init__(self, bundle, out_dir: Path, method: str, only_positives: bool):
        self.bundle, self.out_dir, self.method, self.only_positives = bundle, out_dir, method, only_positives
        self.written = 0

    def wanted(self, positive: bool) -> bool:
        return positive or not self.only_positives

    def write(self, images: np.ndarray, scores: np.ndarray, chosen: list[tuple[int, str, int | None]]) -> None:
        """``chosen``: (position among ``images``, relative path, frame or None) of each panel."""
        from ..explain.gradcam import explain_images, panel_name, save_panel

        positions = [position for position, _, _ in chosen]
        heatmaps = explain_images(self.bundle, images[positions], [relative for _, relative, _ in chosen],
                                  scores[positions], method=self.method, frames=[frame for _, _, frame in chosen])
        for heatmap, (_, relative, frame) in zip(heatmaps, chosen):
            save_panel(heatmap, self.out_dir / panel_name(relative, frame, self.method))
        self.written += len(heatmaps)


def _score_batch(batch, todo: list[str], folder: Path, predict, writer: _RowWriter, panels: _PanelWriter | None,
                 summary: ScoreSummary, fd: int, boxes: _BoxWriter | None = None, out_csv: Path | None = None) -> int:
    """Predict one batch of the stream, write the rows of the files it completes; returns how many it completed."""
    index, frame, frames, status, reasons, metas, images = (t.numpy() for t in batch)
    ok = status == OK
    scored = images[ok]
    if boxes is None:
        scores = predict(scored) if len(scored) else None
    elif len(scored):
        scores, found = predict(scored, [json.loads(m) for m in metas[ok]])
        for j, image_boxes in zip(np.flatnonzero(ok), found):  # before the scores rows: see _BoxWriter
            boxes.write(todo[index[j]], int(frame[j]), image_boxes)
    positions = np.cumsum(ok) - 1  # row j's position among the scored images
    classes = writer.meta.classes
    ready, finished, explain = [], 0, []
    for j in range(len(index)):
        relative = todo[index[j]]
        multi_frame = frames[j] > 1 or frame[j] > 0
        if frame[j] == 0 and frames[j] > 1:
            summary.multi_frame_files += 1
        if status[j] == OK:
            value, called = call(writer.meta, scores[positions[j]])
            values = [float(v) for v in scores[positions[j]]]
            positive = called == classes[-1]
            summary.positives += int(positive)
            summary.scored += 1
            row = [relative, *writer.ids(json.loads(metas[j])), int(frame[j]), *[f"{v:.6f}" for v in values],
                   called, "ok", ""]
            if panels is not None and panels.wanted(positive):
                explain.append((positions[j], relative, int(frame[j]) if frames[j] > 1 else None))
        else:
            reason = reasons[j].decode()
            if status[j] == OUTSIDE:
                summary.skipped += 1
                summary.outside[reason] += 1
            elif status[j] == SKIPPED:
                summary.skipped += 1
            else:
                summary.errors += 1
                # decoders often name the file in their message: without it, like errors group
                summary.reasons[reason.replace(os.path.join(folder, relative), "<file>")] += 1
            row = [relative, "", "", "", int(frame[j]) if multi_frame else "", *[""] * len(writer.columns), "",
                   "error" if status[j] == ERROR else "skipped", reason]
        if writer.add(row, int(frame[j]), int(frames[j])):
            ready += writer.take_pending()
            finished += 1
    if explain:  # panels first: a file in the CSV has its panel
        panels.write(scored, scores, explain)
    if ready:
        _write_rows(fd, ready, out_csv)
    return finished


def _write_rows(fd: int, rows: list[list], path: Path | None = None) -> None:
    """Rows as one ``write`` (a regular file takes it whole): whole rows, whole files, or none. A disk that
    cannot take them (full, read-only) leaves the file as it was before this write: a one-line RunError."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    append_whole(fd, buffer.getvalue().encode(), path if path is not None else f"file descriptor {fd}")


def rollup_path(out_csv: Path) -> Path:
    return out_csv.with_name(out_csv.stem + "_rollup.csv")


def write_rollups(out_csv: Path, classes: list[str], how: str, threshold: float) -> Path | None:
    """Per-study and per-patient scores and calls (two-class models) beside the scores CSV."""
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
