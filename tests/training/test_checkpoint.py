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


@pytest.mark.parametrize("make_optimizer", [lambda: keras.optimizers.SGD(0.05, momentum=0.9),
                                            lambda: keras.optimizers.Adam(0.05, beta_1=0.5)],
                         ids=["sgd-momentum", "adam"])
def test_resume_restores_the_optimizer_slots_and_step_of_the_checkpoint(tmp_path, make_optimizer):
    """Momentum (SGD) or first and second moments (Adam) and the iteration counter come back whole."""
    rng = np.random.default_rng(1)
    x, y = rng.random((16, 3)), rng.random((16, 1))
    folder = tmp_path / "checkpoint"

    def model_with(optimizer):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="relu"), keras.layers.Dense(1)])
        model.compile(optimizer, "mse")
        return model

    def optimizer_state(model):  # keyed by role, in order: the optimizer's and layers' own names differ per build
        names = [v.path.split("/", 1)[1].rsplit("_", 1)[-1] for v in model.optimizer.variables]
        return {f"{i}:{n}": np.array(v) for i, (n, v) in enumerate(zip(names, model.optimizer.variables))}

    saved = {}

    class StopAfterTwo(keras.callbacks.Callback):  # after the checkpoint of epoch 2 is written
        def on_epoch_end(self, epoch, logs=None):
            saved[epoch + 1] = optimizer_state(self.model)
            if epoch + 1 == 2:
                raise Killed()

    model = model_with(make_optimizer())
    with pytest.raises(Killed):
        model.fit(x, y, epochs=5, batch_size=4, verbose=0, shuffle=False,
                  callbacks=[AtomicBackupAndRestore(str(folder)), StopAfterTwo()])
    expected = saved[2]
    assert int(expected[next(k for k in expected if k.endswith("iteration"))]) == 8  # 2 epochs x 4 steps
    slots = [k for k in expected if k.endswith(("momentum", "velocity"))]
    assert slots and all(np.any(expected[k] != 0) for k in slots)  # real state, not zeros

    resumed = model_with(make_optimizer())
    restored = {}

    class Capture(keras.callbacks.Callback):  # runs after the restore in on_train_begin
        def on_train_begin(self, logs=None):
            restored.update(optimizer_state(self.model))
            raise Killed()

    with pytest.raises(Killed):
        resumed.fit(x, y, epochs=5, batch_size=4, verbose=0, shuffle=False,
                    callbacks=[AtomicBackupAndRestore(str(folder)), Capture()])
    assert sorted(restored) == sorted(expected)
    for path, value in expected.items():
        np.testing.assert_array_equal(restored[path], value, err_msg=path)
