"""The chain end to end on a tiny data set, through the CLI: train, evaluate, score, gradcam."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tfxray.cli.main import cli


def test_run_directory_holds_what_scoring_needs(tiny_run):
    meta = json.loads((tiny_run / "tfxray.json").read_text())
    assert meta["classes"] == ["normal", "fracture"]
    assert meta["input_size"] == 48 and meta["channels"] == 1 and meta["backbone"] == "tiny_cnn"
    assert 0 <= meta["threshold"] <= 1 and "validation" in meta["threshold_rule"]
    assert (tiny_run / "model.keras").is_file() and (tiny_run / "recipe.yaml").is_file()
    history = pd.read_csv(tiny_run / "history.csv")
    assert list(history.epoch) == [1, 2] and {"loss", "val_loss", "auc", "lr"} <= set(history.columns)
    assert (tiny_run / "history.png").stat().st_size > 1000
    split = pd.read_csv(tiny_run / "split.csv", dtype={"patient_id": str})
    assert split.groupby("patient_id").split.nunique().max() == 1  # grouped by patient
    assert set(split.split) == {"train", "validation", "test"}
    assert not (tiny_run / "checkpoint").exists()  # removed once training finished


def test_cli_train_evaluate_score_gradcam(wrist_png, tmp_path):
    folder, manifest = wrist_png
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(
        cli,
        ["train", "demo", "--data", str(folder / "manifest.csv"), "--out", str(run), "--input-size", "48",
         "--epochs", "1", "--batch-size", "8", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    assert "run directory" in result.output

    again = runner.invoke(cli, ["train", "demo", "--data", str(folder / "manifest.csv"), "--out", str(run)])
    assert again.exit_code == 2 and "already exists" in again.output

    evaluation = tmp_path / "eval"
    result = runner.invoke(cli, ["evaluate", str(run), "--data", str(folder / "manifest.csv"), "--roc", "--out", str(evaluation)])
    assert result.exit_code == 0, result.output
    report = json.loads((evaluation / "report.json").read_text())
    assert 0 <= report["auc"] <= 1
    assert list(evaluation.glob("*.png"))

    scores = tmp_path / "scores.csv"
    result = runner.invoke(cli, ["score", str(run), str(folder / "images"), "--out", str(scores)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(scores)
    assert len(table) == len(manifest) and (table.status == "ok").all()

    panels = tmp_path / "panels"
    first = folder / manifest.path[0]
    result = runner.invoke(cli, ["gradcam", str(run), str(first), "--out", str(panels)])
    assert result.exit_code == 0, result.output
    assert len(list(panels.glob("*.png"))) == 1
