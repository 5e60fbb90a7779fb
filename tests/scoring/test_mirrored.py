"""MirroredStrategy scoring, on two logical CPU devices in a subprocess (devices must be split before TF starts)."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tfxray.models.bundle import load_bundle

from .helpers import reference_input


@pytest.mark.slow
def test_scores_split_across_two_devices_equal_the_model(tiny_run, wrist_png, tmp_path):
    png_dir, _ = wrist_png
    out = tmp_path / "scores.csv"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TFXRAY_SCORE_DEVICES": "/cpu:0,/cpu:1"}
    # batch 7 over 2 replicas: slices of 4 and 3, and a last batch of 61 % 7 = 5 files
    result = subprocess.run([sys.executable, "-m", "tfxray.cli.main", "score", str(tiny_run), str(png_dir),
                             "--out", str(out), "--batch-size", "7"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "predictions split across 2 devices (MirroredStrategy)" in result.stdout

    table = pd.read_csv(out, keep_default_na=False)
    ok = table[table.status == "ok"]
    assert len(ok) == 60 and table.path.is_unique
    bundle = load_bundle(tiny_run)
    images = np.stack([reference_input(png_dir / p, bundle.meta.input_size) for p in ok.path])
    expected = np.asarray(bundle.model(images, training=False))[:, 0]
    np.testing.assert_allclose(ok.score.astype(float), expected, atol=2e-4)


def test_bad_device_names_are_one_line_errors(tiny_run, wrist_png, tmp_path):
    from tfxray.errors import UserError
    from tfxray.scoring.batch import score_folder

    png_dir, _ = wrist_png
    with pytest.raises(UserError, match="not a device name"):
        score_folder(tiny_run, png_dir, tmp_path / "a.csv", devices="gpu zero", progress=False)
    with pytest.raises(UserError, match="no device /gpu:6 on this machine"):
        score_folder(tiny_run, png_dir, tmp_path / "b.csv", devices="/gpu:6,/gpu:7", progress=False)
