"""Fuzz ``read_image`` with hostile DICOM, PNG, JPEG and TIFF files: nothing but a one-line refusal.

Each file is a valid seed (pydicom's test files, small PNG/JPEG/TIFF made on the fly) with one
to three mutations from ``tests/images/fuzz_mutations.py`` (imported by path, so the suite's fast
fuzz test and this run share one set): truncation, bit flips, element lengths, undefined lengths,
wrong VRs, hostile Rows/Columns/NumberOfFrames/BitsAllocated, pixel data shorter or longer than
declared, compressed fragments cut short, PNG chunks with bad CRCs or absurd IHDR sizes, JPEG SOF
sizes, TIFF tags and IFD loops.

Every read runs in a worker process (fork) with an address-space limit (``--memory-gb``, 3 GiB),
so a runaway allocation shows up as a failure instead of taking the machine down, and a time
limit per file (``--timeout``): a worker past it is killed and the file counted as a hang. A
file read with ``frame=None`` one time in five (whole stack), ``max_size=64`` one in ten.

Outcome of a file:
- ok: pixels came back;
- tfxray error: ``ImageReadError`` / ``NotAnImageError`` with a one-line reason;
- uncaught: any other exception, a reason from the reader's last-resort net ("unexpected ..."),
  or a reason on more than one line;
- hang: past ``--timeout``; crash: the worker died (a signal, the kernel's OOM killer).

Files that end uncaught, hung or crashed are kept in ``--keep`` for a rerun. Prints a table per
format and, as the last line, ``uncaught: N hangs: N crashes: N``; exits 1 when any is not zero.

    python benchmarks/fuzz_reader.py [--per-format 10000] [--seed 0] [--timeout 10] [--workers 1]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one worker, one core; and a small address space
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["RUST_BACKTRACE"] = "0"  # pylibjpeg-rle's panics print a backtrace otherwise

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "images"))  # fuzz_mutations: shared with the suite's fuzz test

import fuzz_mutations  # noqa: E402


# ---------------------------------------------------------------- worker

def _worker(connection, memory_bytes: int) -> None:
    import resource

    fuzz_mutations.limit_memory(memory_bytes / (1 << 30))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # libtiff and the Rust decoders write to stderr directly

    while True:
        task = connection.recv()
        if task is None:
            return
        path, frame, max_size = task
        start = time.perf_counter()
        outcome, detail = fuzz_mutations.read_outcome(path, frame, max_size)
        elapsed = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
        connection.send((outcome, detail, elapsed, peak_mb))


class Worker:
    def __init__(self, context, memory_bytes: int):
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(child, memory_bytes), daemon=True)
        self.process.start()
        child.close()
        self.task = None  # (index, label, path, data) while busy
        self.started = 0.0

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.connection.close()


# ---------------------------------------------------------------- run

def fuzz_format(kind: str, n: int, seed: int, timeout: float, workers: int, memory_bytes: int, keep: Path,
                progress: bool) -> dict:
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("fork")
    pool = [Worker(context, memory_bytes) for _ in range(workers)]
    stats = {"files": 0, "ok": 0, "error": 0, "uncaught": 0, "hang": 0, "crash": 0, "slowest": (0.0, ""),
             "peak_mb": 0.0, "examples": collections.defaultdict(list), "reasons": collections.Counter()}
    scratch = Path(tempfile.mkdtemp(prefix=f"fuzz-{kind}-"))
    next_index, done, started, reported = 0, 0, time.time(), 0

    def record(worker, outcome, detail, elapsed):
        index, label, path, data = worker.task
        stats["files"] += 1
        stats[outcome] += 1
        if elapsed > stats["slowest"][0]:
            stats["slowest"] = (elapsed, label)
        if outcome == "error":
            stats["reasons"][_reason_kind(detail)] += 1
        if outcome in ("uncaught", "hang", "crash"):
            key = detail.split(":")[0] if outcome == "uncaught" else outcome
            stats["examples"][key].append(f"#{index} {label}: {detail}")
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"{kind}-{seed}-{index}.bin").write_bytes(data)
        path.unlink(missing_ok=True)
        worker.task = None

    while done < n:
        for worker in pool:  # hand out work
            if worker.task is None and next_index < n:
                data, label = fuzz_mutations.hostile_file(kind, seed, next_index)
                choice = random.Random(f"{seed}-{kind}-{next_index}-read").random()
                frame = None if choice < 0.2 else 0
                max_size = 64 if 0.2 <= choice < 0.3 else None
                path = scratch / f"{next_index}"
                path.write_bytes(data)
                worker.task = (next_index, label, path, data)
                worker.started = time.perf_counter()
                worker.connection.send((str(path), frame, max_size))
                next_index += 1
        busy = [worker for worker in pool if worker.task is not None]
        deadline = min(worker.started for worker in busy) + timeout
        ready = wait([worker.connection for worker in busy], timeout=max(0.0, deadline - time.perf_counter()))
        for worker in busy:
            if worker.connection in ready:
                try:
                    outcome, detail, elapsed, peak_mb = worker.connection.recv()
                except (EOFError, OSError):  # died mid-file: a signal, the OOM killer
                    worker.process.join()
                    record(worker, "crash", f"worker died (exit code {worker.process.exitcode})",
                           time.perf_counter() - worker.started)
                    pool[pool.index(worker)] = Worker(context, memory_bytes)
                    done += 1
                    continue
                stats["peak_mb"] = max(stats["peak_mb"], peak_mb)
                record(worker, outcome, detail, elapsed)
                done += 1
            elif time.perf_counter() - worker.started > timeout:
                worker.kill()
                record(worker, "hang", f"no answer within {timeout:g} s", timeout)
                pool[pool.index(worker)] = Worker(context, memory_bytes)
                done += 1
        if progress and done >= reported + 1000:
            reported = done // 1000 * 1000
            print(f"  {kind}: {done}/{n} ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
    for worker in pool:
        worker.connection.send(None)
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.kill()
    scratch.rmdir()
    stats["seconds"] = time.time() - started
    return stats


def _reason_kind(reason: str) -> str:
    """A reason without its numbers, for the list of the commonest refusals."""
    import re

    return re.sub(r"(?<![(,])\b\d[\d,.]*\b", "N", reason)[:100]  # not the digits of a tag (0028,0010)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-format", type=int, default=10_000, help="files per format (default 10000)")
    parser.add_argument("--formats", default=",".join(fuzz_mutations.FORMATS), help="comma-separated subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per file before it counts as a hang")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--memory-gb", type=float, default=3.0, help="address-space limit of a worker (GiB)")
    parser.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "fuzz_reader_failures",
                        help="folder for the files that ended uncaught, hung or crashed")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)

    totals = collections.Counter()
    rows = []
    for kind in args.formats.split(","):
        stats = fuzz_format(kind, args.per_format, args.seed, args.timeout, args.workers,
                            int(args.memory_gb * (1 << 30)), args.keep, not args.quiet)
        rows.append((kind, stats))
        for key in ("uncaught", "hang", "crash"):
            totals[key] += stats[key]
        print(f"\n{kind}: {stats['files']} files in {stats['seconds']:.0f} s: ok {stats['ok']}, "
              f"tfxray errors {stats['error']}, uncaught {stats['uncaught']}, hangs {stats['hang']}, "
              f"crashes {stats['crash']}; slowest {stats['slowest'][0]:.2f} s ({stats['slowest'][1]}); "
              f"peak RSS {stats['peak_mb']:.0f} MB")
        for key, examples in stats["examples"].items():
            print(f"  {key}: {len(examples)}, e.g.")
            for example in examples[:3]:
                print(f"    {example}")
        print("  commonest refusals:")
        for reason, count in stats["reasons"].most_common(6):
            if count:
                print(f"    {count:6d}  {reason}")

    print("\n| format | files | ok | tfxray errors | uncaught | hangs | crashes | slowest file (s) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, stats in rows:
        print(f"| {kind} | {stats['files']} | {stats['ok']} | {stats['error']} | {stats['uncaught']} | "
              f"{stats['hang']} | {stats['crash']} | {stats['slowest'][0]:.2f} | {stats['peak_mb']:.0f} |")
    print(f"uncaught: {totals['uncaught']} hangs: {totals['hang']} crashes: {totals['crash']}")
    return 1 if any(totals.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
