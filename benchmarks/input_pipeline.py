"""Input pipeline: tfxray's tf.data training pipeline vs the legacy ImageDataGenerator.

Same folder of 16-bit PNG phantoms (256 px), resized to 224 px, batch 32, the same random
transforms (rotation 25 degrees, shifts 15%, shear 0.10, zoom 15%, horizontal flip):

- tfxray: ``training_dataset`` (parallel decode, in-memory cache, shuffle, batch, parallel
  seeded augmentation) with the ``online_augmentation`` layer, as ``tfxray train`` runs it;
- legacy: ``ImageDataGenerator.flow_from_dataframe`` on the manifest's paths, the usage a legacy
  user had for a folder of files, iterated as ``fit`` does with its defaults (one worker thread;
  keras.src.legacy.preprocessing.image, no longer public in Keras 3).

Then one training epoch fed by the pipeline vs one fed from tensors already in memory: the same
``tiny_cnn`` (same initial weights) at 128 px, batch 32, epochs interleaved across the feeds so
that other load on a shared machine falls on all of them alike.

    python benchmarks/input_pipeline.py [--n 400] [--epochs 5] [--repeats 3] [--train-epochs 4]

Prints images per second of both (the first epoch, which decodes, and the later ones, which
read tfxray's cache, apart), the epoch-time ratio, and as the last line
``ratio: <pipeline img/s / legacy img/s>`` over all ``--epochs`` epochs, the first included.
Each side runs ``--repeats`` times from scratch (a new pipeline, so tfxray decodes again) and
keeps its fastest repeat, as ``timeit`` does: on a small shared machine the minimum is the
estimate least disturbed by other load (the first repeat also pays TensorFlow's start-up).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TRANSFORMS = dict(rotation=25.0, translate=0.15, zoom=0.15, shear=0.10)


def tfxray_throughput(paths, labels, size, batch, epochs, deterministic=True):
    """Images per second of each epoch through ``training_dataset`` with online augmentation."""
    from tfxray.config import OnlineAugmentConfig
    from tfxray.data.online import online_augmentation
    from tfxray.data.geometry import ImageGeometry
    from tfxray.data.pipeline import training_dataset

    cfg = OnlineAugmentConfig(enabled=True, flip=True, **TRANSFORMS)
    ds = training_dataset(paths, labels, ImageGeometry(size), batch_size=batch, shuffle=True, seed=0,
                          augment=online_augmentation(cfg, 0), deterministic=deterministic)
    rates = []
    for _ in range(epochs):
        start, count = time.perf_counter(), 0
        for x, _ in ds:
            count += int(x.shape[0])
        rates.append(count / (time.perf_counter() - start))
    return rates


def legacy_throughput(frame, size, batch, epochs):
    """Images per second of each epoch through ImageDataGenerator.flow_from_dataframe (same transforms)."""
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    generator = ImageDataGenerator(
        rotation_range=TRANSFORMS["rotation"], width_shift_range=TRANSFORMS["translate"],
        height_shift_range=TRANSFORMS["translate"], shear_range=math.degrees(math.atan(TRANSFORMS["shear"])),
        zoom_range=TRANSFORMS["zoom"], horizontal_flip=True, fill_mode="constant", rescale=1 / 65535,
    )
    flow = generator.flow_from_dataframe(
        frame, x_col="path", y_col="label", target_size=(size, size), color_mode="grayscale",
        class_mode="binary", batch_size=batch, shuffle=True, seed=0, interpolation="bilinear",
    )
    rates, first = [], None
    for _ in range(epochs):
        start, count = time.perf_counter(), 0
        for i in range(len(flow)):
            x, _ = flow[i]
            count += len(x)
            first = x if first is None else first
        flow.on_epoch_end()
        rates.append(count / (time.perf_counter() - start))
    return rates, first


def training_feeds(paths, labels, size, batch, seed=0):
    """name -> (model, fit arguments): the same tiny_cnn (same initial weights) fed four ways."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tfxray.config import OnlineAugmentConfig
    from tfxray.data.online import online_augmentation
    from tfxray.data.geometry import ImageGeometry
    from tfxray.data.inputs import load_input
    from tfxray.data.pipeline import training_dataset
    from tfxray.models.classifier import build_classifier

    geometry = ImageGeometry(size)
    x = np.stack([load_input(p, geometry)[0] for p in paths])  # the in-memory tensors
    y = labels.astype("float32")
    augment = online_augmentation(OnlineAugmentConfig(enabled=True, flip=True, **TRANSFORMS), seed)
    feeds = {
        # the leanest feed: tensors sliced, shuffled and batched by tf.data
        "memory (tensors)": dict(x=tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
                                 .batch(batch).prefetch(tf.data.AUTOTUNE)),
        "memory (fit arrays)": dict(x=x, y=y, batch_size=batch, shuffle=True),  # Keras's own array path
        "pipeline": dict(x=training_dataset(paths, labels, geometry, batch_size=batch, shuffle=True, seed=seed)),
        "pipeline+augment": dict(x=training_dataset(paths, labels, geometry, batch_size=batch, shuffle=True,
                                                    seed=seed, augment=augment)),
    }
    models = {}
    for name in feeds:
        keras.utils.set_random_seed(seed)
        model = build_classifier("tiny_cnn", input_size=size, weights="none", normalization="unit")
        model.compile(optimizer="adam", loss="binary_crossentropy")
        models[name] = model
    return {name: (models[name], feeds[name]) for name in feeds}


