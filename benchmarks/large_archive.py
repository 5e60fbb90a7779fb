"""A large archive scored in shards: memory stays flat, throughput stays steady, shards merge exactly.

Writes ``--n`` small PNG radiographs (default 100,000, 32 px, 1,000 per sub-folder, as a PACS export
is split into studies), saves a small classifier (tiny_cnn, random weights: the arithmetic is what
counts), then runs ``tfxray score RUN FOLDER --shard I/N --out shard-I.csv`` as ``--shards``
processes side by side, the way a job array would. While they run it samples every process's
resident memory (``/proc/PID/status`` VmRSS) and the rows written so far. It prints

- per shard: peak resident memory, and the resident memory when a tenth of its files were done
  (flat means the two are close),
- throughput (files/s over all shards) over the first and the last ``--window`` files (counted from
  the first row written, so TensorFlow's start-up is not in the first window),
- whether the shards' CSVs merge to exactly one row per file (the merge a user would do with
  ``tfxray``'s documented recipe: concatenate, keep one header),

and as the last line ``ratio: <last-window throughput / first-window throughput>``.

    python benchmarks/large_archive.py [--n 100000] [--shards 2] [--window 10000] [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def write_archive(folder: Path, n: int, size: int, seed: int = 0) -> list[str]:
    """``n`` gray PNGs (a bright band on noise) under ``folder/study-XXXX/``; returns their relative paths."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    relative = []
    for i in range(n):
        name = f"study-{i // 1000:04d}/im-{i:06d}.png"
        path = folder / name
        if i % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 60, (size, size), dtype=np.uint8)
        pixels[:, size // 3: size // 2] += 150
        Image.fromarray(pixels).save(path, optimize=False, compress_level=1)
        relative.append(name)
    return relative


def resident_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class RowCounter:
    """Rows in a growing CSV, read incrementally (newlines after the header)."""

    def __init__(self, path: Path):
        self.path, self.offset, self.rows = path, 0, -1  # the header is not a row

    def update(self) -> int:
        if self.path.exists():
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
            self.offset += len(chunk)
            self.rows += chunk.count(b"\n")
        return max(self.rows, 0)


def score_in_shards(run: Path, folder: Path, work: Path, shards: int, interval: float = 0.25):
    command = [sys.executable, "-m", "tfxray.cli.main", "score", str(run), str(folder), "--batch-size", "64"]
    processes, counters = [], []
    for i in range(1, shards + 1):
        out = work / f"shard-{i}.csv"
        for stale in (out, out.with_name(out.stem + "_rollup.csv")):
            stale.unlink(missing_ok=True)
        log = open(work / f"shard-{i}.log", "w")
        processes.append(subprocess.Popen(command + ["--shard", f"{i}/{shards}", "--out", str(out)],
                                          stdout=log, stderr=subprocess.STDOUT))
        counters.append(RowCounter(out))
    start = time.perf_counter()
    samples = []  # (seconds, total rows, [rss per shard], [rows per shard])
    while any(p.poll() is None for p in processes):
        rows = [c.update() for c in counters]
        samples.append((time.perf_counter() - start, sum(rows), [resident_mb(p.pid) for p in processes], rows))
        time.sleep(interval)
    rows = [c.update() for c in counters]
    samples.append((time.perf_counter() - start, sum(rows), [None] * shards, rows))
    codes = [p.returncode for p in processes]
    return samples, codes, [work / f"shard-{i}.csv" for i in range(1, shards + 1)]


def time_at(samples, rows: int) -> float:
    """The first sample time at which ``rows`` rows had been written (linear between samples)."""
    previous = (0.0, 0)
    for seconds, total, *_ in samples:
        if total >= rows:
            t0, r0 = previous
            return t0 + (seconds - t0) * (rows - r0) / max(total - r0, 1)
        previous = (seconds, total)
    return samples[-1][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--window", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--work", type=Path, default=None, help="keep the archive here (reused when present)")
    args = parser.parse_args()
    from scoring import make_bundle  # benchmarks/scoring.py

    work = args.work or Path(tempfile.mkdtemp(prefix="tfxray-archive-"))
    work.mkdir(parents=True, exist_ok=True)
    folder = work / f"archive-{args.n}"
    marker = folder / ".complete"
    if not marker.exists():
        started = time.perf_counter()
        files = write_archive(folder, args.n, args.size)
        marker.write_text("\n".join(files))
        print(f"wrote {args.n} PNGs ({args.size} px) in {time.perf_counter() - started:.0f} s")
    files = set(marker.read_text().splitlines())
    run = work / "run"
    if not (run / "tfxray.json").exists():
        make_bundle("tiny_cnn", args.size, run)

    samples, codes, outs = score_in_shards(run, folder, work, args.shards)
    seconds = samples[-1][0]
    print(f"{args.shards} shards: exit codes {codes}; {args.n} files in {seconds:.0f} s "
          f"({args.n / seconds:.0f} files/s over all shards)")
    for i in range(args.shards):
        rss = [(s[3][i], s[2][i]) for s in samples if s[2][i] is not None]
        done = max(r for r, _ in rss) if rss else 0
        early = [m for r, m in rss if r >= done / 10]
        print(f"shard {i + 1}: peak resident memory {max(m for _, m in rss):.0f} MB; "
              f"at a tenth of its files {early[0] if early else float('nan'):.0f} MB; at the end {rss[-1][1]:.0f} MB")
    window = min(args.window, args.n // 2)
    first = window / (time_at(samples, window) - time_at(samples, 1))  # from the first row: start-up apart
    last = window / (time_at(samples, args.n) - time_at(samples, args.n - window))
    print(f"throughput: first {window} files {first:.0f} files/s; last {window} files {last:.0f} files/s")

    seen, duplicates = set(), 0
    for out in outs:
        with open(out, newline="") as handle:
            for row in csv.DictReader(handle):
                duplicates += row["path"] in seen
                seen.add(row["path"])
    missing, extra = len(files - seen), len(seen - files)
    print(f"merge: {len(seen)} distinct paths, {duplicates} duplicate rows, {missing} missing, {extra} unexpected")
    if duplicates or missing or extra or any(codes):
        raise SystemExit(f"shards did not merge to exactly one row per file (exit codes {codes})")
    print(f"ratio: {last / first:.2f}")


if __name__ == "__main__":
    main()
