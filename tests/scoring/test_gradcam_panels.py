"""`tfxray score --gradcam DIR`: a panel per scored image, named after its relative path, from the same CAMs."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from tfxray.cli.main import cli
from tfxray.explain.gradcam import compute_cams, panel_name
from tfxray.models.bundle import load_bundle
from tfxray.scoring.batch import score_folder

from .helpers import pydicom_test_files


@pytest.fixture()
def same_names(tmp_path, wrist_png):
    """a/b/IM0001 and a/c/IM0001 (different images, one name), and a 2-frame file (a colour secondary
    capture, outside the model's training profile: the tests that score it pass allow_modality)."""
    png_dir, manifest = wrist_png
    folder = tmp_path / "in"
    for i, sub in enumerate(["a/b", "a/c", "d"]):
        (folder / sub).mkdir(parents=True)
        shutil.copy(png_dir / manifest.path[i], folder / sub / "IM0001")
    shutil.copy(pydicom_test_files() / "SC_rgb_rle_2frame.dcm", folder / "d" / "two.dcm")
    return folder


def test_panel_names():
    assert panel_name("a/b/IM0001") == "a__b__IM0001_gradcam.png"
    assert panel_name("x.png", method="gradcam++") == "x.png_gradcam++.png"
    assert panel_name("d/two.dcm", frame=1) == "d__two.dcm_f1_gradcam.png"
    # parts that already hold "__" could meet: they get a hash of the path
    assert panel_name("a__b/c") != panel_name("a/b__c")
    assert panel_name("../x") != panel_name("up/x")


def test_score_writes_a_panel_per_image(tiny_run, same_names, tmp_path, monkeypatch, wrist_png):
    from tests.explain.helpers import capture_captions, panel_parts, shrunk

    captions = capture_captions(monkeypatch)
    out, panels = tmp_path / "scores.csv", tmp_path / "panels"
    summary = score_folder(tiny_run, same_names, out, batch_size=3, gradcam_dir=panels, progress=False, allow_modality=True)
    table = pd.read_csv(out, keep_default_na=False)
    expected = {"a__b__IM0001_gradcam.png", "a__c__IM0001_gradcam.png", "d__IM0001_gradcam.png",
                "d__two.dcm_f0_gradcam.png", "d__two.dcm_f1_gradcam.png"}
    assert {p.name for p in panels.iterdir()} == expected
    assert summary.panels == len(table[table.status == "ok"]) == 5
    width, height = Image.open(panels / "a__b__IM0001_gradcam.png").size
    assert width > height > 200  # radiograph | overlay

    # each caption names the file (and frame) and shows the CSV's score and call for that row
    assert set(captions) == expected
    for row in table.itertuples():
        multi = row.path.endswith(".dcm")
        caption = captions[panel_name(row.path, int(row.frame) if multi else None)]
        name, score, call = caption.split("   ")
        assert name == row.path + (f" [frame {row.frame}]" if multi else "")
        assert float(score.removeprefix("score ")) == pytest.approx(float(row.score), abs=5e-4 + 1e-6)
        assert call == f"call: {row.call}"
    # the left half is the scored radiograph: a/b/IM0001 is a copy of the wrist set's first PNG
    radiograph, _, _ = panel_parts(panels / "a__b__IM0001_gradcam.png")
    png_dir, manifest = wrist_png
    original = np.asarray(Image.open(png_dir / manifest.path[0]), dtype=np.float64) / 65535
    assert np.abs(shrunk(radiograph) - shrunk(original)).mean() < 0.02


def test_only_positives(tiny_run, same_names, tmp_path):
    # a copy of the run whose threshold falls between its scores here: some calls each way
    first = tmp_path / "first.csv"
    score_folder(tiny_run, same_names, first, progress=False, allow_modality=True)
    scores = np.sort(pd.read_csv(first).score.dropna().to_numpy())
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    meta = json.loads((run / "tfxray.json").read_text())
    meta["threshold"] = float((scores[1] + scores[2]) / 2)
    (run / "tfxray.json").write_text(json.dumps(meta))

    out, panels = tmp_path / "scores.csv", tmp_path / "panels"
    score_folder(run, same_names, out, gradcam_dir=panels, gradcam_only_positives=True, progress=False,
                 allow_modality=True)
    table = pd.read_csv(out, keep_default_na=False)
    positive = table[(table.status == "ok") & (table.score.astype(float) >= meta["threshold"])]
    assert len(positive) == 3 and (positive.call == "fracture").all()
    names = {panel_name(p, int(f) if p.endswith(".dcm") else None) for p, f in zip(positive.path, positive.frame)}
    assert {p.name for p in panels.iterdir()} == names


def test_score_panels_use_the_same_cams_as_gradcam(tiny_run, same_names, tmp_path, monkeypatch):
    import tfxray.explain.gradcam as gradcam

    seen = {}
    original = gradcam.save_panel

    def keep(heatmap, path, box=None):
        seen[path.name] = heatmap
        return original(heatmap, path, box)

    monkeypatch.setattr(gradcam, "save_panel", keep)
    score_folder(tiny_run, same_names, tmp_path / "s.csv", batch_size=4, gradcam_dir=tmp_path / "p", progress=False,
                 allow_modality=True)
    bundle = load_bundle(tiny_run)
    heatmap = seen["a__c__IM0001_gradcam.png"]
    alone = compute_cams(bundle, heatmap.image[None])[0]  # one image, one gradient computation
    np.testing.assert_allclose(heatmap.cam, alone, atol=1e-4)
    assert heatmap.path == "a/c/IM0001" and heatmap.frame is None
    assert seen["d__two.dcm_f1_gradcam.png"].frame == 1


def test_gradcam_command_keeps_same_named_files_apart(tiny_run, same_names, tmp_path):
    out = tmp_path / "g"
    result = CliRunner().invoke(cli, ["gradcam", str(tiny_run), str(same_names / "a"), str(same_names / "d" / "IM0001"),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a__b__IM0001_gradcam.png", "a__c__IM0001_gradcam.png",
                                                      "d__IM0001_gradcam.png"]
    assert "wrote 3 panel(s)" in result.output


def test_score_cli_gradcam_only_positives_needs_gradcam(tiny_run, same_names, tmp_path):
    result = CliRunner().invoke(cli, ["score", str(tiny_run), str(same_names), "--out", str(tmp_path / "s.csv"),
                                      "--gradcam-only-positives"])
    assert result.exit_code == 2 and "needs --gradcam" in result.output
