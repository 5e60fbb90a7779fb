"""The scoring loop keeps no per-file state beyond a path string: memory does not grow with the folder."""

import shutil
import threading
import time
import tracemalloc

import psutil
import pytest

from tfxray.scoring.batch import score_folder


def copies(folder, sources, n):
    for i in range(n):  # copies: only the number of files matters here
        target = folder / f"d{i // 250:02d}" / f"IM{i:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[i % len(sources)], target)
    return folder


def measured(run_dir, folder, out):
    """(scored, peak Python allocations in MB (tracemalloc: numpy arrays included), peak RSS growth in MB)."""
    process = psutil.Process()
    start = peak = process.memory_info().rss
    running = True

    def sample():
        nonlocal peak
        while running:
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.01)

    thread = threading.Thread(target=sample)
    thread.start()
    tracemalloc.start()
    try:
        summary = score_folder(run_dir, folder, out, batch_size=32, progress=False)
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        running = False
        thread.join()
    return summary.scored, traced_peak / 2**20, (max(peak, process.memory_info().rss) - start) / 2**20


def test_memory_does_not_grow_with_the_number_of_files(tiny_run, wrist_png, tmp_path):
    png_dir, manifest = wrist_png
    sources = [png_dir / p for p in manifest.path]
    small = copies(tmp_path / "small", sources, 200)
    large = copies(tmp_path / "large", sources, 2000)
    score_folder(tiny_run, small, tmp_path / "warm.csv", progress=False)  # TensorFlow's one-time allocations

    n_small, traced_small, _ = measured(tiny_run, small, tmp_path / "small.csv")
    n_large, traced_large, rss_large = measured(tiny_run, large, tmp_path / "large.csv")
    assert (n_small, n_large) == (200, 2000)
    # Holding the 2,000 decoded 48-px images would take 2000 * 48 * 48 * 4 bytes = 17.6 MB of numpy
    # arrays (tracemalloc sees them), their metadata dicts about 2 MB: ten times the files, the same peak.
    assert traced_large - traced_small < 1.5, (traced_small, traced_large)
    assert rss_large < 150, rss_large  # TensorFlow's buffers and the batches in flight, not the folder
