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
    monkeypatch.setenv(progress.INTERVAL_ENV, "10")
    clock = iter(range(0, 1000, 3))  # 3 s per step
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    list(progress.progress(range(10), desc="x"))
    lines = capsys.readouterr().err.splitlines()
    # 10 updates 3 s apart: a line after 12 s, 24 s (intervals of 10 s or more), and the final one
    assert [line.split()[1] for line in lines] == ["4/10", "8/10", "10/10"]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class LogFile:
    """A non-terminal stream that counts what is written to it: a log file, as the progress sees it."""

    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def isatty(self):
        return False


def test_off_a_terminal_a_fast_run_writes_a_plain_line_every_30_s_not_a_redraw(monkeypatch):
    """3000 files at 10 a second (5 minutes) into a log: 10 lines (every 30 s) and the last one, where a
    bar redrawing every 0.1 s would have written some 3000 updates."""
    monkeypatch.delenv(progress.NO_PROGRESS_ENV, raising=False)
    monkeypatch.delenv(progress.INTERVAL_ENV, raising=False)
    log, clock = LogFile(), FakeClock()
    monkeypatch.setattr(progress.sys, "stderr", log)
    monkeypatch.setattr(progress.time, "monotonic", clock)
    assert not progress.on_terminal()
    with progress.progress(total=3000, desc="scoring", unit="file") as bar:
        for i in range(3000):
            clock.now = (i + 1) / 10
            bar.update(1)
    lines = log.text.splitlines()
    assert progress.PLAIN_INTERVAL == 30.0
    assert len(lines) == 10 + 1, lines  # 30 s, 60 s, ... 300 s, and the closing line
    assert [int(line.split()[1].split("/")[0]) for line in lines[:3]] == [300, 600, 900]
    assert lines[-1].startswith("scoring: 3000/3000 file (10.0/s)")
    assert "\r" not in log.text and "\x1b" not in log.text


def test_a_short_run_off_a_terminal_writes_only_its_last_line(monkeypatch):
    monkeypatch.delenv(progress.NO_PROGRESS_ENV, raising=False)
    log, clock = LogFile(), FakeClock()
    monkeypatch.setattr(progress.sys, "stderr", log)
    monkeypatch.setattr(progress.time, "monotonic", clock)
    for i in progress.progress(range(200), desc="inspect", unit="file"):
        clock.now = (i + 1) / 20  # 10 s in all: under the interval
    assert log.text.splitlines() == ["inspect: 200/200 file (20.0/s)"]


def test_the_interval_can_be_set_and_a_bad_value_falls_back(monkeypatch):
    monkeypatch.setenv(progress.INTERVAL_ENV, "5")
    assert progress.plain_interval() == 5.0
    monkeypatch.setenv(progress.INTERVAL_ENV, "soon")
    assert progress.plain_interval() == progress.PLAIN_INTERVAL
    monkeypatch.setenv(progress.INTERVAL_ENV, "-1")
    assert progress.plain_interval() == progress.PLAIN_INTERVAL


def test_a_closed_stream_is_not_a_terminal():
    import io

    stream = io.StringIO()
    stream.close()
    assert progress.on_terminal(stream) is False


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
