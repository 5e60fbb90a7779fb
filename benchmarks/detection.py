"""Detector training: Faster R-CNN fed by tfxray's detection pipeline vs the same model on tensors in memory.

The same ``build_detector("faster_rcnn", ...)`` configuration (one model per feed, all from the same
seed, so the same initial weights), compiled alike (SGD, momentum 0.9), trained for the same
``--steps`` steps per epoch at the same batch on synthetic pelvis phantoms (``synthesize(task="pelvis")``,
boxes on the fractures) fed four ways:

- ``pipeline+augment``: ``data.detection.detection_dataset`` as training uses it (decode in parallel,
  cache, shuffle, repeat, batch, flip p 0.5 + rotation up to 180 degrees moving the boxes, prefetch);
- ``pipeline``: the same without augmentation (for reference);
- ``memory (tensors)``: the images decoded beforehand (``inputs.load_input``, untimed) with
  ``detection_targets``' boxes and classes, fed by ``tf.data.Dataset.from_tensor_slices`` (shuffle,
  repeat, batch, prefetch); no augmentation;
- ``memory (fit arrays)``: the same arrays handed to ``model.fit`` directly (Keras' own array path).

Each round calls ``fit(epochs=1, steps_per_epoch=--steps)`` once per feed (interleaved A, B, C, D, A,
B, ... so that other load on the machine falls on every feed alike); the epoch is timed from
``on_epoch_begin`` to ``on_epoch_end``. Round 0 (tracing the train step, the pipeline's first decode
filling its cache) is reported apart and left out; the median of the ``--repeats`` later rounds counts.
The pipeline's decodes are counted (``load_input`` wrapped): after round 0 they must be 0.

    python benchmarks/detection.py [--backbone tiny_cnn] [--size 128] [--batch 8] [--steps 20]
                                   [--repeats 4] [--no-augment] [--n N]

Then the pipelines alone (iterated with no model: their headroom over the training step). Prints
steps/s and img/s per feed and, as the last line, ``ratio: <pipeline steps/s / in-memory
steps/s>`` (the pipeline with augmentation unless ``--no-augment``; the faster in-memory feed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

AUGMENT = {"flip": 0.5, "rotation": 180.0}  # the femoral-neck recipe's (Mu et al. 2021)


def build_feeds(manifest, geometry, args, decodes):
    """name -> (model, fit arguments): one detector per feed, all with the same initial weights."""
    import keras
    import numpy as np
    import tensorflow as tf

    import tfxray.data.inputs as inputs
    from tfxray.data.detection import detection_dataset, detection_targets
    from tfxray.models.detector import build_detector

    paths, boxes, classes = detection_targets(manifest, geometry)
    x = np.stack([inputs.load_input(p, geometry)[0] for p in paths])  # in memory, untimed
    y = {"boxes": boxes, "classes": classes}

    # count the pipeline's decodes: detection_dataset binds inputs.load_input when it is built
    original = inputs.load_input

    def counting(*a, **k):
        decodes[0] += 1
        return original(*a, **k)

    inputs.load_input = counting
    try:
        def pipeline(augment):
            return detection_dataset(manifest, geometry, batch_size=args.batch, shuffle=True, seed=args.seed,
                                     augment=augment, repeat=True)  # as training builds it

        feeds = {}
        if args.augment:
            feeds["pipeline+augment"] = dict(x=pipeline(AUGMENT), shuffle=False)
        feeds["pipeline"] = dict(x=pipeline(None), shuffle=False)
    finally:
        inputs.load_input = original
    feeds["memory (tensors)"] = dict(
        x=tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=args.seed, reshuffle_each_iteration=True)
        .repeat().batch(args.batch).prefetch(tf.data.AUTOTUNE), shuffle=False)  # shuffled by tf.data
    feeds["memory (fit arrays)"] = dict(x=x, y=y, batch_size=args.batch, shuffle=True)

    options = dict(fpn_filters=args.fpn_filters, head_units=args.head_units, anchor_scale=args.anchor_scale,
                   rpn_samples=args.rpn_samples, roi_samples=args.roi_samples,
                   proposals_train=args.proposals_train, proposals_test=args.proposals_test)
    out = {}
    for name, kwargs in feeds.items():
        keras.utils.set_random_seed(args.seed)
        model = build_detector("faster_rcnn", args.backbone, input_size=args.size, channels=1, num_classes=1,
                               **options)
        model.compile(optimizer=keras.optimizers.SGD(args.lr, momentum=0.9))
        out[name] = (model, kwargs)
    return out, len(paths), int(boxes.shape[1]), int((classes >= 0).sum())


def epoch_times(feeds, rounds, steps, decodes):
    """Seconds of one ``steps``-step epoch per feed per round (round 0 first), interleaved round by round;
    and the pipeline's decode count at the end of each round."""
    import keras

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    times = {name: [] for name in feeds}
    decoded = []
    for r in range(rounds + 1):
        for name, (model, kwargs) in feeds.items():
            clock = EpochClock()
            # initial_epoch/epochs move on with the rounds: the same compiled train function, one epoch each call
            model.fit(**kwargs, initial_epoch=r, epochs=r + 1, steps_per_epoch=steps, verbose=0, callbacks=[clock])
            times[name].append(clock.seconds)
        decoded.append(decodes[0])
    return times, decoded


