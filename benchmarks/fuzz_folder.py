"""A folder of hostile files through the whole commands: ``tfxray score`` and ``tfxray inspect``.

``fuzz_reader.py`` holds ``read_image`` to one-line refusals file by file; this runs the commands a
user runs on an uncleaned export over a folder of mutated files (the same mutations,
``tests/images/fuzz_mutations.py``; DICOM files without a suffix, as PACS exports name them, in
sub-folders of 500), and checks what the issue promises: one row per file, the run finishes, exit
code 1 (0 with ``--allow-errors``), no traceback, memory flat (resident memory sampled every 0.2 s,
printed at a quarter, half, three quarters and the end of the run).

    python benchmarks/fuzz_folder.py [--per-format 2500] [--seed 0] [--work DIR]

Last line: ``problems: N`` (exit 1 when not zero).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["RUST_BACKTRACE"] = "0"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "images"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzz_mutations  # noqa: E402
from large_archive import resident_mb  # noqa: E402  benchmarks/large_archive.py

SUFFIX = {"dicom": "", "png": ".png", "jpeg": ".jpg", "tiff": ".tif"}


def write_folder(folder: Path, per_format: int, seed: int) -> int:
    n = 0
    for kind in fuzz_mutations.FORMATS:
        for index in range(per_format):
            data, _ = fuzz_mutations.hostile_file(kind, seed, index)
            path = folder / kind / f"part-{index // 500:03d}" / f"IM{index:05d}{SUFFIX[kind]}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            n += 1
    return n


def watched(command: list[str], log: Path, limit_mb: float, timeout: float):
    """Run ``command``; returns (exit code, seconds, resident MB samples); killed past ``limit_mb`` or ``timeout``."""
    samples = []
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        while process.poll() is None:
            rss = resident_mb(process.pid)
            if rss is not None:
                samples.append((time.perf_counter() - started, rss))
                if rss > limit_mb:
                    process.kill()
            if time.perf_counter() - started > timeout:
                process.kill()
            time.sleep(0.2)
    return process.wait(), time.perf_counter() - started, samples


def at_fractions(samples, fractions=(0.25, 0.5, 0.75, 1.0)) -> list[float]:
    """Resident memory (MB) when those fractions of the run's time had passed: flat means close values
    once start-up (TensorFlow, the model) is over."""
    if not samples:
        return [float("nan")] * len(fractions)
    end = samples[-1][0]
    return [next(mb for t, mb in samples if t >= f * end) for f in fractions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-format", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--limit-mb", type=float, default=6000, help="kill a command past this resident memory")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    from scoring import make_bundle  # benchmarks/scoring.py

    import pandas as pd

    work = args.work or Path(tempfile.mkdtemp(prefix="tfxray-fuzz-folder-"))
    folder = work / f"fuzzed-{args.per_format}-{args.seed}"
    if not folder.exists():
        n = write_folder(folder, args.per_format, args.seed)
    else:
        n = sum(1 for p in folder.rglob("*") if p.is_file())
    run = work / "run"
    if not (run / "tfxray.json").exists():
        make_bundle("tiny_cnn", 64, run)
    cli = [sys.executable, "-m", "tfxray.cli.main"]
    problems = 0
    print(f"{n} mutated files ({args.per_format} per format, seed {args.seed}) in {folder}")
    for name, command, expected_code, out in (
        ("score", cli + ["score", str(run), str(folder), "--out", str(work / "scores.csv")], 1, work / "scores.csv"),
        ("score --allow-errors", cli + ["score", str(run), str(folder), "--out", str(work / "scores-allow.csv"),
                                        "--allow-errors"], 0, work / "scores-allow.csv"),
        ("inspect", cli + ["inspect", str(folder), "--out", str(work / "audit.csv")], None, work / "audit.csv"),
    ):
        for stale in work.glob(out.stem + "*"):
            stale.unlink()
        code, seconds, samples = watched(command, work / f"{out.stem}.log", args.limit_mb, args.timeout)
        log = (work / f"{out.stem}.log").read_text(errors="replace")
        table = pd.read_csv(out, keep_default_na=False) if out.exists() else pd.DataFrame({"path": []})
        # one row per file, one per frame of a multi-frame file: (path, frame) is unique
        keys = ["path", "frame"] if "frame" in table else ["path"]
        rows, distinct, unique_rows = len(table), table["path"].nunique(), not table.duplicated(keys).any()
        memory = at_fractions(samples)
        peak = max((mb for _, mb in samples), default=float("nan"))
        statuses = table["status"].value_counts().to_dict() if "status" in table else {}
        traceback = "Traceback" in log
        ok = (distinct == n and unique_rows and not traceback
              and (expected_code is None or code == expected_code) and code in (0, 1))
        problems += not ok
        print(f"{name}: exit {code} in {seconds:.0f} s; {rows} rows for {n} files ({distinct} distinct paths, "
              f"{'no' if unique_rows else 'some'} repeated rows); statuses {statuses}; traceback "
              f"{'yes' if traceback else 'no'}; resident memory peak {peak:.0f} MB, at 25/50/75/100% of the run "
              f"{'/'.join(f'{mb:.0f}' for mb in memory)} MB{'' if ok else '  <-- PROBLEM'}")
    print(f"problems: {problems}")
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
