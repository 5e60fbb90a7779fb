"""`tfxray evaluate` through Click's CliRunner (the command object, without the group)."""

import json

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
    # --roc: the ROC figures only
    assert {p.name for p in out.glob("*.png")} == {"roc_image_s100b.png", "roc_image_wfns.png", "roc_image_all.png"}


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


def stub_run(tmp_path, monkeypatch, asah, evaluate_section=None):
    """A run directory holding only tfxray.json (its recipe's evaluate section), with the model's
    loading and scoring replaced by stubs (no TensorFlow): predict_manifest's contract is (table, info)."""
    import tfxray.scoring.predict as predict
    from tfxray.models.bundle import Bundle, load_meta

    calls = []

    def predict_manifest(bundle, manifest_path, **options):
        calls.append((bundle.path, manifest_path))
        table = pd.DataFrame({"path": [f"img{i}.png" for i in range(len(asah))], "label": asah["outcome"],
                              "patient_id": np.arange(len(asah)) // 2, "study_id": np.arange(len(asah)),
                              "score": asah["s100b"] / asah["s100b"].max()})
        return table, {"positive": "Poor", "threshold": 0.1, "classes": ["Good", "Poor"]}

    monkeypatch.setattr(predict, "predict_manifest", predict_manifest)
    monkeypatch.setattr(predict, "load_bundle", lambda run_dir: Bundle(None, load_meta(run_dir), run_dir))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    recipe = {"name": "stub", "data": {"task": "wrist"}}  # a field since removed: only evaluate is read
    if evaluate_section is not None:
        recipe["evaluate"] = evaluate_section
    meta = {"classes": ["Good", "Poor"], "input_size": 48, "channels": 1, "resize": "stretch",
            "backbone": "tiny_cnn", "threshold": 0.1, "recipe": recipe}
    (run_dir / "tfxray.json").write_text(json.dumps(meta))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label\n")
    return run_dir, manifest, calls


def patient_auc(asah, how):
    """The per-patient AUC computed apart: pandas groupby and scikit-learn."""
    from sklearn.metrics import roc_auc_score

    frame = pd.DataFrame({"patient": np.arange(len(asah)) // 2, "poor": asah["outcome"] == "Poor",
                          "score": asah["s100b"] / asah["s100b"].max()})
    grouped = frame.groupby("patient").agg(poor=("poor", "any"), score=("score", how))
    return roc_auc_score(grouped.poor, grouped.score)


def test_run_dir_mode_uses_the_models_threshold(asah, tmp_path, monkeypatch):
    run_dir, manifest, calls = stub_run(tmp_path, monkeypatch, asah)
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
    assert report["levels"]["patient"]["aggregate"] == "max"  # the recipe's (here the default), said in one line
    assert ("per patient: rows grouped by patient_id, each patient scored by the max of its images (from the run's"
            " recipe: evaluate.aggregate: max)") in result.output


def test_run_dir_recipe_asks_for_patient_level(asah, tmp_path, monkeypatch):
    run_dir, manifest, _ = stub_run(tmp_path, monkeypatch, asah, {"aggregate": "mean", "patient_level": True})
    out = tmp_path / "eval"
    result = run([run_dir, "--data", manifest, "--out", out, "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    line = ("per patient: rows grouped by patient_id, each patient scored by the mean of its images (from the run's"
            " recipe: evaluate.patient_level: true, evaluate.aggregate: mean)")
    assert result.output.count("from the run's recipe") == 1 and line in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["patient_column"] == "patient_id" and report["settings"]["aggregate"] == "mean"
    patient = report["levels"]["patient"]
    assert patient["n"] == len(asah) // 2 + len(asah) % 2
    assert patient["models"]["score"]["auc"] == pytest.approx(patient_auc(asah, "mean"), abs=1e-12)
    assert patient["models"]["score"]["auc"] != pytest.approx(patient_auc(asah, "max"), abs=1e-6)


@pytest.mark.parametrize("args", [["--aggregate", "max"], ["--patient-column", "study_id", "--aggregate", "max"]])
def test_run_dir_command_line_wins_over_the_recipe(asah, tmp_path, monkeypatch, args):
    run_dir, manifest, _ = stub_run(tmp_path, monkeypatch, asah, {"aggregate": "mean", "patient_level": True})
    out = tmp_path / "eval"
    result = run([run_dir, "--data", manifest, "--out", out, "--bootstrap", "200", *args])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["aggregate"] == "max"
    if "--patient-column" in args:  # both given: the recipe decided nothing
        assert report["settings"]["patient_column"] == "study_id" and report["levels"]["patient"]["n"] == len(asah)
        assert "from the run's recipe" not in result.output
    else:  # the recipe's patient level, the command line's aggregation
        assert report["settings"]["patient_column"] == "patient_id"
        assert "(from the run's recipe: evaluate.patient_level: true)" in result.output
        assert report["levels"]["patient"]["models"]["score"]["auc"] == pytest.approx(patient_auc(asah, "max"))


def test_run_dir_environment_wins_over_the_recipe(asah, tmp_path, monkeypatch):
    from tfxray.cli.main import cli

    run_dir, manifest, _ = stub_run(tmp_path, monkeypatch, asah, {"aggregate": "mean", "patient_level": True})
    out = tmp_path / "eval"
    result = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--data", str(manifest), "--out", str(out),
                                      "--bootstrap", "200"], env={"TFXRAY_EVALUATE_AGGREGATE": "noisy-or"})
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["aggregate"] == "noisy-or"
    expected = patient_auc(asah, lambda p: 1 - np.prod(1 - p))
    assert report["levels"]["patient"]["models"]["score"]["auc"] == pytest.approx(expected, abs=1e-12)


