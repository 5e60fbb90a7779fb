"""A tiny trained run shared by the chain, scoring and Grad-CAM tests."""

from __future__ import annotations

from tfxray.config import load_recipe


def tiny_recipe(**extra):
    overrides = [
        (["data", "input_size"], 48),
        (["train", "epochs"], 2),
        (["train", "batch_size"], 8),
    ]
    overrides += [(key.split("."), value) for key, value in extra.items()]
    return load_recipe("demo", overrides)


def kill_when(args: list[str], ready, *, timeout: float = 240, interval: float = 0.05) -> None:
    """``tfxray ARGS`` in a subprocess, killed with SIGKILL as soon as ``ready()`` holds (polled every
    ``interval`` s, at most ``timeout`` s). Fails the test when the command ends before it can be killed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pytest

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen([sys.executable, "-m", "tfxray.cli.main", *map(str, args)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and not ready():
        if process.poll() is not None:
            pytest.fail(f"tfxray {args[0]} ended before it could be killed")
        time.sleep(interval)
    if process.poll() is not None:
        pytest.fail(f"tfxray {args[0]} ended before it could be killed")
    process.send_signal(signal.SIGKILL)
    process.wait()


def rows_written(csv_path, at_least: int):
    """A ``ready`` for ``kill_when``: ``csv_path`` holds at least that many rows after its header."""
    return lambda: csv_path.exists() and csv_path.read_bytes().count(b"\n") - 1 >= at_least


def epochs_done(history_csv, at_least: int):
    """A ``ready`` for ``kill_when``: ``history_csv`` lists at least that many epochs."""
    import pandas as pd

    return lambda: history_csv.is_file() and len(pd.read_csv(history_csv)) >= at_least
