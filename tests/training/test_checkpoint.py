"""The epoch checkpoint survives a kill in the middle of its own saving."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tfxray.training.callbacks import AtomicBackupAndRestore  # noqa: E402


class Killed(BaseException):
    pass


def small_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def test_a_kill_while_saving_leaves_the_previous_whole_epoch(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 3)), rng.random((16, 1))
    folder = tmp_path / "checkpoint"
    keras.utils.set_random_seed(0)
    model = small_model()
    saved = {}

    class Remember(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved[epoch + 1] = [w.copy() for w in self.model.get_weights()]

    original = keras.Model.save_weights

    def kill_during_the_third_save(self, filepath, *args, **kwargs):
        if "epoch-3" in str(filepath):
            with open(filepath, "wb") as handle:  # a few bytes of HDF5, then the process is gone
                handle.write(b"\x89HDF\r\n\x1a\n\x00\x00")
            raise Killed()
        return original(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", kill_during_the_third_save)
    with pytest.raises(Killed):
        model.fit(x, y, epochs=5, batch_size=4, verbose=0, shuffle=False,
                  callbacks=[Remember(), AtomicBackupAndRestore(str(folder))])
    monkeypatch.setattr(keras.Model, "save_weights", original)
    assert sorted(p.name for p in folder.iterdir()) == [".epoch-3.weights.h5.partial.weights.h5", "epoch-2.weights.h5",
                                                        "training_metadata.json"]

    resumed = small_model()
    started = []

    class FirstEpoch(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            started.append([w.copy() for w in self.model.get_weights()])

        def on_epoch_begin(self, epoch, logs=None):
            started.append(epoch)

    resumed.fit(x, y, epochs=4, batch_size=4, verbose=0, shuffle=False,
                callbacks=[AtomicBackupAndRestore(str(folder)), FirstEpoch()])
    assert started[1] == 2  # continues with the third epoch
    for restored, expected in zip(started[0], saved[2]):
        np.testing.assert_array_equal(restored, expected)  # the weights after epoch 2, whole
    assert not folder.exists()  # removed once training ends
