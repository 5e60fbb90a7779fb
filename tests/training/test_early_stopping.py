"""Early stopping on validation loss (the CT protocol) and TensorBoard logs, in a real tiny run."""

import numpy as np
import pandas as pd
import pytest

from tests.chain_helpers import tiny_recipe
from tfxray.data.manifest import load_manifest
from tfxray.models.bundle import load_bundle

EPOCHS, PATIENCE = 15, 1
# lr 0.01 with Adam makes the tiny net's validation loss jump about: it stops within a few epochs
EARLY = {"data.input_size": 32, "train.epochs": EPOCHS, "train.early_stopping": PATIENCE, "train.lr": 0.01,
         "train.restore_best": False,  # EarlyStopping's own restore_best_weights, nothing else
         "data.split": [0.6, 0.4, 0.0]}  # a validation split large enough for a meaningful loss


@pytest.fixture(scope="module")
def early_run(wrist_png, tmp_path_factory):
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**EARLY)
    run_dir = tmp_path_factory.mktemp("early")
    result = train(recipe, load_manifest(folder / "manifest.csv", classes=recipe.classes), run_dir, verbose=0)
    return run_dir, result


def validation_loss(run_dir) -> float:
    """The saved model's binary cross-entropy on the run's validation split, as fit computes it."""
    from tfxray.data.geometry import ImageGeometry
    from tfxray.data.inputs import load_input

    bundle = load_bundle(run_dir)
    split = pd.read_csv(run_dir / "split.csv")
    val = split[split.split == "validation"]
    geometry = ImageGeometry(bundle.meta.input_size, bundle.meta.channels, bundle.meta.resize)
    x = np.stack([load_input(p, geometry)[0] for p in val.path])
    y = (val.label == "fracture").to_numpy(np.float32)
    model = bundle.model
    model.compile(loss="binary_crossentropy")
    return float(model.evaluate(x, y, batch_size=8, verbose=0))


def test_early_stopping_stops_before_the_budget_and_keeps_the_best_epoch(early_run):
    run_dir, result = early_run
    history = pd.read_csv(run_dir / "history.csv")
    pd.testing.assert_frame_equal(history, result.history)
    best = int(history.val_loss.idxmin())
    # stopped PATIENCE epochs after the best one, well before the budget
    assert len(history) < EPOCHS
    assert len(history) == best + 1 + PATIENCE
    assert (history.val_loss.iloc[best + 1 :] >= history.val_loss.iloc[best]).all()
    assert history.val_loss.iloc[-1] != pytest.approx(history.val_loss.iloc[best], rel=1e-3)  # restoring matters
    # the saved model is the best epoch's, not the last one's
    assert validation_loss(run_dir) == pytest.approx(history.val_loss.iloc[best], rel=1e-3)


def test_the_restored_epoch_is_reported(early_run):
    run_dir, result = early_run
    history = pd.read_csv(run_dir / "history.csv")
    best = int(history.val_loss.idxmin())
    assert (result.restored.epoch, result.restored.monitor) == (best + 1, "val_loss")
    assert result.restored.value == pytest.approx(history.val_loss.iloc[best], rel=1e-6)
    assert result.restored.line() == f"restored the weights of epoch {best + 1} (lowest val_loss " \
                                     f"{history.val_loss.iloc[best]:.4f})"


def test_tensorboard_logs_hold_the_epoch_losses_of_history_csv(early_run):
    import tensorflow as tf

    run_dir, _ = early_run
    history = pd.read_csv(run_dir / "history.csv")
    for side, column in (("train", "loss"), ("validation", "val_loss")):
        files = sorted((run_dir / "logs" / side).glob("events.out.tfevents.*"))
        assert files, f"no TensorBoard event file in logs/{side}"
        logged = {}
        for path in files:
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for value in event.summary.value:
                    if value.tag == "epoch_loss":
                        logged[event.step] = float(tf.make_ndarray(value.tensor))
        assert sorted(logged) == list(range(len(history)))  # one point per epoch, steps 0..n-1
        np.testing.assert_allclose([logged[e] for e in sorted(logged)], history[column], rtol=1e-5)
