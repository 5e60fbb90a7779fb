"""Reduce-on-plateau in real (tiny) trainings: the rate drops after `patience` epochs, survives a resume."""

import numpy as np
import pandas as pd
import pytest

from tests.chain_helpers import tiny_recipe
from tfxray.data.manifest import load_manifest
from tfxray.errors import UserError
from tfxray.training.schedules import plateau_lr

# min_delta 100: no epoch after the first is an improvement, so the rate halves every 2 epochs,
# whatever the (tiny, noisy) validation losses are
PLATEAU = {"train.schedule.name": "plateau", "train.schedule.factor": 0.5, "train.schedule.patience": 2,
           "train.schedule.min_delta": 100.0, "train.epochs": 5, "data.input_size": 32, "train.lr": 0.001}
EXPECTED_LR = [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4]  # the optimizer's rate at the end of epochs 1..5


def rule(recipe):
    s = recipe.train.schedule
    return dict(lr=recipe.train.lr, factor=s.factor, patience=s.patience, min_delta=s.min_delta,
                cooldown=s.cooldown, min_lr=s.min_lr)


def test_plateau_run_lowers_the_rate_after_patience_epochs_without_improvement(wrist_png, tmp_path):
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**PLATEAU)
    result = train(recipe, load_manifest(folder / "manifest.csv", classes=recipe.classes), tmp_path / "run", verbose=0)
    history = result.history
    assert list(history.epoch) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(history.lr, EXPECTED_LR, rtol=1e-6)
    # and the logged rate is the pure function of the logged validation losses
    assert list(history.lr) == [plateau_lr(history.val_loss[: i + 1], **rule(recipe)) for i in range(len(history))]
    assert pd.read_csv(tmp_path / "run" / "history.csv").lr.iloc[-1] == history.lr.iloc[-1]


def test_plateau_follows_the_real_validation_loss(wrist_png, tmp_path):
    """min_delta 0: where the rate drops depends on the losses; it must be plateau_lr of them."""
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**{**PLATEAU, "train.schedule.min_delta": 0.0, "train.schedule.patience": 1,
                            "train.epochs": 4, "train.lr": 0.01})
    history = train(recipe, load_manifest(folder / "manifest.csv", classes=recipe.classes), tmp_path / "run",
                    verbose=0).history
    expected = [plateau_lr(history.val_loss[: i + 1], **rule(recipe)) for i in range(len(history))]
    assert list(history.lr) == expected
    assert len(set(expected)) > 1  # the losses did make it reduce


class Interrupted(Exception):
    pass


def test_resumed_plateau_run_recomputes_the_rate_from_history(wrist_png, tmp_path, monkeypatch):
    """Killed after epoch 3 (rate already halved once), resumed: epoch 5 must halve again.

    A schedule that forgot the history on resume would count epoch 4 as a fresh best and keep
    5e-4 after epoch 5.
    """
    from tfxray.training import callbacks
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**PLATEAU)
    manifest = load_manifest(folder / "manifest.csv", classes=recipe.classes)
    run = tmp_path / "run"
    original = callbacks.PlateauSchedule.on_epoch_begin

    def crash_before_epoch_4(self, epoch, logs=None):
        if epoch == 3:
            raise Interrupted()
        original(self, epoch, logs)

    monkeypatch.setattr(callbacks.PlateauSchedule, "on_epoch_begin", crash_before_epoch_4)
    with pytest.raises(Interrupted):
        train(recipe, manifest, run, verbose=0)
    before = pd.read_csv(run / "history.csv")
    assert list(before.epoch) == [1, 2, 3] and (run / "checkpoint").is_dir()
    np.testing.assert_allclose(before.lr, EXPECTED_LR[:3], rtol=1e-6)

    monkeypatch.setattr(callbacks.PlateauSchedule, "on_epoch_begin", original)
    seen = []
    monkeypatch.setattr(callbacks.PlateauSchedule, "on_epoch_begin",
                        lambda self, epoch, logs=None: (original(self, epoch, logs), seen.append(
                            (epoch, float(np.asarray(self.model.optimizer.learning_rate))))))
    after = train(recipe, manifest, run, resume=True, verbose=0).history
    assert seen[0] == (3, pytest.approx(5e-4))  # epoch 4 trains at the rate history.csv implies
    assert list(after.epoch) == [1, 2, 3, 4, 5]
    pd.testing.assert_frame_equal(after.iloc[:3], before)  # epochs done before the crash are kept
    np.testing.assert_allclose(after.lr, EXPECTED_LR, rtol=1e-6)
    assert not (run / "checkpoint").exists()


def test_plateau_needs_a_validation_split(wrist_png, tmp_path):
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**{**PLATEAU, "data.split": [0.9, 0.0, 0.1]})
    with pytest.raises(UserError, match="plateau follows the validation loss, but the validation split is empty") as caught:
        train(recipe, load_manifest(folder / "manifest.csv", classes=recipe.classes), tmp_path / "run", verbose=0)
    assert "\n" not in str(caught.value)


def test_plateau_optimizer_holds_a_plain_rate_variable():
    import keras

    from tfxray.training.trainer import _optimizer

    optimizer = _optimizer(tiny_recipe(**PLATEAU), total_steps=100)
    assert not isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule)
    optimizer.learning_rate = 0.25
    assert float(np.asarray(optimizer.learning_rate)) == 0.25