def test_run_dir_recipe_errors_are_one_line(asah, tmp_path, monkeypatch):
    run_dir, manifest, calls = stub_run(tmp_path, monkeypatch, asah, {"aggregate": "median"})
    result = run([run_dir, "--data", manifest, "--out", tmp_path / "eval"])
    assert isinstance(result.exception, UserError)
    assert "recipe.evaluate.aggregate: expected one of max, mean, noisy-or, got 'median'" in str(result.exception)
    assert "\n" not in str(result.exception) and not calls  # refused before any scoring


def test_scores_mode_draws_every_figure_without_roc(asah_csv, tmp_path):
    out = tmp_path / "eval"
    result = run(["--scores", asah_csv, *BASE, "--score-column", "s100b", "--out", out])
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.glob("*.png")}
    # s100b is not a probability (0.03-2.07): a precision-recall curve, but no decision or calibration curve;
    # the flow of cases is drawn in every report (not with --roc); every figure has its SVG
    assert names == {"roc_image_s100b.png", "scores_image_s100b.png", "confusion_image_s100b.png",
                     "pr_image_s100b.png", "flow.png"}
    assert {p.name for p in out.glob("*.svg")} == {n.replace(".png", ".svg") for n in names}
    assert "5 figures" in result.output


def test_help_shows_an_example():
    result = CliRunner().invoke(evaluate, ["--help"])
    assert result.exit_code == 0
    assert "tfxray evaluate --scores scores.csv" in result.output
    assert "Draw the ROC figures only" in " ".join(result.output.split())


@pytest.mark.parametrize("ci", ["delong", "bootstrap"])
def test_degenerate_ci_carries_a_caveat(tmp_path, ci):
    table = pd.DataFrame({"truth": ["n"] * 6 + ["f"] * 4, "s": [.1, .2, .3, .35, .4, .45, .6, .7, .8, .9]})
    table.to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "o"
    result = run(["--scores", tmp_path / "s.csv", "--label-column", "truth", "--positive", "f", "--score-column", "s",
                  "--out", out, "--roc", "--bootstrap", "200", "--ci", ci])
    assert result.exit_code == 0, result.output
    caveat = ("degenerate 95% CI 1.000-1.000: the scores separate all 4 cases from all 6 controls, where the CI has no"
              " width; it does not mean the AUC is known exactly (a small or easy test set cannot rule out a lower AUC"
              " on new images)")
    assert "s  AUC 1.000 (95% CI 1.000-1.000)" in result.output and f"caveat: {caveat}" in result.output
    assert f"> **Caveat**, s: {caveat}." in (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["levels"]["image"]["models"]["s"]["ci_caveat"] == caveat


def test_a_ci_with_width_has_no_caveat(asah_csv, tmp_path):
    result = run(["--scores", asah_csv, *BASE, "--score-column", "s100b", "--out", tmp_path / "o", "--roc"])
    assert result.exit_code == 0 and "caveat" not in result.output
    assert "Caveat" not in (tmp_path / "o" / "report.md").read_text()
