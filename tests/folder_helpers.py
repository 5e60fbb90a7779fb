"""Folders to score, built from the session's synthetic sets."""

from __future__ import annotations

import shutil
from pathlib import Path

BROKEN_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20  # a PNG signature and nothing after it


def copy_images(source: Path, paths, folder: Path, names=None) -> Path:
    """Copy ``source / path`` for each of ``paths`` into ``folder`` (flat), named by ``names`` or by their file name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = list(paths)
    for path, name in zip(paths, names or [p.split("/")[-1] for p in paths]):
        shutil.copy(source / path, folder / name)
    return folder