def pipeline_alone(dataset, batches):
    """Batches per second of the dataset iterated on its own (no model): the pipeline's headroom."""
    iterator = iter(dataset)
    for _ in range(batches):  # warm-up: the iterator's start, shuffle buffer, prefetch
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tiny_cnn")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=4, help="timed rounds after the warm-up round")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                        help="the pipeline side with flip 0.5 + rotation 180 (as training does)")
    parser.add_argument("--n", type=int, default=0, help="phantoms (default: batch x steps, one pass per epoch)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--fpn-filters", type=int, default=32)
    parser.add_argument("--head-units", type=int, default=64)
    parser.add_argument("--anchor-scale", type=float, default=4.0)
    parser.add_argument("--rpn-samples", type=int, default=64)
    parser.add_argument("--roi-samples", type=int, default=32)
    parser.add_argument("--proposals-train", type=int, default=256)
    parser.add_argument("--proposals-test", type=int, default=128)
    args = parser.parse_args()

    import numpy as np

    from tfxray.data.geometry import ImageGeometry
    from tfxray.data.manifest import load_manifest
    from tfxray.data.synth import synthesize

    load_before = os.getloadavg()[0]
    n = args.n or args.batch * args.steps
    work = Path(tempfile.mkdtemp(prefix="tfxray-bench-detection-"))
    synthesize(work / "data", task="pelvis", n=n, seed=args.seed, size=max(256, args.size), progress=False)
    manifest = load_manifest(work / "data" / "manifest.csv", classes=["normal", "fracture"])
    geometry = ImageGeometry(args.size, 1, "pad")

    decodes = [0]
    feeds, images, max_boxes, n_boxes = build_feeds(manifest, geometry, args, decodes)
    times, decoded = epoch_times(feeds, args.repeats, args.steps, decodes)

    print(f"Faster R-CNN + FPN, backbone {args.backbone}, {args.size} px, batch {args.batch}, {args.steps} steps "
          f"per epoch; {images} pelvis phantoms, {n_boxes} boxes (up to {max_boxes} per image); fpn_filters "
          f"{args.fpn_filters}, head_units {args.head_units}, anchor_scale {args.anchor_scale:g}, rpn_samples "
          f"{args.rpn_samples}, roi_samples {args.roi_samples}, proposals {args.proposals_train}/{args.proposals_test}")
    print(f"median of {args.repeats} interleaved epochs after a warm-up epoch (tracing; the pipeline's decode "
          f"and cache fill). The in-memory feeds have no augmentation.")
    steady = {name: float(np.median(t[1:])) for name, t in times.items()}
    for name, t in times.items():
        rate = args.steps / steady[name]
        print(f"  {name:<20} {rate:6.2f} steps/s {rate * args.batch:7.1f} img/s   epoch {steady[name]:6.2f} s "
              f"(warm-up {t[0]:6.2f} s; {', '.join(f'{v:.2f}' for v in t[1:])})")
    print(f"pipeline decodes: {decoded[0]} in the warm-up round, {decoded[-1] - decoded[0]} in the timed rounds")
    for name in [k for k in feeds if k.startswith("pipeline")]:
        rate = pipeline_alone(feeds[name][1]["x"], 5 * args.steps)
        print(f"  {name} on its own (no model): {rate:7.1f} batches/s, {rate * args.batch:7.0f} img/s")
    memory = min(steady["memory (tensors)"], steady["memory (fit arrays)"])  # the faster in-memory feed
    main_side = "pipeline+augment" if args.augment else "pipeline"
    ratio = memory / steady[main_side]  # = pipeline steps/s / in-memory steps/s
    for name in [k for k in feeds if k.startswith("pipeline")]:
        # paired within each round (the feeds of a round share the machine's load of that moment)
        paired = [min(t, a) / p for t, a, p in zip(times["memory (tensors)"][1:], times["memory (fit arrays)"][1:],
                                                   times[name][1:])]
        print(f"{name} / in memory: {memory / steady[name]:.2f} (median steps/s each); per round "
              f"{', '.join(f'{v:.2f}' for v in paired)}, median {float(np.median(paired)):.2f}; against "
              f"tensors alone {steady['memory (tensors)'] / steady[name]:.2f}, fit arrays alone "
              f"{steady['memory (fit arrays)'] / steady[name]:.2f}")
    print(f"load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    shutil.rmtree(work, ignore_errors=True)
    print(f"ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
