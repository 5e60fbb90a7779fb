"""A checkpoint the disk cannot hold is refused in one line before HDF5 writes it (h5py out of space
mid-write can kill the process with a segmentation fault and no message)."""

import shutil
from collections import namedtuple

import pytest

keras = pytest.importorskip("keras")

from tests.test_io import small_disk  # noqa: E402
from tfxray.errors import RunError  # noqa: E402
from tfxray.training import callbacks  # noqa: E402
from tfxray.training.callbacks import CHECKPOINT_MARGIN_BYTES, _check_room_for  # noqa: E402


def model_of(units: int):
    return keras.Sequential([keras.Input((1000,)), keras.layers.Dense(units)])  # 1001 x units float32


def test_the_needed_space_is_the_weights_plus_a_margin(tmp_path, monkeypatch):
    model = model_of(100)
    needed = CHECKPOINT_MARGIN_BYTES + 1001 * 100 * 4
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(0, 0, needed))
    _check_room_for(model, tmp_path)  # exactly enough
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(0, 0, needed - 1))
    with pytest.raises(RunError, match=r"checkpoint needs about 4\.6 MB.*tfxray train --resume") as caught:
        _check_room_for(model, tmp_path)
    assert "\n" not in str(caught.value) and str(tmp_path) in str(caught.value)


def test_a_full_disk_stops_the_checkpoint_before_any_file(tmp_path):
    with small_disk(tmp_path / "disk", "256k") as disk:
        saver = callbacks.AtomicBackupAndRestore(str(disk / "checkpoint"))
        saver.set_model(model_of(400))  # 1.6 MB of weights on a 256 kB disk
        saver._current_epoch, saver._last_batch_seen = 1, 0
        with pytest.raises(RunError, match="the disk has"):
            saver._save_model()
        assert list((disk / "checkpoint").iterdir()) == []
