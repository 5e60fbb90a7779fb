"""Frozen-backbone training: tfxray's feature cache vs a plain Keras fit through the backbone.

Same data, backbone, head, optimizer and number of epochs; the cached run includes the time to
compute the features once. Both models then score the same held-out images.

    python benchmarks/frozen_training.py [--backbone resnet50] [--size 128] [--n 240] [--epochs 20]

Prints both times, the held-out AUCs, and as the last line ``ratio: <plain time / cached time>``.
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

    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from tfxray.config import load_recipe
    from tfxray.data.manifest import load_manifest
    from tfxray.data.synth import synthesize
    from tfxray.models.bundle import load_bundle
    from tfxray.scoring.predict import predict_paths
    from tfxray.training.trainer import train

    work = Path(tempfile.mkdtemp(prefix="tfxray-bench-"))
    synthesize(work / "data", n=args.n, seed=0, size=args.size, progress=False)
    manifest = load_manifest(work / "data" / "manifest.csv", classes=["normal", "fracture"])
    results = {}
    for label, cache in (("cached", True), ("plain", False)):
        recipe = load_recipe("demo", [
            (["model", "backbone"], args.backbone), (["model", "weights"], "none"), (["model", "freeze"], "all-but-top"),
            (["data", "input_size"], args.size), (["data", "normalization"], "backbone"),
            (["train", "epochs"], args.epochs), (["train", "batch_size"], 32), (["train", "restore_best"], False),
            (["train", "feature_cache"], cache), (["train", "cache_dir"], str(work / "cache")),
        ])
        start = time.perf_counter()
        train(recipe, manifest, work / label, verbose=0)
        seconds = time.perf_counter() - start
        split = pd.read_csv(work / label / "split.csv")
        test = split[split.split == "test"]
        scores, _ = predict_paths(load_bundle(work / label), test.path.tolist())
        auc = roc_auc_score(test.label == "fracture", scores[:, 0])
        results[label] = (seconds, auc)
        print(f"{label:>7}: {seconds:7.1f} s for {args.epochs} epochs, held-out AUC {auc:.4f}")
    (plain_s, plain_auc), (cached_s, cached_auc) = results["plain"], results["cached"]
    print(f"backbone {args.backbone}, {args.size} px, {len(manifest)} images; AUC difference {abs(plain_auc - cached_auc):.4f}")
    print(f"ratio: {plain_s / cached_s:.2f}")


if __name__ == "__main__":
    main()
