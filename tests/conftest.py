"""Shared fixtures: tiny synthetic data sets, quiet TensorFlow."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # The workers share the machine's cores: one TensorFlow thread per op in each (and in the commands the
    # tests start) runs the suite about 15% faster than every worker spreading each op over every core.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["TFXRAY_CACHE"] = tempfile.mkdtemp(prefix="tfxray-test-cache-")  # never the user's cache
atexit.register(shutil.rmtree, os.environ["TFXRAY_CACHE"], ignore_errors=True)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def wrist_png(tmp_path_factory):
    """60 small wrist phantoms (PNG, 64 px) with manifest.csv: the easy mix (no subtle fractures, no
    overlapping structures), which a two-epoch model (``tiny_run``) learns enough for Grad-CAM to point."""
    from tfxray.data.synth import synthesize

    folder = tmp_path_factory.mktemp("wrist_png")
    manifest = synthesize(folder, task="wrist", n=60, seed=1, fmt="png", size=64, difficulty="easy", progress=False)
    return folder, manifest


@pytest.fixture(scope="session")
def wrist_dicom(tmp_path_factory):
    from tfxray.data.synth import synthesize

    folder = tmp_path_factory.mktemp("wrist_dicom")
    manifest = synthesize(folder, task="wrist", n=24, seed=2, fmt="dicom", size=64, progress=False)
    return folder, manifest


@pytest.fixture(scope="session")
def tiny_run(wrist_png, tmp_path_factory):
    """A tiny_cnn trained for two epochs on the 60-image wrist set (48 px)."""
    from tests.chain_helpers import tiny_recipe
    from tfxray.data.manifest import load_manifest
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe()
    run_dir = tmp_path_factory.mktemp("tiny_run")
    train(recipe, load_manifest(folder / "manifest.csv", classes=recipe.classes), run_dir, verbose=0)
    return run_dir
