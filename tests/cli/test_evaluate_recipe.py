"""`tfxray evaluate RUN_DIR --data MANIFEST` takes the per-patient evaluation from the run's recipe."""

import json
import shutil

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from tfxray.cli.main import cli


def with_evaluate_section(tiny_run, tmp_path, **evaluate):
    """A copy of the tiny run whose saved recipe (tfxray.json and recipe.yaml) has ``evaluate`` changed."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    meta = json.loads((run / "tfxray.json").read_text())
    meta["recipe"]["evaluate"].update(evaluate)
    (run / "tfxray.json").write_text(json.dumps(meta))
    (run / "recipe.yaml").write_text(yaml.safe_dump(meta["recipe"], sort_keys=False))
    return run


def per_patient_auc(scores: pd.DataFrame, how: str, direction: str) -> float:
    patients = scores.groupby("patient_id").agg(fracture=("label", lambda v: (v == "fracture").any()),
                                                score=("score", how))
    auc = roc_auc_score(patients.fracture, patients.score)
    return 1 - auc if direction == ">" else auc


def test_recipe_patient_level_and_aggregate(tiny_run, wrist_png, tmp_path):
    folder, _ = wrist_png
    run = with_evaluate_section(tiny_run, tmp_path, patient_level=True, aggregate="mean")
    out = tmp_path / "eval"
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--data", str(folder / "manifest.csv"), "--out", str(out),
                                      "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    assert ("per patient: rows grouped by patient_id, each patient scored by the mean of its images (from the run's"
            " recipe: evaluate.patient_level: true, evaluate.aggregate: mean)") in result.output
    report = json.loads((out / "report.json").read_text())
    scores = pd.read_csv(out / "scores.csv", dtype={"patient_id": str})
    patient = report["levels"]["patient"]
    assert patient["aggregate"] == "mean" and patient["n"] == scores.patient_id.nunique() < len(scores)
    model = patient["models"]["score"]
    assert model["auc"] == pytest.approx(per_patient_auc(scores, "mean", model["direction"]), abs=1e-12)

    # the command line wins over the recipe
    out = tmp_path / "eval-max"
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--data", str(folder / "manifest.csv"), "--out", str(out),
                                      "--bootstrap", "200", "--aggregate", "max"])
    assert result.exit_code == 0, result.output
    model = json.loads((out / "report.json").read_text())["levels"]["patient"]["models"]["score"]
    assert model["auc"] == pytest.approx(per_patient_auc(scores, "max", model["direction"]), abs=1e-12)


def test_image_level_only_when_the_recipe_says_nothing(tiny_run, wrist_png, tmp_path):
    folder, _ = wrist_png
    out = tmp_path / "eval"
    result = CliRunner().invoke(cli, ["evaluate", str(tiny_run), "--data", str(folder / "manifest.csv"), "--out",
                                      str(out), "--bootstrap", "200", "--roc"])
    assert result.exit_code == 0, result.output
    assert "per patient" not in result.output
    assert list(json.loads((out / "report.json").read_text())["levels"]) == ["image"]
    assert {p.name for p in out.glob("*.png")} == {"roc_image_score.png"}  # --roc: the ROC figures only
