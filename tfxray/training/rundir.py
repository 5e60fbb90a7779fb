"""A run folder that a failed start leaves as it found it, and what state a run folder is in."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

RUN_MARKERS = ("recipe.yaml", "split.csv", "folds.csv", "tfxray.json", "history.csv")


@contextmanager
def removed_unless(run_dir: Path, started: Callable[[], bool]) -> Iterator[None]:
    """On any failure (Ctrl-C included) while ``started()`` is still False, remove what the block
    created: the folder and the parents it made when they did not exist, else only the entries that
    were not there before. What was there before is never touched."""
    run_dir = Path(run_dir)
    top = run_dir
    while not top.parent.exists() and top.parent != top:  # the outermost folder this run will create
        top = top.parent
    existed = run_dir.exists()
    before = set(run_dir.iterdir()) if existed else set()
    try:
        yield
    except BaseException:
        if not started():
            if not existed:
                shutil.rmtree(top if top.exists() else run_dir, ignore_errors=True)
            elif run_dir.is_dir():
                for entry in set(run_dir.iterdir()) - before:
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
        raise


def looks_like_a_run(folder: Path) -> bool:
    """A folder tfxray wrote (a training or a cross-validation): safe for --overwrite to remove."""
    return any((Path(folder) / name).exists() for name in RUN_MARKERS)


CHECKPOINT_DIRS = ("checkpoint", "checkpoint-finetune")  # removed when their phase ends (trainer, detection)
BUNDLE_FILES = ("tfxray.json", "model.keras")  # models.bundle: written last, once training has finished
OOF_FILE = "oof_scores.csv"  # a cross-validation's last file (crossval.OOF_FILE)


def is_complete(folder: Path) -> bool:
    """A run that finished: its bundle is written and no phase's checkpoint is left (a training), or its
    out-of-fold scores are written (a cross-validation). Nothing is left to resume in it."""
    folder = Path(folder)
    if (folder / "folds.csv").is_file():
        return (folder / OOF_FILE).is_file()
    return all((folder / name).is_file() for name in BUNDLE_FILES) and not any(
        (folder / name).exists() for name in CHECKPOINT_DIRS)
