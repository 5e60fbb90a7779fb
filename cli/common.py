"""What every command shares: error reporting, quiet TensorFlow start-up."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
from contextlib import contextmanager

import click

# TensorFlow's start-up notices. Its two shared libraries each log the oneDNN line at load time,
# through absl before absl's logging is initialised, so TF_CPP_MIN_LOG_LEVEL does not reach them.
IMPORT_NOTICES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
)


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up chatter off the user's screen unless they ask for it
    (TF_CPP_MIN_LOG_LEVEL=0 shows everything). Call before TensorFlow is imported; it stays lazy."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() in ("", "0"):
        return
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


class _QuietImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` (whoever asks: keras, a command) with the process's
    stderr captured, and passes on all of it but ``IMPORT_NOTICES``."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, inner, finder):
        self.inner, self.finder = inner, finder

    def __getattr__(self, name):  # get_resource_reader, is_package...: the real loader's
        return getattr(self.inner, name)

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)
        module.__loader__ = self.inner
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        with notices_dropped():
            self.inner.exec_module(module)


def quiet_image_readers() -> None:
    """For commands that read a folder file by file (score, inspect): each file's problem is its row's
    status and reason. The readers' own notices about odd files (pydicom's and Pillow's warnings,
    tifffile's log) would bury the summary under thousands of lines, and some quote the file's text.
    (libtiff, inside Pillow, still prints a few C-level lines for broken TIFFs.)"""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\.")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)


@contextmanager
def notices_dropped():
    """Capture file descriptor 2 (C++ writes there directly) and write back all but ``IMPORT_NOTICES``."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr to capture
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not any(n in line for n in IMPORT_NOTICES)]
            if kept:
                os.write(2, "".join(kept).encode("utf-8"))


def echo_err(message: str) -> None:
    click.echo(message, err=True)
