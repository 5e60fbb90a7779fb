"""Where the resident memory of scoring hostile files goes: folders of mutated files scored one after
another by one process, resident memory after each, side by side under glibc's default allocator and
with ``MALLOC_ARENA_MAX=2``, and the Python heap's growth (tracemalloc) over the same files.

``fuzz_folder.py`` found ``tfxray score`` over 10,000 hostile files about 10 kB per file larger at the end
than at the start, where 100,000 uniform files stay flat (``large_archive.py``). This tells a leak (growth
that goes on at the same rate, in Python objects or in native memory) from memory the allocator keeps
(growth that slows, and shrinks when the allocator may keep fewer per-thread arenas).

    python benchmarks/hostile_memory.py [--folders 20] [--per-format 250] [--work DIR]

Each folder holds ``4 x per-format`` files (DICOM, PNG, JPEG, TIFF mutations, a new seed per folder).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["RUST_BACKTRACE"] = "0"
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "images"))
sys.path.insert(0, str(HERE))

from fuzz_folder import write_folder  # noqa: E402  benchmarks/fuzz_folder.py
from large_archive import resident_mb  # noqa: E402  benchmarks/large_archive.py


def folders(work: Path, count: int, per_format: int) -> list[Path]:
    out = []
    for seed in range(100, 100 + count):
        folder = work / f"hostile-{per_format}-{seed}"
        if not folder.exists():
            write_folder(folder, per_format, seed)
        out.append(folder)
    return out


def score_all(work: Path, count: int, per_format: int, trace: bool) -> dict:
    """In this process: score each folder into its own CSV; resident MB after each, Python heap growth."""
    import logging
    import warnings

    from tfxray.scoring.batch import score_folder

    warnings.filterwarnings("ignore")
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    resident, heap = [], []
    for i, folder in enumerate(folders(work, count, per_format)):
        out = work / "scores" / f"{os.getpid()}-{i}.csv"
        out.parent.mkdir(exist_ok=True)
        if trace and i == 1:  # after the first folder: start-up and first-use caches are not growth
            tracemalloc.start()
        score_folder(work / "run", folder, out, progress=False, batch_size=32)
        gc.collect()
        resident.append(resident_mb(os.getpid()))
        if trace and i >= 1:  # Python objects only (domain 0): numpy's and TensorFlow's buffers are traced apart
            python_objects = tracemalloc.take_snapshot().filter_traces([tracemalloc.DomainFilter(True, 0)])
            heap.append(sum(stat.size for stat in python_objects.statistics("filename")) / 2 ** 20)
    return {"resident": resident, "heap": heap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folders", type=int, default=20)
    parser.add_argument("--per-format", type=int, default=250)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--child", choices=["plain", "traced"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="tfxray-hostile-memory-"))
    if args.child:
        print(json.dumps(score_all(work, args.folders, args.per_format, args.child == "traced")))
        return

    from scoring import make_bundle  # benchmarks/scoring.py

    work.mkdir(parents=True, exist_ok=True)
    if not (work / "run" / "tfxray.json").exists():
        make_bundle("tiny_cnn", 64, work / "run")
    folders(work, args.folders, args.per_format)  # written once, before any timing or sampling
    files = 4 * args.per_format
    results = {}
    for name, env, mode in (("default allocator", {}, "plain"), ("MALLOC_ARENA_MAX=2", {"MALLOC_ARENA_MAX": "2"},
                                                                  "plain"),
                            ("default, tracemalloc", {}, "traced")):
        command = [sys.executable, __file__, "--child", mode, "--folders", str(args.folders), "--per-format",
                   str(args.per_format), "--work", str(work)]
        done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        resident = results[name]["resident"]
        half = len(resident) // 2
        print(f"{name}: resident MB after each folder of {files} files: {' '.join(f'{mb:.0f}' for mb in resident)}")
        print(f"  first to last {resident[-1] - resident[0]:+.0f} MB over {files * (len(resident) - 1):,} files; "
              f"over the second half ({files * (len(resident) - 1 - half):,} files) {resident[-1] - resident[half]:+.0f}"
              f" MB; peak {max(resident):.0f} MB")
        if results[name]["heap"]:
            heap = results[name]["heap"]
            per_file = (heap[-1] - heap[0]) * 1024 / (files * max(len(heap) - 1, 1))
            print(f"  Python objects (tracemalloc) after folders 2..{len(heap) + 1}: {heap[0]:.1f} -> {heap[-1]:.1f} "
                  f"MB, {per_file:.2f} kB per file")


if __name__ == "__main__":
    main()
