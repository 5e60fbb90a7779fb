"""Multi-frame files give one row per frame; frames are read one by one; whole files survive a crash."""

import shutil

import numpy as np
import pandas as pd
import pytest

import tfxray.data.inputs as inputs
from tfxray.models.bundle import load_bundle
from tfxray.scoring.batch import score_folder

from .helpers import pydicom_frames, pydicom_test_files, reference_input

# RT dose, a colour secondary capture, ultrasound: outside a radiograph model's training profile, so
# the tests score them with allow_modality (the frames are what they check)
MULTI = {"rtdose.dcm": 15, "SC_rgb_rle_2frame.dcm": 2, "examples_ybr_color.dcm": 30}


@pytest.fixture()
def mixed(tmp_path, wrist_png):
    folder = tmp_path / "in"
    (folder / "multi").mkdir(parents=True)
    for name in MULTI:
        shutil.copy(pydicom_test_files() / name, folder / "multi" / name)
    png_dir, manifest = wrist_png
    for path in manifest.path[:3]:
        shutil.copy(png_dir / path, folder / path.split("/")[-1])
    return folder


def test_one_scored_row_per_frame(tiny_run, mixed, tmp_path, monkeypatch):
    asked = []
    original = inputs.read_image

    def spy(path, **kwargs):
        asked.append(kwargs.get("frame"))
        return original(path, **kwargs)

    monkeypatch.setattr(inputs, "read_image", spy)
    out = tmp_path / "scores.csv"
    summary = score_folder(tiny_run, mixed, out, batch_size=7, progress=False, allow_modality=True)
    table = pd.read_csv(out, keep_default_na=False)

    assert None not in asked  # never the whole stack: one frame per read
    assert not table.duplicated(["path", "frame"]).any()
    for name, frames in MULTI.items():
        assert pydicom_frames(pydicom_test_files() / name) == frames  # pydicom's own count
        rows = table[table.path == f"multi/{name}"]
        assert list(rows.frame.astype(int)) == list(range(frames))
        assert (rows.status == "ok").all()
    singles = table[~table.path.str.startswith("multi/")]
    assert list(singles.frame.astype(int)) == [0, 0, 0]
    assert summary.scored == sum(MULTI.values()) + 3 and summary.multi_frame_files == len(MULTI)

    bundle = load_bundle(tiny_run)
    size = bundle.meta.input_size
    ok = table[table.status == "ok"]
    images = np.stack([reference_input(mixed / p, size, int(k)) for p, k in zip(ok.path, ok.frame)])
    expected = np.asarray(bundle.model(images, training=False))[:, 0]
    np.testing.assert_allclose(ok.score.astype(float), expected, atol=2e-4)
    rtdose = ok[ok.path == "multi/rtdose.dcm"].score.astype(float)
    assert rtdose.nunique() > 1  # the frames differ, so do their scores


def test_resume_cuts_a_multi_frame_file_written_in_part(tiny_run, mixed, tmp_path):
    out = tmp_path / "scores.csv"
    score_folder(tiny_run, mixed, out, batch_size=4, progress=False, allow_modality=True)
    full = pd.read_csv(out, keep_default_na=False)
    lines = out.read_text().splitlines(keepends=True)
    # a crash of the machine tore the last write: header, then rows up to the 6th frame of rtdose.dcm
    keep = 1 + int(np.flatnonzero((full.path == "multi/rtdose.dcm").to_numpy())[5])
    out.write_text("".join(lines[:keep]) + lines[keep][:9])
    score_folder(tiny_run, mixed, out, batch_size=4, resume=True, progress=False, allow_modality=True)
    resumed = pd.read_csv(out, keep_default_na=False)
    assert not resumed.duplicated(["path", "frame"]).any()
    assert len(resumed) == len(full)
    assert (resumed[resumed.path == "multi/rtdose.dcm"].frame.astype(int).sort_values() == range(15)).all()
    merged = resumed.set_index(["path", "frame"]).loc[list(zip(full.path, full.frame))]
    np.testing.assert_allclose(merged.score.astype(float), full.score.astype(float), atol=1e-6)