def epoch_times(feeds, rounds):
    """Seconds of one epoch per feed, interleaved round by round so that other load on the machine
    falls on every feed alike; round 0 (tracing, the pipeline's first decode) is kept apart.

    The epoch is timed from ``on_epoch_begin`` to ``on_epoch_end``: each ``fit(epochs=1)`` call
    here also pays the teardown of its data iterator after training ends (a stall of about 2 s in
    one call out of two on the development machine, whatever the feed), which a real training
    run pays once, not per epoch.
    """
    import keras

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    times = {name: [] for name in feeds}
    for _ in range(rounds + 1):
        for name, (model, kwargs) in feeds.items():
            clock = EpochClock()
            model.fit(**kwargs, epochs=1, verbose=0, callbacks=[clock])
            times[name].append(clock.seconds)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="number of phantoms")
    parser.add_argument("--size", type=int, default=224, help="input size of the throughput comparison")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the throughput comparison")
    parser.add_argument("--repeats", type=int, default=3, help="fresh runs of each side; the fastest is kept")
    parser.add_argument("--train-size", type=int, default=128, help="input size of the training comparison")
    parser.add_argument("--train-epochs", type=int, default=4, help="measured epochs per feed, after one")
    parser.add_argument("--data", type=Path, help="reuse a folder written by tfxray synth (256 px)")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from tfxray.data.synth import synthesize

    folder = args.data or Path(tempfile.mkdtemp(prefix="tfxray-bench-")) / "data"
    if not (folder / "manifest.csv").is_file():
        synthesize(folder, n=args.n, seed=0, size=256, progress=False)
    frame = pd.read_csv(folder / "manifest.csv").head(args.n)
    frame["path"] = [str(folder / p) for p in frame["path"]]
    paths, labels = frame["path"].tolist(), (frame["label"] == "fracture").to_numpy().astype(int)
    load_before = os.getloadavg()[0]
    print(f"{len(paths)} 16-bit PNGs (256 px) in {folder}; {os.cpu_count()} CPU core(s)")

    def mean_rate(rates):  # images over total time
        return len(rates) / sum(1 / r for r in rates)

    ours_runs, legacy_runs = [], []
    for _ in range(max(args.repeats, 1)):  # interleaved, so load falls on both sides alike
        ours_runs.append(tfxray_throughput(paths, labels, args.size, args.batch, args.epochs))
        legacy_runs.append(legacy_throughput(frame, args.size, args.batch, args.epochs))
    ours = max(ours_runs, key=mean_rate)
    legacy, legacy_batch = max(legacy_runs, key=lambda run: mean_rate(run[0]))
    ours_mean, legacy_mean = mean_rate(ours), mean_rate(legacy)
    print(f"\nthroughput at {args.size} px, batch {args.batch}, {args.epochs} epochs "
          f"(rotation, shift, shear, zoom, flip), fastest of {len(ours_runs)} runs; all runs: "
          f"tfxray {', '.join(f'{mean_rate(r):.0f}' for r in ours_runs)}, "
          f"legacy {', '.join(f'{mean_rate(r[0]):.0f}' for r in legacy_runs)} img/s")
    print(f"  tfxray pipeline       {ours_mean:8.1f} img/s  (epochs: {', '.join(f'{r:.0f}' for r in ours)})")
    print(f"  ImageDataGenerator    {legacy_mean:8.1f} img/s  (epochs: {', '.join(f'{r:.0f}' for r in legacy)})")
    if len(ours) > 1:
        later = (len(ours) - 1) / sum(1 / r for r in ours[1:])
        legacy_later = (len(legacy) - 1) / sum(1 / r for r in legacy[1:])
        print(f"  ratio, first epoch (decoding): {ours[0] / legacy[0]:.2f}; "
              f"later epochs (cached): {later / legacy_later:.2f}")
    levels = len(np.unique(np.rint(legacy_batch * 65535)))
    print(f"  legacy reads the 16-bit PNGs with {levels} distinct gray levels in its first batch "
          f"({'16-bit kept' if levels > 256 else '8-bit'})")

    print(f"\ntraining epoch, tiny_cnn at {args.train_size} px, batch {args.batch}, median of "
          f"{args.train_epochs} interleaved epochs (first epoch: tracing, and the pipeline's decode):")
    times = epoch_times(training_feeds(paths, labels, args.train_size, args.batch), args.train_epochs)
    steady = {name: float(np.median(t[1:])) for name, t in times.items()}
    for name, t in times.items():
        print(f"  {name:<20} first {t[0]:6.2f} s, then {steady[name]:6.2f} s  ({', '.join(f'{v:.2f}' for v in t[1:])})")
    memory = min(steady["memory (tensors)"], steady["memory (fit arrays)"])  # the faster in-memory feed
    print(f"  epoch ratio (in-memory time / pipeline time): {memory / steady['pipeline']:.2f} "
          f"(pipeline with online augmentation: {memory / steady['pipeline+augment']:.2f})")
    print(f"load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"ratio: {ours_mean / legacy_mean:.2f}")


if __name__ == "__main__":
    main()
