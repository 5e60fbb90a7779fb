"""`tfxray score` exit codes: 0 all scored, 1 some failed (0 with --allow-errors), 2 usage errors."""

import io
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.folder_helpers import copy_images
from tfxray.cli.main import cli


@pytest.fixture()
def good_folder(tmp_path, wrist_png):
    """Three wrist PNGs and a text file named .dcm (not an image: skipped, not an error)."""
    png_dir, manifest = wrist_png
    folder = copy_images(png_dir, manifest.path[:3], tmp_path / "good")
    (folder / "readme.dcm").write_text("exported by hand, not DICOM")
    return folder


@pytest.fixture()
def bad_folder(tmp_path, good_folder):
    """The good folder plus a PNG cut in half: the one error."""
    folder = tmp_path / "bad"
    shutil.copytree(good_folder, folder)
    buffer = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype("uint8")).save(buffer, "PNG")
    (folder / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return folder


def score(run, folder, out, *extra):
    return CliRunner().invoke(cli, ["score", str(run), str(folder), "--out", str(out), *extra])


def test_exit_0_when_every_image_is_scored(tiny_run, good_folder, tmp_path):
    result = score(tiny_run, good_folder, tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)
    assert sorted(table.status) == ["ok", "ok", "ok", "skipped"]  # a skipped non-image is no failure
    skipped = table[table.status == "skipped"].iloc[0]
    assert skipped.path == "readme.dcm" and skipped.error.startswith("not an image file")
    assert "skipped 1, errors 0" in result.output


def test_exit_1_when_a_file_fails_and_0_with_allow_errors(tiny_run, bad_folder, tmp_path):
    result = score(tiny_run, bad_folder, tmp_path / "s.csv")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    table = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)
    assert len(table) == 5 and table.path.is_unique
    broken = table[table.path == "truncated.png"].iloc[0]
    assert broken.status == "error"
    assert broken.error == "cannot decode PNG: OSError: image file is truncated"
    assert broken.score == "" and broken.call == ""
    assert list(table[table.path != "truncated.png"].status) == ["ok", "ok", "ok", "skipped"]
    assert re.search(r"scored 3 image\(s\) .*skipped 1, errors 1;", result.output)
    assert "1 x cannot decode PNG: OSError: image file is truncated" in result.output

    allowed = score(tiny_run, bad_folder, tmp_path / "s2.csv", "--allow-errors")
    assert allowed.exit_code == 0, allowed.output
    again = pd.read_csv(tmp_path / "s2.csv", keep_default_na=False)
    assert list(again.status) == list(table.status)


@pytest.mark.parametrize("extra, message", [
    (["--shard", "5/4"], "--shard 5/4: I must be between 1 and N"),
    (["--shard", "half"], "--shard half: expected I/N"),
    (["--batch-size", "0"], "--batch-size: must be at least 1"),
    (["--hash-ids"], "--hash-ids needs a salt"),
    (["--aggregate", "median"], "Invalid value for '--aggregate'"),
])
def test_usage_errors_exit_2(tiny_run, good_folder, tmp_path, monkeypatch, extra, message):
    monkeypatch.delenv("TFXRAY_ID_SALT", raising=False)
    result = score(tiny_run, good_folder, tmp_path / "s.csv", *extra)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "s.csv").exists()  # refused before any row was written


def test_existing_out_without_resume_exits_2(tiny_run, good_folder, tmp_path):
    out = tmp_path / "s.csv"
    out.write_text("path\n")
    result = score(tiny_run, good_folder, out)
    assert result.exit_code == 2 and "already exists (use --resume" in result.output
    assert out.read_text() == "path\n"  # left as it was
