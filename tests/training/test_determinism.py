"""train.deterministic: two runs with one seed end bit-identical; the switch is on during training only."""

import numpy as np
import pandas as pd
import pytest

from tests.chain_helpers import tiny_recipe
from tfxray.data.manifest import load_manifest
from tfxray.models.bundle import load_bundle

ONLINE = {"augment.online.enabled": True, "augment.online.rotation": 15.0, "augment.online.translate": 0.1,
          "augment.online.zoom": 0.1, "augment.online.flip": True, "augment.online.brightness": 0.1,
          "augment.online.contrast": 0.1}


def op_determinism() -> bool:
    from tensorflow.python.framework import config

    return config.is_op_determinism_enabled()


def spy_on_fit(monkeypatch):
    """Record, for each training phase, whether op determinism was on and whether the features were cached."""
    from tfxray.training import trainer

    seen = []
    original = trainer._fit

    def spy(model, *args, **kwargs):
        seen.append({"deterministic": op_determinism(), "on_features": model.name == "head"})
        return original(model, *args, **kwargs)

    monkeypatch.setattr(trainer, "_fit", spy)
    return seen


def weights(run):
    return load_bundle(run).model.get_weights()


@pytest.mark.parametrize(
    "variant,extra",
    [
        ("online-augmentation", {**ONLINE, "model.freeze": "none"}),  # the full graph, new transforms every epoch
        ("feature-cache", {"model.freeze": "all-but-top", "train.feature_cache": True}),  # the head on cached features
    ],
)
def test_same_seed_runs_are_bit_identical(variant, extra, wrist_png, tmp_path, monkeypatch):
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    manifest = load_manifest(folder / "manifest.csv", classes=["normal", "fracture"])
    seen = spy_on_fit(monkeypatch)
    assert not op_determinism()
    histories, runs = [], []
    for attempt in ("a", "b"):
        # each run computes its own features: the cache must not make the second run trivially equal
        recipe = tiny_recipe(**{"train.deterministic": True, "train.epochs": 2, "data.input_size": 32, "train.seed": 7,
                                "train.cache_dir": str(tmp_path / f"cache-{attempt}"), **extra})
        runs.append(tmp_path / attempt)
        histories.append(train(recipe, manifest, runs[-1], verbose=0).history)
        assert not op_determinism()  # put back when the training ended
    assert [s["deterministic"] for s in seen] == [True, True]
    assert [s["on_features"] for s in seen] == [variant == "feature-cache"] * 2
    pd.testing.assert_frame_equal(histories[0], histories[1], check_exact=True)
    first, second = weights(runs[0]), weights(runs[1])
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)  # bit-identical, not merely close
    trained = [not np.array_equal(a, b) for a, b in zip(first, weights_of_untrained()) if a.ndim == 4]
    assert all(trained) if variant == "online-augmentation" else not any(trained)  # convolutions trained / frozen

    # control: another seed gives other weights, so the comparison above can fail
    recipe = tiny_recipe(**{"train.deterministic": True, "train.epochs": 2, "data.input_size": 32, "train.seed": 8,
                            "train.cache_dir": str(tmp_path / "cache-c"), **extra})
    train(recipe, manifest, tmp_path / "c", verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(first, weights(tmp_path / "c")))


def weights_of_untrained():
    import keras

    from tfxray.models.classifier import build_classifier

    keras.utils.set_random_seed(7)
    return build_classifier("tiny_cnn", input_size=32, weights=None, normalization="per_image").get_weights()


def test_determinism_left_on_by_someone_else_stays_on(wrist_png, tmp_path):
    """training_settings only undoes what it did."""
    from tensorflow.python.framework import config

    from tfxray.training.distribute import training_settings

    config.enable_op_determinism()
    try:
        with training_settings("float32", deterministic=True):
            assert op_determinism()
        assert op_determinism()
    finally:
        config.disable_op_determinism()
    with training_settings("float32", deterministic=False):
        assert not op_determinism()
