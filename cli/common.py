"""What every command shares: error reporting, quiet TensorFlow start-up."""

from __future__ import annotations

import os

import click


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up chatter off the user's screen unless they ask for it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")


def echo_err(message: str) -> None:
    click.echo(message, err=True)
