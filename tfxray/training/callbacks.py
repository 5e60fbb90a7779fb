"""Training callbacks that keep the run directory whole across crashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from ..errors import RunError
from ..io import atomic_save_figure, atomic_write_json, atomic_write_text
from .schedules import plateau_lr


class HistoryCSV(keras.callbacks.Callback):
    """history.csv keyed by epoch, rewritten atomically; a resumed epoch replaces its old row.

    Keras' CSVLogger appends, so an epoch re-run after a crash would appear twice.
    Also draws history.png (loss and metrics, training vs validation) when training ends.
    The ``lr`` column is the optimizer's learning rate when the epoch ended, i.e. the rate
    the next step uses (a step schedule's value at that step; the plateau schedule's rate
    for the next epoch). ``restored``, when given, returns the epoch whose weights training ends
    with (an object with ``epoch``; None when it is the last), marked on history.png.
    """

    def __init__(self, csv_path: Path, png_path: Path | None = None, restored=None):
        super().__init__()
        self.csv_path, self.png_path, self.restored = Path(csv_path), png_path, restored
        self.rows: dict[int, dict] = {}

    def on_train_begin(self, logs=None):
        if self.csv_path.is_file():
            old = pd.read_csv(self.csv_path)
            self.rows = {int(r["epoch"]): r for r in old.to_dict("records")}

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        lr = getattr(self.model.optimizer, "learning_rate", None)
        if lr is not None:
            row["lr"] = float(keras.ops.convert_to_numpy(lr))
        self.rows = {e: r for e, r in self.rows.items() if e <= epoch}  # drop rows from a later, lost attempt
        self.rows[epoch + 1] = row
        table = pd.DataFrame([self.rows[e] for e in sorted(self.rows)])
        atomic_write_text(self.csv_path, table.to_csv(index=False))

    def on_train_end(self, logs=None):
        if self.png_path and self.rows:
            restored = self.restored() if self.restored else None
            plot_history(pd.DataFrame([self.rows[e] for e in sorted(self.rows)]), self.png_path,
                         restored_epoch=restored.epoch if restored else None)


def plot_history(history: pd.DataFrame, path: Path, restored_epoch: int | None = None) -> None:
    import matplotlib.pyplot as plt

    fig = history_figure(history, restored_epoch)
    atomic_save_figure(fig, path)
    plt.close(fig)


def history_figure(history: pd.DataFrame, restored_epoch: int | None = None):
    """Each metric per epoch, training and validation, on integer epoch ticks; the epoch whose
    weights were kept (``restored_epoch``) as a dashed vertical line with its legend entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    trained = [c for c in history.columns if c not in ("epoch", "lr") and not c.startswith("val_")]
    # a metric measured on validation only (a detector's per-image val_auc, what its best epoch is chosen
    # on) gets a panel of its own
    validation_only = [c for c in history.columns if c.startswith("val_") and c[4:] not in trained]
    panels = [(m, m, f"val_{m}") for m in trained] + [(f"{c[4:]} (validation)", None, c) for c in validation_only]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (title, metric, validation) in zip(axes[0], panels):
        if metric is not None:
            ax.plot(history["epoch"], history[metric], "o-", label="training")
        if validation in history:
            ax.plot(history["epoch"], history[validation], "s-", color="tab:orange", label="validation")
        if restored_epoch is not None:
            ax.axvline(restored_epoch, color="tab:red", linestyle="--", linewidth=1.2,
                       label=f"restored: epoch {restored_epoch}")
        # half an epoch of margin and at least two epochs of span: the integer locator then has
        # whole epochs to place, a one-epoch history included (it falls back to fractions otherwise)
        first, last = int(history["epoch"].min()), int(history["epoch"].max())
        ax.set_xlim(first - 0.5, max(last, first + 1) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


class RestoreBest(keras.callbacks.Callback):
    """At the end of training, put back the weights of the epoch with the best ``monitor``.

    Keras' EarlyStopping restores only when it stops early; this keeps the best epoch of a
    full run too (a late validation spike can then never be the saved model). The best
    weights live in memory; give the run's ``AtomicBackupAndRestore`` this callback
    (``best=``) and list this one before it, and the checkpoint keeps them too, so a resumed
    run still ends on the best epoch of the epochs before the kill.
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "min"):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
        self.monitor = monitor
        self.mode = mode
        self.best = float("inf") if mode == "min" else float("-inf")
        self.best_weights = None
        self.best_epoch = None  # 1-based

    def _better(self, value: float) -> bool:
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and np.isfinite(value) and self._better(value):
            self.best, self.best_epoch = float(value), epoch + 1
            self.best_weights = self.model.get_weights()

    def resume(self, epoch: int, value: float, weights) -> None:
        """The best so far, as a checkpoint recorded it."""
        self.best, self.best_epoch, self.best_weights = float(value), int(epoch), weights

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class PlateauSchedule(keras.callbacks.Callback):
    """Reduce-on-plateau as a function of the history: sets the optimizer's learning rate to
    ``plateau_lr`` of this phase's validation losses so far.

    At each epoch's end (after recording its loss) the rate for the next epoch is set, as
    Keras' ReduceLROnPlateau does; at each epoch's start it is set again from the losses of
    the epochs before it, read back from ``history.csv`` when training begins. A run resumed
    after a crash therefore trains each epoch at exactly the rate an uninterrupted run would,
    whatever the restored optimizer state holds. Epochs are counted from ``first_epoch``
    (the phase's initial epoch): a fine-tuning phase starts its own plateau count.
    """

    def __init__(self, history_csv: Path, *, first_epoch: int, lr: float, factor: float, patience: int,
                 min_delta: float = 0.0, cooldown: int = 0, min_lr: float = 0.0, monitor: str = "val_loss"):
        super().__init__()
        self.history_csv, self.first_epoch, self.monitor = Path(history_csv), int(first_epoch), monitor
        self.rule = dict(lr=lr, factor=factor, patience=patience, min_delta=min_delta, cooldown=cooldown, min_lr=min_lr)
        self.losses: dict[int, float] = {}  # 1-based epoch -> monitored value

    def rate_after(self, epochs_done: int) -> float:
        """The learning rate once epochs ``first_epoch + 1 .. epochs_done`` (1-based) are done."""
        wanted = range(self.first_epoch + 1, epochs_done + 1)
        missing = [e for e in wanted if e not in self.losses]
        if missing:
            raise RunError(f"plateau schedule: {self.history_csv} has no {self.monitor} for epoch {missing[0]}; "
                           f"the learning rate cannot be recomputed (start the run again)")
        return plateau_lr([self.losses[e] for e in wanted], **self.rule)

    def on_train_begin(self, logs=None):
        self.losses = {}
        if self.history_csv.is_file():
            old = pd.read_csv(self.history_csv)
            if self.monitor in old.columns:
                self.losses = {int(e): float(v) for e, v in zip(old["epoch"], old[self.monitor])}

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = self.rate_after(epoch)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise RunError(f"plateau schedule: no {self.monitor} after epoch {epoch + 1} (no validation data?)")
        self.losses = {e: v for e, v in self.losses.items() if e <= epoch}  # drop rows of a later, lost attempt
        self.losses[epoch + 1] = float(value)
        self.model.optimizer.learning_rate = self.rate_after(epoch + 1)


CHECKPOINT_MARGIN_BYTES = 4 << 20  # HDF5's own structures on top of the raw arrays, generously


def _check_room_for(model, folder: Path) -> None:
    """Refuse a checkpoint the disk cannot hold, before HDF5 starts writing it.

    h5py running out of space mid-write does not raise cleanly: HDF5 reports its errors while it
    tears the file down and the process can die with a segmentation fault, leaving a torn file
    and no message. The weights file is the raw arrays plus a little structure, so its size is
    known beforehand; what another process writes in between is the one case left to chance.
    """
    import shutil

    needed = CHECKPOINT_MARGIN_BYTES + sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise RunError(f"{folder}: the disk has {free / 1e6:.1f} MB free and the checkpoint needs about "
                       f"{needed / 1e6:.1f} MB; free some space, then continue with tfxray train --resume")


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore with a checkpoint that a kill -9 never leaves half-written.

    Keras writes ``latest.weights.h5`` in place and then ``training_metadata.json``: killed
    during the first, the resume fails on an unreadable HDF5 file; killed between the two, the
    weights are one epoch ahead of the epoch counter. Here each epoch's weights go to a new file
    (written under a temporary name, then renamed), the metadata naming that file and its epoch
    then replaces the old metadata atomically, and only then is the previous file removed: the
    checkpoint is always one whole epoch, the old one or the new one.

    With ``best`` (a ``RestoreBest`` listed before this callback, so it has judged the epoch
    when the checkpoint is written), the metadata also names the best epoch, its value and its
    weights file: the file that epoch's checkpoint wrote, kept while it stays the best. A
    resumed run gives them back to ``best``, consistent with the epoch it resumes after.
    """

    def __init__(self, backup_dir, *args, best: RestoreBest | None = None, **kwargs):
        super().__init__(backup_dir, *args, **kwargs)
        self.best = best

    def _save_model(self):
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{self._current_epoch}.weights.h5"
        partial = folder / f".{name}.partial.weights.h5"  # Keras wants the .weights.h5 suffix
        _check_room_for(self.model, folder)
        self.model.save_weights(str(partial), overwrite=True)
        os.replace(partial, folder / name)
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name}
        keep = {name}
        if self.best is not None and self.best.best_epoch is not None:
            best_name = f"epoch-{self.best.best_epoch}.weights.h5"
            if (folder / best_name).is_file():  # written when that epoch ended (or a resumed run's best)
                metadata["best"] = {"monitor": self.best.monitor, "epoch": self.best.best_epoch,
                                    "value": self.best.best, "weights": best_name}
                keep.add(best_name)
        atomic_write_json(self._training_metadata_path, metadata)
        for old in folder.glob("*.weights.h5"):  # older epochs and partial files of a killed attempt
            if old.name not in keep:
                old.unlink(missing_ok=True)

    def _load_model(self):
        metadata_path = Path(self._training_metadata_path)
        if not metadata_path.is_file():
            return super()._load_model()  # nothing saved yet (or Keras' own layout)
        metadata = json.loads(metadata_path.read_text())
        if "weights" not in metadata:
            return super()._load_model()
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:  # its variables must exist to be loaded
            optimizer.build(self.model.trainable_variables)
        folder = Path(self.backup_dir)
        best = metadata.get("best") if self.best is not None else None
        if best and best.get("monitor") != self.best.monitor:
            best = None
        best_weights = None
        if best and best["weights"] != metadata["weights"]:  # the best epoch's weights, read first
            self.model.load_weights(str(folder / best["weights"]))
            best_weights = self.model.get_weights()
        self.model.load_weights(str(folder / metadata["weights"]))
        if best:
            if best_weights is None:  # the best epoch is the one resumed after
                best_weights = self.model.get_weights()
            self.best.resume(best["epoch"], best["value"], best_weights)
        self.model._initial_epoch = metadata["epoch"]
