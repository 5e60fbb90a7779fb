"""history.png: the restored epoch marked with its legend entry, epochs on integer ticks."""

import pandas as pd

from tfxray.training.callbacks import history_figure, plot_history


def history(n=5):
    return pd.DataFrame({"epoch": range(1, n + 1), "loss": [0.9, 0.6, 0.5, 0.45, 0.4],
                         "val_loss": [0.8, 0.55, 0.6, 0.7, 0.75], "auc": [0.6, 0.7, 0.8, 0.85, 0.9],
                         "val_auc": [0.6, 0.75, 0.7, 0.7, 0.68], "lr": [0.01] * n})


def test_the_restored_epoch_is_a_dashed_line_on_every_panel_with_a_legend_entry():
    import matplotlib.pyplot as plt

    fig = history_figure(history(), restored_epoch=2)
    try:
        assert [ax.get_title() for ax in fig.axes] == ["loss", "auc"]
        for ax in fig.axes:
            labels = [text.get_text() for text in ax.get_legend().get_texts()]
            assert labels == ["training", "validation", "restored: epoch 2"]
            marker = [line for line in ax.get_lines() if line.get_label() == "restored: epoch 2"]
            assert len(marker) == 1 and list(marker[0].get_xdata()) == [2, 2] and marker[0].get_linestyle() == "--"
            ticks = [t for t in ax.get_xticks() if 1 <= t <= 5]
            assert ticks == [1, 2, 3, 4, 5]  # whole epochs only, no 1.5
    finally:
        plt.close(fig)


def test_without_a_restored_epoch_there_is_no_marker(tmp_path):
    import matplotlib.pyplot as plt

    fig = history_figure(history())
    try:
        for ax in fig.axes:
            assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training", "validation"]
    finally:
        plt.close(fig)
    plot_history(history(), tmp_path / "history.png", restored_epoch=3)
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_one_epoch_history_still_has_whole_epoch_ticks():
    import matplotlib.pyplot as plt

    fig = history_figure(history().head(1), restored_epoch=1)
    try:
        for ax in fig.axes:
            left, right = ax.get_xlim()
            visible = [t for t in ax.get_xticks() if left <= t <= right]
            assert visible and all(float(t).is_integer() for t in visible), visible  # no 0.945, 0.96...
            assert 1 in visible
    finally:
        plt.close(fig)


def test_a_metric_measured_on_validation_only_has_its_own_panel():
    """A detector's val_auc (its best epoch is chosen on it) has no training counterpart: still plotted."""
    import matplotlib.pyplot as plt

    table = history().drop(columns=["auc"])
    fig = history_figure(table, restored_epoch=2)
    try:
        assert [ax.get_title() for ax in fig.axes] == ["loss", "auc (validation)"]
        panel = fig.axes[1]
        assert [t.get_text() for t in panel.get_legend().get_texts()] == ["validation", "restored: epoch 2"]
        line = next(line for line in panel.get_lines() if line.get_label() == "validation")
        assert list(line.get_ydata()) == list(table["val_auc"])
    finally:
        plt.close(fig)
