"""Shards back into one table: the parts of ``tfxray score --shard I/N`` merged, checked, rolled up.

Each shard's CSV holds whole rows of the files its hash picked; a study's files are spread over the
shards, so the per-part roll-ups are partial. ``merge_shards`` concatenates the parts (one header),
refuses what would make a wrong table (different columns, a file in two parts, a part another run is
still writing) and writes the roll-ups of the whole export with the run's own classes and threshold.
A detector's ``boxes.csv`` parts are merged the same way.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..io import atomic_path, lock_holder
from .batch import box_path, write_rollups


@dataclass
class MergeSummary:
    out: Path
    parts: int
    rows: int
    files: int
    statuses: dict[str, int] = field(default_factory=dict)
    boxes: Path | None = None
    rollups: Path | None = None

    def lines(self) -> list[str]:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        out = [f"merged {self.parts} part(s): {self.files} file(s), {self.rows} row(s) ({counts}) -> {self.out}"]
        if self.boxes is not None:
            out.append(f"boxes: {self.boxes}")
        out.append(f"roll-ups: {self.rollups}" if self.rollups else
                   "roll-ups: none written (they need a two-class model)")
        return out


def _read_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read it ({getattr(error, 'strerror', None) or error})") from None


def _check_not_locked(path: Path) -> None:
    held = lock_holder(path)
    if held:
        raise UserError(f"{path}: a tfxray score run is still writing it ({held}); merge once every shard has "
                        "finished")


def merge_shards(parts: list[str | Path], out: str | Path, *, classes: list[str], threshold: float,
                 aggregate: str = "max") -> MergeSummary:
    """Merge shard CSVs into ``out`` (atomically), with ``boxes.csv`` parts when every part has one."""
    parts = [Path(p) for p in parts]
    out = Path(out)
    if not parts:
        raise UserError("merge: no part given")
    if len(set(p.resolve() for p in parts)) != len(parts):
        raise UserError("merge: a part is given twice")
    if out.resolve() in {p.resolve() for p in parts}:
        raise UserError(f"--out {out}: is one of the parts; write the merged table elsewhere")
    header = None
    for part in parts:
        if not part.is_file():
            raise UserError(f"{part}: no such file")
        _check_not_locked(part)
        this = _read_header(part)
        if header is None:
            header = this
        elif this != header:
            raise UserError(f"{part}: its columns differ from {parts[0]}'s; parts of one run share their columns")
    if "path" not in header or "status" not in header:
        raise UserError(f"{parts[0]}: not a tfxray score CSV (no path and status columns)")
    path_at, frame_at, status_at = header.index("path"), header.index("frame"), header.index("status")

    owner: dict[tuple[str, str], Path] = {}
    files, statuses, rows = set(), {}, 0
    with atomic_path(out) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as target:
            writer = csv.writer(target, lineterminator="\n")
            writer.writerow(header)
            for part in parts:
                with open(part, newline="", encoding="utf-8") as handle:
                    reader = csv.reader(handle)
                    next(reader)
                    for line, row in enumerate(reader, start=2):
                        if len(row) != len(header):
                            raise UserError(f"{part}, line {line}: {len(row)} fields, the header has {len(header)}"
                                            " (a torn row: rerun that shard with --resume)")
                        key = (row[path_at], row[frame_at])
                        if key in owner:
                            raise UserError(f"{part}, line {line}: {row[path_at]} is also in {owner[key]}; "
                                            "shards of one folder never share a file (same --shard N for all?)")
                        owner[key] = part
                        files.add(row[path_at])
                        statuses[row[status_at]] = statuses.get(row[status_at], 0) + 1
                        rows += 1
                        writer.writerow(row)
    summary = MergeSummary(out=out, parts=len(parts), rows=rows, files=len(files), statuses=statuses)

    box_parts = [box_path(p) for p in parts]
    present = [b.exists() for b in box_parts]
    if any(present) and not all(present):
        missing = [str(b) for b, here in zip(box_parts, present) if not here]
        raise UserError(f"merge: boxes.csv parts missing beside some parts: {', '.join(missing)}")
    if all(present):
        summary.boxes = _concatenate(box_parts, box_path(out))
    summary.rollups = write_rollups(out, classes, aggregate, threshold)
    return summary


def _concatenate(parts: list[Path], out: Path) -> Path:
    header = _read_header(parts[0])
    with atomic_path(out) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as target:
            writer = csv.writer(target, lineterminator="\n")
            writer.writerow(header)
            for part in parts:
                if _read_header(part) != header:
                    raise UserError(f"{part}: its columns differ from {parts[0]}'s")
                with open(part, newline="", encoding="utf-8") as handle:
                    reader = csv.reader(handle)
                    next(reader)
                    writer.writerows(reader)
    return out
