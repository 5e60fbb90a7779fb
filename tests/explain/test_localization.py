"""The localization check: reference boxes mapped into heatmap pixels, and ``tfxray gradcam --boxes``."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tfxray.cli.main import cli
from tfxray.data.geometry import ImageGeometry, boxes_to_input
from tfxray.explain.gradcam import Heatmap, explain_paths, localization
from tfxray.models.bundle import load_bundle


def test_boxes_follow_stretch_and_pad_resizing():
    box = np.array([[20, 10, 40, 30]])  # x1, y1, x2, y2 in a 100-row, 200-column image
    # stretch to 64 x 64: x scaled by 64/200, y by 64/100
    np.testing.assert_allclose(boxes_to_input(box, 100, 200, ImageGeometry(64)), [[6.4, 6.4, 12.8, 19.2]], rtol=1e-6)
    # pad: scaled by 64/200 on both axes, the 32-row image centred (16 rows of padding above)
    np.testing.assert_allclose(boxes_to_input(box, 100, 200, ImageGeometry(64, resize="pad")),
                               [[6.4, 19.2, 12.8, 25.6]], rtol=1e-6)


def test_localization_maps_each_box_to_its_heatmap(tiny_run):
    bundle = load_bundle(tiny_run)  # 48 px, stretch
    cam = np.zeros((48, 48), np.float32)
    cam[10, 20] = 1.0  # the maximum; a little mass elsewhere
    cam[40, 40] = 1.0 / 3
    heatmaps = [Heatmap(f"im{i}", np.zeros((48, 48, 1)), cam, 0.9, "fracture", source_size=(96, 192)) for i in range(3)]
    # image pixels -> heatmap pixels: x / 4, y / 2
    hit = np.array([[76, 18, 84, 22]])  # -> x 19..21, y 9..11: holds (10, 20)
    miss = np.array([[0, 0, 40, 40]])  # -> x 0..10, y 0..20
    summary, rows = localization(bundle, heatmaps, [hit, miss, np.zeros((0, 4))])
    assert summary["n"] == 2 and summary["hit_rate"] == 0.5  # the box-less image does not count
    assert summary["mass_in_box"] == pytest.approx((0.75 + 0.0) / 2)
    assert summary["chance"] == pytest.approx((3 * 3 + 11 * 21) / 48**2 / 2)
    assert [r["hit"] for r in rows] == [True, False] and [r["path"] for r in rows] == ["im0", "im1"]


def test_cli_reports_the_pointing_game(tiny_run, wrist_png, tmp_path):
    folder, manifest = wrist_png
    fractures = manifest[manifest["label"] == "fracture"].head(6).copy()
    fractures["path"] = [str(folder / p) for p in fractures["path"]]
    boxes_csv = tmp_path / "boxes.csv"
    fractures.to_csv(boxes_csv, index=False)

    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["gradcam", str(tiny_run), "--boxes", str(boxes_csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "pointing game" in result.output and len(list(out.glob("*_gradcam.png"))) == 6
    report = json.loads((out / "pointing_game.json").read_text())
    rows = pd.read_csv(out / "pointing_game.csv")

    bundle = load_bundle(tiny_run)
    heatmaps = explain_paths(bundle, list(fractures["path"]))
    boxes = [fractures.iloc[i][["x1", "y1", "x2", "y2"]].to_numpy(np.float32)[None] for i in range(len(fractures))]
    expected, _ = localization(bundle, heatmaps, boxes)
    assert report["n"] == 6 and len(rows) == 6
    for key in ("hit_rate", "mass_in_box", "chance"):
        assert report[key] == pytest.approx(expected[key], abs=1e-6), key
    assert rows["hit"].mean() == pytest.approx(report["hit_rate"])
    assert 0 < report["chance"] < 0.5  # a fracture box is a small part of the image

    # A box over the whole image: every maximum is inside, all the mass too.
    whole = fractures.assign(x1=0.0, y1=0.0, x2=63.0, y2=63.0)
    whole.to_csv(boxes_csv, index=False)
    result = CliRunner().invoke(cli, ["gradcam", str(tiny_run), str(folder), "--boxes", str(boxes_csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "pointing_game.json").read_text())
    assert report["n"] == 6  # IMAGES holds the whole folder; only the boxed images count
    assert report["hit_rate"] == 1.0 and report["chance"] == 1.0 and report["mass_in_box"] == pytest.approx(1.0)


def test_cli_boxes_errors(tiny_run, wrist_png, tmp_path):
    folder, manifest = wrist_png
    no_boxes = manifest[["path", "label"]].assign(path=[str(folder / p) for p in manifest["path"]])
    no_boxes.to_csv(tmp_path / "plain.csv", index=False)
    result = CliRunner().invoke(cli, ["gradcam", str(tiny_run), "--boxes", str(tmp_path / "plain.csv")])
    assert result.exit_code == 2 and "no boxes" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["gradcam", str(tiny_run)])
    assert result.exit_code == 2 and "IMAGES" in result.output
