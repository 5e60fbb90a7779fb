"""Frozen-backbone training: tfxray's feature cache vs a plain Keras fit through the backbone.

- cached: ``tfxray.training.train`` with ``freeze: all-but-top`` and the feature cache, from the
  manifest (split, decode, feature pass and head training all timed);
- plain: the textbook Keras way: the same classifier (frozen backbone + head, same seed, so the
  same initial head), the training and validation images decoded into memory beforehand (not
  timed: this favours the plain side), and ``model.fit`` on them for the same epochs, batch,
  optimizer and learning rate, the training set shuffled by ``tf.data`` with the same seed.

Both then score the same held-out test images; their AUCs must agree within 0.02. Because the
two fits see the same batches from the same start, their scores agree closely whatever the
backbone's weights (random here: the AUC itself is near chance and only the agreement counts).

    python benchmarks/frozen_training.py [--backbone resnet50] [--size 128] [--n 240] [--epochs 20]

Prints both times, the held-out AUCs and their difference, and as the last line
``ratio: <plain time / cached time>``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--n", type=int, default=240)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()

    import keras
    import numpy as np
    import pandas as pd
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    from tfxray.config import load_recipe
    from tfxray.data.manifest import load_manifest
    from tfxray.data.geometry import ImageGeometry
    from tfxray.data.inputs import load_input
    from tfxray.data.synth import synthesize
    from tfxray.models.bundle import load_bundle
    from tfxray.models.backbones import build_backbone
    from tfxray.models.classifier import build_classifier
    from tfxray.models.inference import predict_paths
    from tfxray.training.trainer import train

    work = Path(tempfile.mkdtemp(prefix="tfxray-bench-"))
    synthesize(work / "data", n=args.n, seed=0, size=args.size, progress=False)
    manifest = load_manifest(work / "data" / "manifest.csv", classes=["normal", "fracture"])
    seed, batch, lr = 0, 32, 1e-3
    # Both sides start from the same random backbone, saved as a weights file (a frozen backbone with
    # weights: none is refused by train(): its head would learn on noise; here only the timing counts).
    keras.utils.set_random_seed(seed)
    weights = work / "backbone.weights.h5"
    build_backbone(args.backbone, (args.size, args.size, 3)).save_weights(weights)
    recipe = load_recipe("demo", [
        (["model", "backbone"], args.backbone), (["model", "weights"], str(weights)),
        (["model", "freeze"], "all-but-top"),
        (["data", "input_size"], args.size), (["data", "normalization"], "backbone"),
        (["train", "epochs"], args.epochs), (["train", "batch_size"], batch), (["train", "lr"], lr),
        (["train", "optimizer"], "adam"), (["train", "seed"], seed), (["train", "restore_best"], False),
        (["train", "feature_cache"], True), (["train", "cache_dir"], str(work / "cache")),
    ])

    start = time.perf_counter()
    train(recipe, manifest, work / "cached", verbose=0)
    cached_s = time.perf_counter() - start
    cached_model = load_bundle(work / "cached").model

    split = pd.read_csv(work / "cached" / "split.csv")
    part = {name: split[split.split == name] for name in ("train", "validation", "test")}
    geometry = ImageGeometry(args.size)

    def arrays(rows):
        x = np.stack([load_input(p, geometry)[0] for p in rows.path])
        return x, (rows.label == "fracture").to_numpy(np.float32)

    (x_train, y_train), (x_val, y_val) = arrays(part["train"]), arrays(part["validation"])
    keras.utils.set_random_seed(seed)
    plain_model = build_classifier(args.backbone, input_size=args.size, weights=str(weights), freeze="all-but-top",
                                   normalization="backbone")
    plain_model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy")
    train_data = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
                  .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True).batch(batch))
    start = time.perf_counter()
    plain_model.fit(train_data, validation_data=(x_val, y_val), epochs=args.epochs, shuffle=False, verbose=0)
    plain_s = time.perf_counter() - start

    test_paths, y_test = part["test"].path.tolist(), (part["test"].label == "fracture").to_numpy()
    x_test = np.stack([load_input(p, geometry)[0] for p in test_paths])
    scores = {"cached": predict_paths(load_bundle(work / "cached"), test_paths)[0][:, 0],
              "plain": plain_model.predict(x_test, batch_size=batch, verbose=0)[:, 0]}
    aucs = {name: roc_auc_score(y_test, s) for name, s in scores.items()}
    for name, seconds in (("cached", cached_s), ("plain", plain_s)):
        print(f"{name:>7}: {seconds:7.1f} s for {args.epochs} epochs, held-out AUC {aucs[name]:.4f}")
    difference = abs(aucs["plain"] - aucs["cached"])
    del cached_model
    print(f"backbone {args.backbone}, {args.size} px, {len(x_train)} training / {len(x_val)} validation / "
          f"{len(test_paths)} test images; AUC difference {difference:.4f} "
          f"({'within' if difference <= 0.02 else 'NOT within'} 0.02), "
          f"max |score difference| {np.abs(scores['plain'] - scores['cached']).max():.2e}")
    print(f"ratio: {plain_s / cached_s:.2f}")


if __name__ == "__main__":
    main()
