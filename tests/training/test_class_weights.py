"""`data.class_balance: weights`: per-image weights n / (k * n_c), scikit-learn's 'balanced' rule."""

import numpy as np
import pandas as pd
import pytest

from tests.chain_helpers import tiny_recipe
from tfxray.data.manifest import load_manifest
from tfxray.training.trainer import balanced_class_weights


def test_balanced_weights_by_hand_and_as_scikit_learn_computes_them():
    labels = np.array([0] * 9 + [1] * 3)  # 12 images, 2 classes: 12 / (2 * 9), 12 / (2 * 3)
    np.testing.assert_allclose(balanced_class_weights(labels, 2), [2 / 3, 2.0])
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)  # 10 images, 3 classes
    np.testing.assert_allclose(balanced_class_weights(labels, 3), [10 / 18, 10 / 9, 10 / 3])

    from sklearn.utils.class_weight import compute_class_weight

    rng = np.random.default_rng(0)
    labels = rng.choice(4, size=200, p=[0.6, 0.25, 0.1, 0.05])
    ours = balanced_class_weights(labels, 4)
    np.testing.assert_allclose(ours, compute_class_weight("balanced", classes=np.arange(4), y=labels))
    per_image = ours[labels]
    # every class carries the same total weight n / k, and the weights average to one
    np.testing.assert_allclose(np.bincount(labels, weights=per_image), [50.0] * 4)
    assert per_image.mean() == pytest.approx(1.0)


def test_a_class_missing_from_the_labels_does_not_divide_by_zero():
    np.testing.assert_allclose(balanced_class_weights(np.array([0, 0, 1, 1]), 3), [4 / 6, 4 / 6, 4 / 3])


def test_training_feeds_each_image_its_class_weight(wrist_png, tmp_path, monkeypatch):
    """An unbalanced set (about 4 normals per fracture): the weights the training pipeline gets,
    and the (image, label, weight) triples it yields, follow n / (k * n_c) on the training split."""
    import tfxray.training.trainer as trainer

    folder, _ = wrist_png
    images = pd.read_csv(folder / "manifest.csv")[["path", "label", "patient_id", "study_id"]]
    images["path"] = [str(folder / p) for p in images.path]
    fractures = images[images.label == "fracture"]
    unbalanced = pd.concat([images[images.label == "normal"], fractures[fractures.patient_id.isin(
        sorted(fractures.patient_id.unique())[:4])]])
    unbalanced.to_csv(tmp_path / "manifest.csv", index=False)

    seen = []
    original = trainer.training_dataset

    def recording(paths, labels, geometry, **options):
        dataset = original(paths, labels, geometry, **options)
        if options.get("sample_weights") is not None:
            seen.append((list(paths), np.asarray(labels), np.asarray(options["sample_weights"]), dataset))
        return dataset

    monkeypatch.setattr(trainer, "training_dataset", recording)
    recipe = tiny_recipe(**{"data.class_balance": "weights", "data.input_size": 32, "train.epochs": 1})
    trainer.train(recipe, load_manifest(tmp_path / "manifest.csv", classes=recipe.classes), tmp_path / "run", verbose=0)

    assert len(seen) == 1  # the training split only; validation is unweighted
    paths, labels, weights, dataset = seen[0]
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    train_rows = split[split.split == "train"].set_index("path").loc[paths]
    np.testing.assert_array_equal(labels, (train_rows.label == "fracture").astype(int))
    n, n_fracture = len(labels), int(labels.sum())
    assert n_fracture < n / 3  # unbalanced indeed
    expected = np.where(labels == 1, n / (2 * n_fracture), n / (2 * (n - n_fracture)))
    np.testing.assert_allclose(weights, expected)
    # shuffled batches keep each image's weight with its label
    yielded = [(np.asarray(y), np.asarray(w)) for _, y, w in dataset]
    y_all = np.concatenate([y for y, _ in yielded])
    w_all = np.concatenate([w for _, w in yielded])
    assert len(y_all) == n
    np.testing.assert_allclose(w_all, np.where(y_all == 1, n / (2 * n_fracture), n / (2 * (n - n_fracture))), rtol=1e-6)
