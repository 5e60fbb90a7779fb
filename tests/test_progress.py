"""Progress reads well in a log file: plain lines, never bars, escape codes or carriage returns."""

import subprocess
import sys

import pytest

from tfxray import progress


def test_plain_lines_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.delenv(progress.NO_PROGRESS_ENV, raising=False)
    assert list(progress.progress(range(3), desc="synth", unit="img")) == [0, 1, 2]
    with progress.progress(total=5, desc="scoring", unit="file") as bar:
        bar.update(2)
        bar.update(3)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith("synth: 3/3 img") and lines[1].startswith("scoring: 5/5 file")
    assert "\r" not in err and "\x1b" not in err


def test_a_line_at_most_every_interval(capsys, monkeypatch):
    monkeypatch.delenv(progress.NO_PROGRESS_ENV, raising=False)
    clock = iter(range(0, 1000, 3))  # 3 s per step
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    list(progress.progress(range(10), desc="x"))
    lines = capsys.readouterr().err.splitlines()
    # 10 updates 3 s apart: a line after 12 s, 24 s (intervals of 10 s or more), and the final one
    assert [line.split()[1] for line in lines] == ["4/10", "8/10", "10/10"]


def test_disabled_progress_prints_nothing_and_silences_keras(capsys, monkeypatch):
    monkeypatch.setenv(progress.NO_PROGRESS_ENV, "1")
    with progress.progress(total=2, desc="quiet") as bar:
        bar.update(2)
    assert list(progress.progress([1, 2])) == [1, 2]
    assert capsys.readouterr().err == ""
    assert progress.keras_verbose(1) == 0


def test_keras_prints_epoch_lines_instead_of_a_bar_off_a_terminal(monkeypatch):
    monkeypatch.delenv(progress.NO_PROGRESS_ENV, raising=False)
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    assert progress.keras_verbose(1) == 2 and progress.keras_verbose(0) == 0
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    assert progress.keras_verbose(1) == 1


@pytest.mark.slow
def test_a_training_log_redirected_to_a_file_has_no_bars(tmp_path):
    data = tmp_path / "data"
    made = subprocess.run([sys.executable, "-m", "tfxray.cli.main", "synth", str(data), "--n", "40", "--size", "48"],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    log = tmp_path / "train.log"
    with open(log, "w") as handle:
        done = subprocess.run([sys.executable, "-m", "tfxray.cli.main", "train", "demo", "--data",
                               str(data / "manifest.csv"), "--out", str(tmp_path / "run"), "--input-size", "48",
                               "--epochs", "2"], stdout=handle, stderr=subprocess.STDOUT, timeout=300)
    text = log.read_text()
    assert done.returncode == 0, text[-2000:]
    assert "\r" not in text and "\x1b[" not in text
    assert "Epoch 2/2" in text  # Keras' one line per epoch
    quiet = subprocess.run([sys.executable, "-m", "tfxray.cli.main", "--no-progress", "synth", str(tmp_path / "q"),
                            "--n", "20", "--size", "48"], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and "synth:" not in quiet.stderr
