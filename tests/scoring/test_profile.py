"""Images a model was never meant to see: the training profile saved in tfxray.json, and `tfxray score`,
`tfxray inspect --run` skipping (flagging) what lies outside it."""

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pydicom
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.folder_helpers import copy_images
from tfxray.cli.main import cli
from tfxray.data.profile import training_profile

from .helpers import pydicom_test_files

PNG_TRAINED = "model trained on radiographs (png files)"
# pydicom test file -> why tiny_run (trained on 64 px PNG phantoms, 48 px inputs) skips it
OUTSIDE = {
    "CT_small.dcm": f"modality CT, {PNG_TRAINED}",
    "MR_small.dcm": f"modality MR, {PNG_TRAINED}",
    "examples_rgb_color.dcm": f"modality US, {PNG_TRAINED}",
    "rtdose_1frame.dcm": f"modality RTDOSE, {PNG_TRAINED}",
    "liver_1frame.dcm": f"modality SEG, {PNG_TRAINED}",
}
RASTERS = {  # written by the test
    "tiny.png": "image 3x3 px, model trained on 64 px (shorter side under 24 px)",
    "colour.png": "photometric RGB, model trained on MONOCHROME2",
}


@pytest.fixture()
def mixed(tmp_path, wrist_png):
    """Two phantoms the model was trained for, and the files it was not."""
    folder = tmp_path / "inbox"
    png_dir, manifest = wrist_png
    copy_images(png_dir, manifest.path[:2], folder / "wrist")
    copy_images(pydicom_test_files(), OUTSIDE, folder / "other")
    Image.fromarray(np.full((3, 3), 200, np.uint8)).save(folder / "tiny.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(folder / "colour.png")
    return folder


def score(*args):
    return CliRunner().invoke(cli, ["score", *map(str, args)])


def reasons_of(csv_path) -> dict:
    table = pd.read_csv(csv_path, keep_default_na=False)
    return {path: (status, error) for path, status, error in zip(table.path, table.status, table.error)}


def test_run_saves_the_profile_of_its_training_images(tiny_run):
    meta = json.loads((tiny_run / "tfxray.json").read_text())
    split = pd.read_csv(tiny_run / "split.csv")
    train = split[split.split == "train"].path.unique()
    sizes = [Image.open(p).size for p in train]  # (width, height), read apart from tfxray
    assert meta["trained_on"] == {
        "images": len(train), "unreadable": 0, "modalities": [], "photometric": ["MONOCHROME2"],
        "view_positions": [], "kinds": ["png"],
        "rows": [min(h for _, h in sizes), max(h for _, h in sizes)],
        "cols": [min(w for w, _ in sizes), max(w for w, _ in sizes)],
    }


def test_dicom_profile_from_headers(wrist_dicom):
    folder, manifest = wrist_dicom
    paths = [str(folder / p) for p in manifest.path]
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    profile = training_profile(paths + paths[:3])  # an image listed twice (several boxes) counts once
    assert profile["images"] == len(paths)
    assert profile["modalities"] == sorted({h.Modality for h in headers}) == ["DX"]
    assert profile["photometric"] == sorted({h.PhotometricInterpretation for h in headers})
    assert profile["view_positions"] == sorted({h.ViewPosition for h in headers})
    assert profile["kinds"] == ["dicom"]
    assert profile["rows"] == [min(h.Rows for h in headers), max(h.Rows for h in headers)]


def test_score_skips_what_the_model_never_saw(tiny_run, mixed, tmp_path):
    result = score(tiny_run, mixed, "--out", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output  # a skip is no error
    rows = reasons_of(tmp_path / "s.csv")
    expected = {f"other/{name}": ("skipped", reason) for name, reason in OUTSIDE.items()}
    expected.update({name: ("skipped", reason) for name, reason in RASTERS.items()})
    assert {p: rows[p] for p in expected} == expected
    assert [rows[p][0] for p in rows if p.startswith("wrist/")] == ["ok", "ok"]
    assert "scored 2 image(s)" in result.output and "skipped 7" in result.output
    assert "skipped outside the model's training profile: 7 (--allow-modality scores them anyway)" in result.output
    assert f"     1 x modality CT, {PNG_TRAINED}" in result.output

    allowed = score(tiny_run, mixed, "--out", tmp_path / "all.csv", "--allow-modality")
    assert allowed.exit_code == 0, allowed.output
    assert {status for status, _ in reasons_of(tmp_path / "all.csv").values()} == {"ok"}
    assert "training profile" not in allowed.output


def test_a_dicom_trained_profile_names_its_modalities(tiny_run, wrist_dicom, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    folder, manifest = wrist_dicom
    meta = json.loads((run / "tfxray.json").read_text())
    meta["trained_on"] = training_profile([str(folder / p) for p in manifest.path])
    (run / "tfxray.json").write_text(json.dumps(meta))
    inbox = copy_images(folder, manifest.path[:1], tmp_path / "inbox", names=["IM0001"])
    copy_images(pydicom_test_files(), ["CT_small.dcm", "dicomdirtests/77654033/CR1/6154"], inbox)
    result = score(run, inbox, "--out", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    assert reasons_of(tmp_path / "s.csv") == {
        "IM0001": ("ok", ""), "CT_small.dcm": ("skipped", "modality CT, model trained on DX"),
        "6154": ("skipped", "modality CR, model trained on DX")}


def test_a_run_without_a_profile_scores_everything_and_says_so_once(tiny_run, mixed, tmp_path):
    run = tmp_path / "old-run"
    shutil.copytree(tiny_run, run)
    meta = json.loads((run / "tfxray.json").read_text())
    del meta["trained_on"]  # as runs saved before the profile
    (run / "tfxray.json").write_text(json.dumps(meta))
    result = score(run, mixed, "--out", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    assert {status for status, _ in reasons_of(tmp_path / "s.csv").values()} == {"ok"}
    assert result.output.count("saved without a training profile") == 1


def test_inspect_with_a_run_flags_the_same_files(tiny_run, mixed, tmp_path):
    out = tmp_path / "audit.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(cli, ["inspect", str(mixed), "--run", str(tiny_run), "--out", str(out),
                                          "--no-progress"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, keep_default_na=False)
    flagged = dict(zip(table.path, table.outside_profile))
    assert {p: r for p, r in flagged.items() if r} == {**{f"other/{n}": r for n, r in OUTSIDE.items()}, **RASTERS}
    assert "outside the model's training profile (scoring skips them): 7" in result.output
    strict = CliRunner().invoke(cli, ["inspect", str(mixed), "--run", str(tiny_run), "--out", str(out),
                                      "--no-progress", "--strict"])
    assert strict.exit_code == 1


def test_gradcam_leaves_them_out_too(tiny_run, mixed, tmp_path):
    result = CliRunner().invoke(cli, ["gradcam", str(tiny_run), str(mixed / "wrist"), str(mixed / "other" / "CT_small.dcm"),
                                      "--out", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    assert (f"left out 1 file(s) that hold no image, cannot be read or lie outside the model's training profile:"
            f" {mixed / 'other' / 'CT_small.dcm'}: modality CT, {PNG_TRAINED}") in result.output
    assert "wrote 2 panel(s)" in result.output
    allowed = CliRunner().invoke(cli, ["gradcam", str(tiny_run), str(mixed / "other" / "CT_small.dcm"), "--out",
                                       str(tmp_path / "a"), "--allow-modality"])
    assert allowed.exit_code == 0 and "wrote 1 panel(s)" in allowed.output
