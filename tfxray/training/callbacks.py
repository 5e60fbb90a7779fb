"""Training callbacks that keep the run directory whole across crashes."""

from __future__ import annotations

from pathlib import Path

import keras
import pandas as pd

from ..io import atomic_save_figure, atomic_write_text


class HistoryCSV(keras.callbacks.Callback):
    """history.csv keyed by epoch, rewritten atomically; a resumed epoch replaces its old row.

    Keras' CSVLogger appends, so an epoch re-run after a crash would appear twice.
    Also draws history.png (loss and metrics, training vs validation) when training ends.
    """

    def __init__(self, csv_path: Path, png_path: Path | None = None):
        super().__init__()
        self.csv_path, self.png_path = Path(csv_path), png_path
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
            plot_history(pd.DataFrame([self.rows[e] for e in sorted(self.rows)]), self.png_path)


def plot_history(history: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [c for c in history.columns if c not in ("epoch", "lr") and not c.startswith("val_")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.plot(history["epoch"], history[metric], "o-", label="training")
        if f"val_{metric}" in history:
            ax.plot(history["epoch"], history[f"val_{metric}"], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)


class RestoreBest(keras.callbacks.Callback):
    """At the end of training, put back the weights of the epoch with the best ``monitor``.

    Keras' EarlyStopping restores only when it stops early; this keeps the best epoch of a
    full run too (a late validation spike can then never be the saved model).
    """

    def __init__(self, monitor: str = "val_loss"):
        super().__init__()
        self.monitor = monitor
        self.best = float("inf")
        self.best_weights = None
        self.best_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best, self.best_epoch = float(value), epoch + 1
            self.best_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
