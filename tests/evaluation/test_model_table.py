"""What the CLI (and the demo) give evaluate_table: CSV tables, a model's info, the recipe's patient level."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfxray.errors import UserError
from tfxray.evaluation.aggregate import AGGREGATORS
from tfxray.evaluation.choices import AGGREGATIONS
from tfxray.evaluation.model_table import PatientLevel, model_arguments, patient_level
from tfxray.evaluation.report import evaluate_table, write_report
from tfxray.evaluation.table import read_readers_csv, read_scores_csv

ROOT = Path(__file__).resolve().parents[2]


def test_model_arguments_fill_what_the_user_left_open():
    info = {"positive": "fracture", "classes": ["normal", "fracture"], "threshold": 0.37,
            "threshold_rule": "youden on the validation split"}
    assert model_arguments(info) == {"label_column": "label", "positive": "fracture", "score_columns": ["score"],
                                     "classes": None, "threshold": "model", "model_threshold": 0.37,
                                     "model_threshold_rule": "youden on the validation split",
                                     "direction": "higher"}  # a model's score is higher = positive
    assert model_arguments(info, direction="auto")["direction"] == "auto"  # unless the user asks
    given = model_arguments(info, label_column="truth", positive="broken", threshold="youden")
    assert (given["label_column"], given["positive"], given["threshold"]) == ("truth", "broken", "youden")
    assert given["model_threshold"] == 0.37
    assert model_arguments(info, positive="fracture")["positive"] == "fracture"  # the model's own: fine


def test_positive_that_contradicts_the_model_is_refused():
    info = {"positive": "fracture", "classes": ["normal", "fracture"], "threshold": 0.37}
    with pytest.raises(UserError) as caught:
        model_arguments(info, positive="normal")
    assert str(caught.value) == ("--positive normal: the model's positive class is fracture (its score is the"
                                 " probability of fracture); leave --positive out or give --positive fracture")


def test_models_arguments_keep_each_threshold_and_refuse_other_classes():
    from tfxray.evaluation.model_table import models_arguments

    a = {"positive": "fracture", "classes": ["normal", "fracture"], "threshold": 0.3, "threshold_rule": "youden on the validation split"}
    b = {**a, "threshold": 0.6, "threshold_rule": "fixed 0.5 (no validation split)"}
    arguments = models_arguments({"run_a": a, "run_b": b})
    assert arguments["score_columns"] == ["run_a", "run_b"] and arguments["positive"] == "fracture"
    assert arguments["model_threshold"] == {"run_a": 0.3, "run_b": 0.6}
    with pytest.raises(UserError, match="run_b: classes fracture/normal differ from run_a's normal/fracture"):
        models_arguments({"run_a": a, "run_b": {**b, "classes": ["fracture", "normal"], "positive": "normal"}})
    with pytest.raises(UserError, match="--positive normal: run_b's positive class is fracture"):
        models_arguments({"run_b": b, "run_a": a}, positive="normal")


def test_model_arguments_multiclass():
    info = {"positive": "c", "classes": ["a", "b", "c"], "threshold": 0.5}
    arguments = model_arguments(info)
    assert arguments["score_columns"] == ["score_a", "score_b", "score_c"]
    assert arguments["classes"] == ["a", "b", "c"] and arguments["positive"] is None


@pytest.mark.parametrize("given, recipe, expected", [
    # (patient_column, aggregate), (recipe patient_level, recipe aggregate), (column, aggregate, note says)
    ((None, None), (False, "mean"), (None, "mean", "")),
    ((None, None), (True, "mean"), ("patient_id", "mean", "evaluate.patient_level: true, evaluate.aggregate: mean)")),
    ((None, "max"), (True, "mean"), ("patient_id", "max", "evaluate.patient_level: true)")),
    (("study_id", None), (True, "noisy-or"), ("study_id", "noisy-or", "evaluate.aggregate: noisy-or)")),
    (("study_id", "mean"), (True, "max"), ("study_id", "mean", "")),
    ((None, None), (False, None), (None, "max", "")),
    (("study_id", None), (False, None), ("study_id", "max", "")),  # no recipe (a scores table): the default
])
def test_patient_level_precedence(given, recipe, expected):
    level = patient_level(*given, recipe_patient_level=recipe[0], recipe_aggregate=recipe[1])
    assert (level.column, level.aggregate) == expected[:2]
    if expected[2]:
        assert level.note.endswith(expected[2]) and "from the run's recipe" in level.note
        assert level.note.startswith(f"per patient: rows grouped by {expected[0]}, each patient scored by the"
                                     f" {expected[1]} of its images")
    else:
        assert level.note == ""


def test_recipe_patient_level_needs_the_patient_column():
    with pytest.raises(UserError, match="evaluate.patient_level: true.*no patient_id column"):
        patient_level(recipe_patient_level=True, recipe_aggregate="max", columns=["path", "label", "score"])
    assert patient_level(recipe_patient_level=True, columns=["patient_id"]) == PatientLevel(
        "patient_id", "max", "per patient: rows grouped by patient_id, each patient scored by the max of its images"
        " (from the run's recipe: evaluate.patient_level: true)")


def test_read_scores_csv_only_empty_cells_are_missing(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("label,a,b\n1,0.5,\n0,nan,0.25\n")
    table = read_scores_csv(path)
    assert table["a"].tolist() == ["0.5", "nan"]  # a written NaN stays text, so it is reported
    assert np.isnan(table["b"].iloc[0]) and table["b"].iloc[1] == 0.25
    with pytest.raises(UserError, match="score column 'a': NaN score in data row 2"):
        evaluate_table(table, label_column="label", positive=1, score_columns=["a"], n_bootstrap=100)


@pytest.mark.parametrize("reader", [read_scores_csv, read_readers_csv])
def test_unreadable_csv_is_one_line(tmp_path, reader):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81label\n")
    not_utf8 = tmp_path / "latin1.csv"
    not_utf8.write_bytes(b"label,score\nfractur\xe9,0.5\n")
    for path, start in ((empty, "not a readable CSV ("), (binary, "line 1: a NUL byte (byte 2); a table is a text CSV"),
                        (not_utf8, "line 2: not UTF-8 text (byte 19: 0xe9)")):
        with pytest.raises(UserError) as info:
            reader(path)
        assert str(info.value).startswith(f"{path}: {start}") and "\n" not in str(info.value)


def test_aggregation_names_are_declared_once():
    from tfxray.config import EvaluateConfig

    assert tuple(AGGREGATORS) == AGGREGATIONS == ("max", "mean", "noisy-or")
    with pytest.raises(UserError, match=r"evaluate.aggregate: expected one of max, mean, noisy-or, got 'median'"):
        EvaluateConfig(aggregate="median").validate("evaluate")


def test_cli_option_lists_load_no_numpy():
    """cli/evaluate.py takes its choices from evaluation/choices.py: `tfxray --help` stays light."""
    code = "import sys, cli.evaluate; sys.exit('numpy' in sys.modules or 'pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_roc_only_multiclass(tmp_path):
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    truth = np.repeat(np.arange(3), 20)
    probs = rng.dirichlet(np.ones(3), size=len(truth))
    table = pd.DataFrame({"label": np.array(classes)[truth], **{f"score_{c}": probs[:, j] for j, c in enumerate(classes)}})
    report = evaluate_table(table, label_column="label", positive=None, score_columns=[f"score_{c}" for c in classes],
                            n_bootstrap=100)
    everything = write_report(report, table, tmp_path / "all")
    only = write_report(report, table, tmp_path / "roc", roc_only=True)
    assert {n for n in everything if n.endswith(".png")} == {"roc_image.png", "confusion_image.png", "flow.png"}
    assert {n for n in everything if n.endswith(".svg")} == {"roc_image.svg", "confusion_image.svg", "flow.svg"}
    assert {n for n in only if n.endswith(".png")} == {"roc_image.png"}
    assert (tmp_path / "all" / "report.json").read_text() == (tmp_path / "roc" / "report.json").read_text()
