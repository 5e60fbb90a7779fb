"""Scoring pydicom's whole test-files folder: a row per file (per frame), every decodable file ok, no crash."""

import warnings

import pandas as pd
import pytest

from tfxray.scoring.batch import score_folder

from .helpers import pydicom_frames, pydicom_test_files

FOLDER = pydicom_test_files()


@pytest.mark.skipif(not FOLDER.is_dir(), reason="pydicom test files not installed")
def test_score_every_pydicom_test_file(tiny_run, tmp_path):
    out = tmp_path / "scores.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the reader's test: every modality scored (the training-profile check is tests/scoring/test_profile.py's)
        summary = score_folder(tiny_run, FOLDER, out, batch_size=16, progress=False, allow_modality=True)
    table = pd.read_csv(out, keep_default_na=False, dtype={"frame": str})
    files = sorted(p.relative_to(FOLDER).as_posix() for p in FOLDER.rglob("*") if p.is_file())

    assert sorted(table.path.unique()) == files  # every file, hidden by nothing
    assert not table.duplicated(["path", "frame"]).any()
    assert table.status.isin(["ok", "error", "skipped"]).all()
    assert (table.error[table.status != "ok"] != "").all() and not table.error.str.contains("\n").any()

    decodable = 0
    for name in files:
        rows = table[table.path == name]
        frames = pydicom_frames(FOLDER / name)
        if frames is None:  # pydicom cannot decode it: one row, an error or a skip with its reason
            assert len(rows) == 1 and rows.status.iloc[0] != "ok", name
            continue
        decodable += 1
        assert (rows.status == "ok").all(), (name, rows.error.tolist())
        assert sorted(rows.frame.astype(int)) == list(range(frames)), name
        assert rows.score.astype(float).between(0, 1).all()
    assert decodable >= 60  # the corpus is really there
    assert summary.scored == (table.status == "ok").sum()
    # the known broken and non-image files: errors and skips
    status = table.groupby("path").status.first()
    assert status["MR_truncated.dcm"] == "error"
    assert status["dicomdirtests/DICOMDIR"] == "skipped" and status["README.txt"] == "skipped"
    assert status["rtplan.dcm"] == "skipped"  # DICOM without pixel data is not an image
