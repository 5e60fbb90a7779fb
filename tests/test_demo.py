"""``tfxray demo`` writes every piece a newcomer is told about (tiny and short here)."""

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from tfxray.cli.main import cli


@pytest.mark.slow
def test_demo_runs_the_whole_job(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--n", "60", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert 0 <= report["auc"] <= 1 and report["auc_ci95"][0] <= report["auc"] <= report["auc_ci95"][1]
    assert report["scoring"]["errors"] == 1 and report["scoring"]["skipped"] == 1  # the broken file and the note
    assert report["scoring"]["scored"] == report["n_test_images"]
    # Every test fracture is checked; a fracture box is a small share of the image (chance).
    # (The full demo, 500 images and 20 epochs, hits 100% of 27 at chance 2%: too slow for here.)
    pointing = report["pointing_game"]
    assert pointing["n"] == len(pd.read_csv(out / "test_manifest.csv").query("label == 'fracture'"))
    assert 0 < pointing["chance"] < 0.1 and 0 <= pointing["mass_in_box"] <= 1
    for path in [report["files"]["history_png"], report["files"]["scores_csv"], *report["files"]["gradcam_panels"]]:
        assert Path(path).is_file(), path
    assert (out / "evaluation" / "roc_image_score.png").stat().st_size > 5000
    markdown = (out / "report.md").read_text()
    assert "test AUC" in result.output and markdown.startswith("# tfxray demo report")
    # the report links its figures and files, relative to its folder, and every link resolves
    import re

    links = re.findall(r"\]\(([^)]+)\)", markdown)
    assert "evaluation/roc_image_score.png" in links and "run/history.png" in links and "scores.csv" in links
    assert all((out / link).is_file() for link in links), links


@pytest.mark.slow  # two detector trainings of one epoch on a few phantoms: about a minute
def test_pelvis_demo_writes_the_protocol_in_small(tmp_path):
    out = tmp_path / "pelvis"
    result = CliRunner().invoke(cli, ["demo", "--task", "pelvis", "--out", str(out), "--n", "60", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["scoring"]["errors"] == 1 and report["scoring"]["skipped"] == 1  # the broken file and the note
    assert report["scoring"]["scored"] == report["n_test_images"]
    test = pd.read_csv(out / "femoral-neck" / "test.csv")
    assert report["n_test_images"] == test["path"].nunique()
    assert 0 <= report["box_recall_random_boxes"] <= 1 and set(report["comparison"]) >= {"auc"}
    mined = pd.read_csv(report["files"]["mined_csv"])
    assert len(mined) == report["mined"]["images"] and set(mined["kind"]) <= {"hard positive"}
    boxes = pd.read_csv(report["files"]["boxes_csv"])
    assert list(boxes.columns) == ["path", "frame", "x1", "y1", "x2", "y2", "score", "class"]
    markdown = (out / "report.md").read_text()
    import re

    links = re.findall(r"\]\(([^)]+)\)", markdown)
    assert any(link.endswith("froc.png") for link in links)
    assert all((out / link).is_file() for link in links), links
