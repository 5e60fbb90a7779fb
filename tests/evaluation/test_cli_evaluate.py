"""`tfxray evaluate` through Click's CliRunner (the command object, without the group)."""

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cli.evaluate import evaluate
from tfxray.errors import UserError

from .test_proc_reference import PROC_DELONG, PROC_PAIRED

BASE = ["--label-column", "outcome", "--positive", "Poor", "--bootstrap", "200"]


def run(args):
    return CliRunner().invoke(evaluate, [str(a) for a in args])


def test_scores_mode_on_asah(asah_csv, tmp_path):
    out = tmp_path / "eval"
    result = run(["--scores", asah_csv, *BASE, "--score-column", "s100b", "--score-column", "wfns", "--out", out,
                  "--roc"])
    assert result.exit_code == 0, result.output
    assert "s100b  AUC 0.731 (95% CI 0.630-0.833)" in result.output
    assert "Z -2.21" in result.output and "report.md" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["auc"] == pytest.approx(PROC_DELONG["s100b"][1], abs=1e-9)
    assert report["levels"]["image"]["comparisons"][0]["z"] == pytest.approx(PROC_PAIRED[("s100b", "wfns")][0])
    assert (out / "roc_image_s100b.png").is_file() and (out / "roc_image_all.png").is_file()


def test_threshold_rule_readers_and_patients(asah, tmp_path):
    table = asah.assign(patient=np.arange(len(asah)) // 2)
    table.to_csv(tmp_path / "scores.csv", index=False)
    pd.DataFrame({"name": ["R1"], "sensitivity": [0.7], "specificity": [0.8]}).to_csv(tmp_path / "readers.csv",
                                                                                      index=False)
    result = run(["--scores", tmp_path / "scores.csv", *BASE, "--score-column", "wfns", "--out", tmp_path / "o",
                  "--threshold", "specificity:0.9", "--patient-column", "patient", "--aggregate", "mean",
                  "--readers", tmp_path / "readers.csv", "--ci", "bootstrap", "--seed", "5"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["settings"]["threshold_rule"] == "specificity:0.9"
    assert report["levels"]["patient"]["models"]["wfns"]["operating_point"]["specificity"]["value"] >= 0.9
    assert report["readers"] == [{"name": "R1", "sensitivity": 0.7, "specificity": 0.8}]
    assert "patient level (mean by patient)" in result.output


@pytest.mark.parametrize("args, message", [
    (["--positive", "Bad"], "positive 'Bad' is not a value"),
    (["--score-column", "nope"], "score column 'nope': no such column"),
    (["--threshold", "sensitivity:95"], "proportion in (0, 1]"),
])
def test_user_errors(asah_csv, tmp_path, args, message):
    options = [*BASE, "--score-column", "s100b", "--out", tmp_path, *args]
    result = run(["--scores", asah_csv, *options])
    assert isinstance(result.exception, UserError), result.output
    assert message in str(result.exception)
    assert "\n" not in str(result.exception)


def test_written_nan_score_is_reported(asah, tmp_path):
    table = asah.astype({"s100b": object})
    table.loc[3, "s100b"] = "nan"
    table.to_csv(tmp_path / "s.csv", index=False)
    result = run(["--scores", tmp_path / "s.csv", *BASE, "--score-column", "s100b", "--out", tmp_path / "o"])
    assert isinstance(result.exception, UserError)
    assert "score column 's100b': NaN score in data row 4" in str(result.exception)


@pytest.mark.parametrize("args, message", [
    ([], "give either --scores"),
    (["--label-column", "outcome"], "give either --scores"),
])
def test_usage_errors(tmp_path, args, message):
    result = run([*args, "--out", tmp_path])
    assert result.exit_code == 2 and message in result.output


def test_model_threshold_needs_a_run(asah_csv, tmp_path):
    result = run(["--scores", asah_csv, *BASE, "--score-column", "s100b", "--out", tmp_path, "--threshold", "model"])
    assert result.exit_code == 2 and "needs RUN_DIR" in result.output


def test_run_dir_mode_uses_the_models_threshold(asah, tmp_path, monkeypatch):
    """predict_manifest is replaced by a stub (no TensorFlow): its contract is (table, info)."""
    calls = []

    def predict_manifest(run_dir, manifest_path):
        calls.append((run_dir, manifest_path))
        table = pd.DataFrame({"path": [f"img{i}.png" for i in range(len(asah))], "label": asah["outcome"],
                              "patient_id": np.arange(len(asah)) // 2, "study_id": np.arange(len(asah)),
                              "score": asah["s100b"] / asah["s100b"].max()})
        return table, {"positive": "Poor", "threshold": 0.1, "classes": ["Good", "Poor"]}

    fake = types.ModuleType("tfxray.scoring.predict")
    fake.predict_manifest = predict_manifest
    monkeypatch.setitem(sys.modules, "tfxray.scoring.predict", fake)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label\n")
    out = tmp_path / "eval"
    result = run([run_dir, "--data", manifest, "--roc", "--out", out, "--patient-column", "patient_id",
                  "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1
    report = json.loads((out / "report.json").read_text())
    model = report["levels"]["image"]["models"]["score"]
    assert model["threshold"] == {**model["threshold"], "value": 0.1, "rule": "model"}
    expected_tp = int(np.sum(asah["s100b"][asah["outcome"] == "Poor"] / asah["s100b"].max() >= 0.1))
    assert model["operating_point"]["tp"] == expected_tp
    assert report["auc"] == pytest.approx(PROC_DELONG["s100b"][1], abs=1e-9)  # scaling keeps the ranks
    assert (out / "scores.csv").is_file() and "patient" in report["levels"]


def test_help_shows_an_example():
    result = CliRunner().invoke(evaluate, ["--help"])
    assert result.exit_code == 0
    assert "tfxray evaluate --scores scores.csv" in result.output
