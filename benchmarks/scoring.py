"""Batch scoring: ``score_folder`` end to end vs ``model.predict`` on the same images already in memory.

A classifier that does realistic work (ResNet50 at 224 px, random weights: the numbers it
gives do not matter, the arithmetic does) is saved as a bundle. Synthetic 16-bit radiographs
(256 px) are written once as PNG and once as DICOM. For each folder:

- ``score_folder``: walk, sniff, decode, resize, predict, write the CSV (and its roll-ups);
  the time of its scoring loop, which includes tracing its predict graph once;
- ``model.predict``: the same images, decoded beforehand into one tensor, same model and batch
  size, timed after a warm-up call (so its graph is already traced), best of ``--repeats`` calls:
  on the development machine (TensorFlow 2.21, Keras 3.15) a call sometimes ends with a stall of
  2-4 s after its last batch, while its data iterator is torn down, which the best call avoids;
- the same in-memory batches through score_folder's own traced predict graph: the compute
  alone, the tightest reference (how much decoding and writing cost on top of predicting);
- a naive loop: ``read_image`` + resize + ``model.predict(x[None])`` one file at a time, on the
  first ``--naive-n`` files.

Then the peak memory growth (resident set, sampled every 20 ms) while scoring ``--memory-files``
small PNGs (64 px) with a small model, and for comparison a tenth of them: flat means both
peaks are close.

    python benchmarks/scoring.py [--n 400] [--backbone resnet50] [--size 224] [--batch 32]

Prints throughputs and, as the last line, ``ratio: <score_folder img/s / model.predict img/s>``
(the smaller of the PNG and DICOM ratios).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_bundle(backbone: str, size: int, out: Path) -> Path:
    from tfxray.models.backbones import get_spec
    from tfxray.models.bundle import BundleMeta, save_bundle
    from tfxray.models.classifier import build_classifier

    model = build_classifier(backbone, input_size=size, weights=None)
    meta = BundleMeta(classes=["normal", "fracture"], input_size=size, channels=1, resize="stretch",
                      backbone=backbone, gradcam_layer=get_spec(backbone).gradcam_layer)
    return save_bundle(model, meta, out)


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".png", ".dcm"))


def compare(run_dir: Path, folder: Path, batch: int, naive_n: int, work: Path, label: str, repeats: int) -> float:
    import numpy as np

    from tfxray.data.inputs import load_input
    from tfxray.models.bundle import load_bundle
    from tfxray.scoring.batch import score_folder
    from tfxray.models.inference import Predictor
    from tfxray.models.inference import geometry_of

    paths = image_files(folder)
    n = len(paths)
    out = work / f"scores-{label}.csv"
    summary = score_folder(run_dir, folder, out, batch_size=batch, progress=False)
    assert summary.scored == n and summary.errors == 0, summary.lines()
    score_rate = n / summary.seconds

    bundle = load_bundle(run_dir)
    geometry = geometry_of(bundle)
    images = np.stack([load_input(str(p), geometry)[0] for p in paths])
    bundle.model.predict(images[:batch], batch_size=batch, verbose=0)  # warm-up: trace the predict graph
    seconds = []
    for _ in range(repeats):  # its best run: a call sometimes ends with a stall of seconds (see the module doc)
        start = time.perf_counter()
        reference = bundle.model.predict(images, batch_size=batch, verbose=0)
        seconds.append(time.perf_counter() - start)
    predict_rate = n / min(seconds)
    graph = Predictor(bundle.model)  # the compute alone: score_folder's traced graph on in-memory batches
    graph(images[:batch])
    start = time.perf_counter()
    for i in range(0, n, batch):
        graph(images[i:i + batch])
    graph_rate = n / (time.perf_counter() - start)

    import pandas as pd

    table = pd.read_csv(out).set_index("path")
    written = table.loc[[p.relative_to(folder).as_posix() for p in paths], "score"].to_numpy()
    agree = float(np.max(np.abs(written - reference[:, 0])))

    start = time.perf_counter()
    for p in paths[:naive_n]:  # what a first script does: one file, one predict call
        bundle.model.predict(load_input(str(p), geometry)[0][None], verbose=0)
    naive_rate = min(naive_n, n) / (time.perf_counter() - start)

    ratio = score_rate / predict_rate
    print(f"{label}: {n} files  score_folder {score_rate:.1f} img/s  model.predict (in memory, best of {repeats}) "
          f"{predict_rate:.1f} img/s ({', '.join(f'{n / t:.1f}' for t in seconds)})  ratio {ratio:.3f}\n"
          f"    in-memory batches through the same traced graph {graph_rate:.1f} img/s: ratio {score_rate / graph_rate:.3f}"
          f"  |  naive loop {naive_rate:.1f} img/s: speedup {score_rate / naive_rate:.1f}x  |  max |CSV - predict| {agree:.1e}")
    return ratio


class PeakRss:
    """Peak resident set size of this process while the block runs, sampled every 20 ms."""

    def __enter__(self):
        import psutil

        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def memory_growth(work: Path, n_files: int, batch: int) -> tuple[float, float]:
    """Peak RSS growth (MB) scoring ``n_files`` 64-px PNGs, and scoring a tenth of them, with tiny_cnn."""
    from tfxray.data.synth import synthesize
    from tfxray.scoring.batch import score_folder

    seeds = work / "seeds"
    synthesize(seeds, n=50, seed=5, fmt="png", size=64, progress=False)
    sources = image_files(seeds)
    run_dir = make_bundle("tiny_cnn", 64, work / "tiny")
    folders = {}
    for count in (n_files // 10, n_files):
        folders[count] = folder = work / f"many-{count}"
        for i in range(count):  # copies: the content does not matter, the number of files does
            target = folder / f"d{i // 500:03d}" / f"IM{i:06d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sources[i % len(sources)], target)
    # a warm-up run: TensorFlow's one-time allocations (runtime, thread pools) are not the loop's
    score_folder(run_dir, seeds, work / "warm.csv", batch_size=batch, progress=False)
    growth = []
    for count, folder in folders.items():
        with PeakRss() as rss:
            summary = score_folder(run_dir, folder, work / f"many-{count}.csv", batch_size=batch, progress=False)
        assert summary.scored == count, summary.lines()
        growth.append(rss.growth_mb)
    return growth[0], growth[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="files per folder")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=224, help="model input size")
    parser.add_argument("--image-size", type=int, default=256, help="synthetic image size")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--naive-n", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3, help="model.predict calls; the fastest counts")
    parser.add_argument("--memory-files", type=int, default=5000)
    args = parser.parse_args()

    from tfxray.data.synth import synthesize

    with tempfile.TemporaryDirectory(prefix="tfxray-bench-scoring-") as tmp:
        work = Path(tmp)
        run_dir = make_bundle(args.backbone, args.size, work / "run")
        ratios = []
        for fmt in ("png", "dicom"):
            folder = work / fmt
            synthesize(folder, n=args.n, seed=7, fmt=fmt, size=args.image_size, progress=False)
            (folder / "manifest.csv").unlink()  # only images: both timings cover the same files
            ratios.append(compare(run_dir, folder, args.batch, args.naive_n, work, fmt, args.repeats))
        if args.memory_files:
            small, full = memory_growth(work, args.memory_files, args.batch)
            print(f"peak RSS growth while scoring {args.memory_files} files: {full:.0f} MB "
                  f"({args.memory_files // 10} files: {small:.0f} MB; goal under 300 MB)")
        print(f"ratio: {min(ratios):.3f}")


if __name__ == "__main__":
    main()
