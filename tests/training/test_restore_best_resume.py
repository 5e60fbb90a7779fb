"""RestoreBest across a kill and --resume: the checkpoint keeps the best epoch's weights, value and number."""

import json

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from tests.chain_helpers import tiny_recipe  # noqa: E402
from tfxray.training.callbacks import AtomicBackupAndRestore, RestoreBest  # noqa: E402


class Killed(BaseException):
    pass


def one_weight_model():
    """y = w x, w from 0, full-batch SGD towards w = 2 (w_t = 2 (1 - 0.784^t) on this data)."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def data():
    x = np.linspace(0.5, 1.5, 16, dtype=np.float32)[:, None]
    return x, 2 * x, (x, 1 * x)  # validation wants w = 1: passed at epoch 3, then left behind


def test_resumed_run_ends_on_the_best_epoch_before_the_kill(tmp_path):
    x, y, val = data()
    folder = tmp_path / "checkpoint"
    seen = {}  # epoch (1-based) -> (val_loss, w), over both attempts

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch + 1] = (logs["val_loss"], float(self.model.get_weights()[0][0, 0]))

    class KillAfterFive(keras.callbacks.Callback):  # after epoch 5's checkpoint is written
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == 5:
                raise Killed()

    def callbacks(*extra):
        best = RestoreBest("val_loss")  # fresh callbacks, as a new process builds them
        return best, [Record(), best, AtomicBackupAndRestore(str(folder), best=best), *extra]

    _, first = callbacks(KillAfterFive())
    with pytest.raises(Killed):
        one_weight_model().fit(x, y, validation_data=val, epochs=8, batch_size=16, shuffle=False, verbose=0,
                               callbacks=first)
    assert min(seen, key=lambda e: seen[e][0]) == 3
    metadata = json.loads((folder / "training_metadata.json").read_text())
    assert metadata["epoch"] == 5 and metadata["weights"] == "epoch-5.weights.h5"
    assert metadata["best"] == {"monitor": "val_loss", "epoch": 3, "value": pytest.approx(seen[3][0]),
                                "weights": "epoch-3.weights.h5"}
    assert sorted(p.name for p in folder.glob("*.weights.h5")) == ["epoch-3.weights.h5", "epoch-5.weights.h5"]

    best, second = callbacks()
    resumed = one_weight_model()
    resumed.fit(x, y, validation_data=val, epochs=8, batch_size=16, shuffle=False, verbose=0, callbacks=second)
    assert sorted(seen) == list(range(1, 9))
    assert seen[8][1] > seen[5][1] > seen[3][1]  # it did go on training from epoch 5
    assert best.best_epoch == 3 and best.best == pytest.approx(seen[3][0])
    # the epochs after the resume were all worse: without the checkpoint's best, epoch 6 would win
    assert min(seen[e][0] for e in (6, 7, 8)) > seen[3][0]
    assert float(resumed.get_weights()[0][0, 0]) == pytest.approx(seen[3][1], abs=1e-6)
    assert not folder.exists()


def test_a_later_best_replaces_the_kept_file(tmp_path):
    x, _, val = data()
    folder = tmp_path / "checkpoint"
    best = RestoreBest("val_loss")
    states = []

    class Look(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            states.append((json.loads((folder / "training_metadata.json").read_text()).get("best", {}).get("epoch"),
                           sorted(p.name for p in folder.glob("*.weights.h5"))))

    # training towards the validation target itself: every epoch is a new best
    one_weight_model().fit(x, 1 * x, validation_data=val, epochs=3, batch_size=16, shuffle=False, verbose=0,
                           callbacks=[best, AtomicBackupAndRestore(str(folder), best=best, delete_checkpoint=False),
                                      Look()])
    assert states == [(1, ["epoch-1.weights.h5"]), (2, ["epoch-2.weights.h5"]), (3, ["epoch-3.weights.h5"])]


@pytest.mark.slow  # two trainings, about 9 s
def test_train_resumed_after_a_kill_saves_the_best_epoch_of_both_attempts(wrist_png, tmp_path, monkeypatch):
    from tests.training.test_early_stopping import validation_loss
    from tfxray.data.manifest import load_manifest
    from tfxray.training import callbacks
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**{"data.input_size": 32, "train.epochs": 5, "train.lr": 0.01, "train.restore_best": True,
                            "train.deterministic": True, "data.split": [0.6, 0.4, 0.0]})
    manifest = load_manifest(folder / "manifest.csv", classes=recipe.classes)
    run = tmp_path / "run"
    original = callbacks.AtomicBackupAndRestore._save_model

    def kill_after_the_third_checkpoint(self):
        original(self)
        if self._current_epoch == 3:
            raise Killed()

    monkeypatch.setattr(callbacks.AtomicBackupAndRestore, "_save_model", kill_after_the_third_checkpoint)
    with pytest.raises(Killed):
        train(recipe, manifest, run, verbose=0)
    monkeypatch.setattr(callbacks.AtomicBackupAndRestore, "_save_model", original)
    metadata = json.loads((run / "checkpoint" / "training_metadata.json").read_text())
    before = pd.read_csv(run / "history.csv")
    assert metadata["best"]["epoch"] == int(before.val_loss.idxmin()) + 1

    result = train(recipe, manifest, run, resume=True, verbose=0)
    history = pd.read_csv(run / "history.csv")
    assert list(history.epoch) == [1, 2, 3, 4, 5]
    best = int(history.val_loss.idxmin())
    # The saved model is the best epoch of both attempts, wherever it fell. Whether it came before
    # the kill depends on the phantoms; the one-weight tests above force that case.
    assert validation_loss(run) == pytest.approx(history.val_loss.iloc[best], rel=1e-3)
    assert result.restored.epoch == best + 1
