"""class_balance: balanced with the feature cache: the head's batches draw the classes equally."""

import numpy as np
import pandas as pd
import pytest

tf = pytest.importorskip("tensorflow")

from tests.chain_helpers import tiny_recipe  # noqa: E402
from tfxray.data.manifest import load_manifest  # noqa: E402
from tfxray.errors import UserError  # noqa: E402
from tfxray.training.features import feature_dataset  # noqa: E402


def imbalanced(n_minority=10, n_majority=90, dim=4):
    labels = np.r_[np.ones(n_minority), np.zeros(n_majority)].astype(np.float32)
    features = np.arange(len(labels) * dim, dtype=np.float32).reshape(len(labels), dim)  # row i starts at i * dim
    return features, labels


def drawn(ds, batches):
    x, y = [], []
    for batch in ds.take(batches):
        x.append(batch[0].numpy())
        y.append(batch[1].numpy())
    return np.concatenate(x), np.concatenate(y)


def test_balanced_feature_batches_draw_each_class_equally_and_follow_the_seed():
    features, labels = imbalanced()
    ds = feature_dataset(features, labels, None, 20, seed=3, shuffle=True, balanced=True)
    x, y = drawn(ds, 100)  # 2000 draws; 10% of the rows are positive
    # each draw a fair coin between the classes: 1000 +- 22 (one sd) positives
    assert abs(y.sum() - 1000) < 100
    rows = (x[:, 0] // features.shape[1]).astype(int)
    assert np.array_equal(labels[rows], y)  # features and labels stay paired
    assert set(rows[y == 1]) == set(range(10))  # the minority repeats, every one of its rows used
    assert len(set(rows[y == 0])) > 80  # the majority is sampled, not cut to the minority's size
    again = drawn(feature_dataset(features, labels, None, 20, seed=3, shuffle=True, balanced=True), 100)
    other = drawn(feature_dataset(features, labels, None, 20, seed=4, shuffle=True, balanced=True), 100)
    assert np.array_equal(again[0], x) and np.array_equal(again[1], y)
    assert not np.array_equal(other[0], x)


def test_unbalanced_feature_batches_are_one_shuffled_pass_and_weights_ride_along():
    features, labels = imbalanced()
    weights = np.linspace(0.5, 1.5, len(labels)).astype(np.float32)
    batches = list(feature_dataset(features, labels, weights, 32, seed=0, shuffle=True))
    assert [len(b[0]) for b in batches] == [32, 32, 32, 4]  # one pass, then the epoch ends
    x = np.concatenate([b[0].numpy() for b in batches])
    rows = (x[:, 0] // features.shape[1]).astype(int)
    assert sorted(rows) == list(range(100)) and rows.tolist() != list(range(100))
    np.testing.assert_array_equal(np.concatenate([b[2].numpy() for b in batches]), weights[rows])
    with pytest.raises(UserError, match="at least two classes"):
        feature_dataset(features, np.zeros_like(labels), None, 8, seed=0, shuffle=True, balanced=True)


def test_a_frozen_run_with_balanced_classes_trains_the_head_on_balanced_features(wrist_png, tmp_path, monkeypatch):
    from tfxray.training import features, trainer

    folder, _ = wrist_png
    recipe = tiny_recipe(**{"model.freeze": "all-but-top", "train.epochs": 2, "data.input_size": 32,
                            "data.class_balance": "balanced", "train.cache_dir": str(tmp_path / "cache")})
    manifest = load_manifest(folder / "manifest.csv", classes=recipe.classes)
    made, fits = [], []
    original_dataset, original_fit = features.feature_dataset, trainer._fit

    def record_dataset(*args, **kwargs):
        made.append(kwargs)
        return original_dataset(*args, **kwargs)

    def record_fit(model, *args, **kwargs):
        fits.append({"model": model.name, "steps_per_epoch": args[8] if len(args) > 8 else kwargs.get("steps_per_epoch")})
        return original_fit(model, *args, **kwargs)

    monkeypatch.setattr(features, "feature_dataset", record_dataset)
    monkeypatch.setattr(trainer, "_fit", record_fit)
    result = trainer.train(recipe, manifest, tmp_path / "run", verbose=0)
    assert made[0]["balanced"] and made[0]["shuffle"]  # the training side's dataset
    assert not made[1].get("balanced")  # validation stays as it is
    n_train = int((pd.read_csv(tmp_path / "run" / "split.csv").split == "train").sum())
    assert fits == [{"model": "head", "steps_per_epoch": int(np.ceil(n_train / 8))}]  # the endless stream, in epochs
    assert len(result.history) == 2
