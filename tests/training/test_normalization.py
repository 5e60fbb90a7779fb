"""`normalization: dataset`: the saved mean and std are the training split's, never validation's or test's."""

import numpy as np
import pandas as pd
import pytest

from tests.chain_helpers import tiny_recipe
from tfxray.data.manifest import load_manifest
from tfxray.models.bundle import load_bundle


def pixel_stats(paths, size):
    """Mean and (population) std of every pixel of ``paths`` at the model's input size."""
    from tfxray.data.geometry import ImageGeometry
    from tfxray.data.inputs import load_input

    pixels = np.concatenate([load_input(p, ImageGeometry(size, 1, "stretch"))[0].ravel() for p in paths])
    pixels = pixels.astype(np.float64)
    return pixels.mean(), pixels.std()


def training_split_stats_match_the_saved_model(run_dir, size):
    split = pd.read_csv(run_dir / "split.csv")
    pre = load_bundle(run_dir).model.get_layer("preprocessing")
    assert pre.mode == "dataset"
    train_mean, train_std = pixel_stats(split.path[split.split == "train"], size)
    assert (pre.mean, pre.std) == pytest.approx((train_mean, train_std), rel=1e-6)
    # ...and not those of all images, nor of the held-out ones
    for held in (split.path, split.path[split.split != "train"]):
        mean, std = pixel_stats(held, size)
        assert abs(mean - train_mean) > 1e-4 or abs(std - train_std) > 1e-4  # the sets do differ
        assert (pre.mean, pre.std) != pytest.approx((mean, std), rel=1e-6)


def test_dataset_normalization_uses_the_training_split_only(wrist_png, tmp_path):
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**{"data.normalization": "dataset", "data.input_size": 32, "train.epochs": 1,
                            "data.split": [0.5, 0.25, 0.25]})
    train(recipe, load_manifest(folder / "manifest.csv", classes=recipe.classes), tmp_path / "run", verbose=0)
    training_split_stats_match_the_saved_model(tmp_path / "run", 32)
