"""Roll-ups per study and per patient (max, mean, noisy-or) checked by hand from the per-file CSV,
and the end-of-run summary's content."""

import json
import math
import re
import shutil

import pandas as pd
import pytest

from tests.folder_helpers import BROKEN_PNG, copy_images
from tfxray.scoring.batch import rollup_path, score_folder


@pytest.fixture()
def inbox(tmp_path, wrist_png, wrist_dicom):
    """Six DICOMs (patient P0002 has three files, two of them in one study), four PNGs without IDs,
    two broken PNGs and a text file."""
    folder = tmp_path / "inbox"
    png_dir, png_manifest = wrist_png
    dcm_dir, dcm_manifest = wrist_dicom
    copy_images(png_dir, png_manifest.path[:4], folder / "png")
    copy_images(dcm_dir, dcm_manifest.path[:6], folder / "dicom", names=[f"IM{i:04d}" for i in range(6)])
    for name in ("broken1.png", "broken2.png"):
        (folder / name).write_bytes(BROKEN_PNG)
    (folder / "notes.txt").write_text("not an image")
    return folder


def by_hand(values: list[float], how: str) -> float:
    if how == "max":
        return max(values)
    if how == "mean":
        return sum(values) / len(values)
    return 1 - math.prod(1 - v for v in values)  # noisy-or


@pytest.mark.parametrize("how", ["max", "mean", "noisy-or"])
def test_rollups_equal_hand_computed_values(tiny_run, inbox, tmp_path, how):
    out = tmp_path / "scores.csv"
    summary = score_folder(tiny_run, inbox, out, aggregate=how, progress=False)
    assert summary.rollups == rollup_path(out) and summary.rollup_note == ""
    scores = pd.read_csv(out, keep_default_na=False, dtype=str)
    rollup = pd.read_csv(rollup_path(out), dtype={"id": str}, keep_default_na=False)
    threshold = json.loads((tiny_run / "tfxray.json").read_text())["threshold"]
    assert list(rollup.columns) == ["level", "id", "n_files", "score", "aggregate", "call"]
    assert (rollup["aggregate"] == how).all()  # ["..."]: .aggregate is a DataFrame method

    ok = scores[scores.status == "ok"]
    for level, column in (("study", "study_id"), ("patient", "patient_id")):
        groups = {}
        for key, value in zip(ok[column], ok.score):
            if key:  # PNGs carry no IDs: in no roll-up
                groups.setdefault(key, []).append(float(value))
        rows = rollup[rollup.level == level].set_index("id")
        assert sorted(rows.index) == sorted(groups)
        for key, values in groups.items():
            expected = by_hand(values, how)
            assert rows.loc[key, "n_files"] == len(values)
            assert rows.loc[key, "score"] == pytest.approx(expected, abs=2e-6)
            assert rows.loc[key, "call"] == ("fracture" if expected >= threshold else "normal")
    # the data really has groups of several files, so the three rules give different numbers
    assert rollup[rollup.level == "patient"].n_files.max() == 3
    assert rollup[rollup.level == "study"].n_files.max() == 2
    assert len(rollup) == 9  # 5 studies, 4 patients


def test_noisy_or_is_above_max_and_mean_below(tiny_run, inbox, tmp_path):
    """The same patient under the three rules: mean <= max <= noisy-or, strictly with several files."""
    patient = {}
    for how in ("max", "mean", "noisy-or"):
        out = tmp_path / f"{how}.csv"
        score_folder(tiny_run, inbox, out, aggregate=how, progress=False)
        rollup = pd.read_csv(rollup_path(out), dtype={"id": str})
        patient[how] = rollup[(rollup.level == "patient") & (rollup.n_files == 3)].score.item()
    assert patient["mean"] < patient["max"] < patient["noisy-or"]


def test_summary_lines(tiny_run, inbox, tmp_path):
    # a copy of the run whose threshold falls inside its scores here: some calls each way
    first = tmp_path / "first.csv"
    score_folder(tiny_run, inbox, first, progress=False)
    values = sorted(pd.read_csv(first).score.dropna())
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    meta = json.loads((run / "tfxray.json").read_text())
    meta["threshold"] = (values[6] + values[7]) / 2  # 3 of the 10 scores above it
    (run / "tfxray.json").write_text(json.dumps(meta))

    out = tmp_path / "scores.csv"
    summary = score_folder(run, inbox, out, progress=False)
    table = pd.read_csv(out, keep_default_na=False)
    assert (table.call == "fracture").sum() == 3
    lines = summary.lines()
    assert re.fullmatch(r"files: 13 \(already in the CSV: 0\); scored 10 image\(s\) \(\d+\.\d/s\), "
                        r"skipped 1, errors 2; positive calls: 3", lines[0]), lines[0]
    # errors by reason: both broken PNGs under one reason, their paths taken out of it
    reason = "cannot decode PNG: Pillow cannot identify it (a broken header?)"
    assert lines[1:] == [f"       2 x {reason}"]
    assert dict(summary.reasons) == {reason: 2}
    # the CSV keeps each file's reason beside its path
    errors = table[table.status == "error"]
    assert sorted(errors.path) == ["broken1.png", "broken2.png"]
    assert list(errors.error) == [reason, reason]

    # on --resume the summary counts what the CSV already held
    kept = out.read_text().splitlines(keepends=True)[:6]  # header and 5 rows: the last file is cut and redone
    out.write_text("".join(kept))
    resumed = score_folder(run, inbox, out, resume=True, progress=False)
    assert resumed.lines()[0].startswith("files: 13 (already in the CSV: 4); scored ")
    assert (resumed.files, resumed.errors + resumed.scored + resumed.skipped) == (9, 9)
