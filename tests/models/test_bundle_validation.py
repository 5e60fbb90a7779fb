"""A run's tfxray.json is user input: every field is checked where it is loaded (models/bundle.py), and a
bad value is one line naming the file and the field, never a traceback or a silently wrong call."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from tests.folder_helpers import copy_images
from tfxray.cli.main import cli
from tfxray.errors import UserError
from tfxray.models import bundle as bundle_module
from tfxray.models.bundle import load_bundle, load_meta

GOOD = {"classes": ["normal", "fracture"], "input_size": 48, "channels": 1, "resize": "stretch",
        "backbone": "tiny_cnn", "threshold": 0.4, "threshold_rule": "youden on the validation split",
        "gradcam_layer": "stage2_b_relu", "roi": False, "neighbours": False, "gray_input": "replicate",
        "recipe": {"name": "demo"}, "tfxray_version": "0.1.0",
        "trained_on": {"images": 52, "unreadable": 0, "modalities": [], "photometric": ["MONOCHROME2"],
                       "view_positions": [], "kinds": ["png"], "rows": [64, 64], "cols": [64, 64]},
        "task": "classification", "detection": {}, "started_from": {}}


def run_with(tmp_path, text: str | bytes):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    path = run / "tfxray.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return run, path


def changed(**fields):
    meta = json.loads(json.dumps(GOOD))
    for key, value in fields.items():
        if value is KeyError:
            del meta[key]
        else:
            meta[key] = value
    return json.dumps(meta)  # NaN and Infinity as Python's json writes them


def test_a_good_file_loads(tmp_path):
    run, _ = run_with(tmp_path, changed())
    meta = load_meta(run)
    assert meta.threshold == 0.4 and meta.classes == ["normal", "fracture"] and meta.positive == "fracture"
    run, _ = run_with(tmp_path, json.dumps({k: GOOD[k] for k in ("classes", "input_size", "channels", "resize",
                                                                  "backbone")}))
    assert load_meta(run).threshold == 0.5  # a minimal file (older runs) takes the defaults


@pytest.mark.parametrize(("fields", "message"), [
    ({"threshold": float("nan")}, "threshold is NaN; expected a number in [0, 1]"),
    ({"threshold": float("inf")}, "threshold is Infinity; expected a number in [0, 1]"),
    ({"threshold": None}, "threshold is null; expected a number in [0, 1]"),
    ({"threshold": "0.5"}, "threshold is the string '0.5'; expected a number in [0, 1]"),
    ({"threshold": True}, "threshold is true; expected a number in [0, 1]"),
    ({"threshold": 1.5}, "threshold is 1.5; expected a number in [0, 1]"),
    ({"threshold": -0.1}, "threshold is -0.1; expected a number in [0, 1]"),
    ({"classes": []}, "classes is an empty list; expected a list of at least two distinct class names"),
    ({"classes": ["fracture"]}, "classes is a list of 1; expected a list of at least two distinct class names"),
    ({"classes": "normal,fracture"}, "classes is the string 'normal,fracture'; expected a list of at least two"),
    ({"classes": ["normal", "normal"]}, "classes has 'normal' twice; expected a list of at least two distinct"),
    ({"classes": ["normal", ""]}, "classes[1] is an empty string; expected a non-empty name"),
    ({"classes": ["normal", "  "]}, "classes[1] is the string '  '; expected a non-empty name"),
    ({"classes": ["normal", 1]}, "classes[1] is 1; expected a non-empty name"),
    ({"classes": ["normal", None]}, "classes[1] is null; expected a non-empty name"),
    ({"classes": ["normal", "frac\nture"]}, "classes[1] is the string 'frac\\nture'; expected a non-empty name "
                                           "without control characters"),
    ({"input_size": "48"}, "input_size is the string '48'; expected a whole number in [1, 16384]"),
    ({"input_size": 0}, "input_size is 0; expected a whole number in [1, 16384]"),
    ({"input_size": -48}, "input_size is -48; expected a whole number in [1, 16384]"),
    ({"input_size": 48.5}, "input_size is 48.5; expected a whole number in [1, 16384]"),
    ({"input_size": True}, "input_size is true; expected a whole number in [1, 16384]"),
    ({"input_size": 10**9}, "input_size is 1000000000; expected a whole number in [1, 16384]"),
    ({"channels": 2}, "channels is 2; expected one of 1, 3"),
    ({"channels": "1"}, "channels is the string '1'; expected one of 1, 3"),
    ({"resize": "crop"}, "resize is the string 'crop'; expected one of stretch, pad"),
    ({"task": "segmentation"}, "task is the string 'segmentation'; expected one of classification, detection"),
    ({"task": "detection"}, "detection has no architecture; expected one of faster_rcnn, retinanet"),
    ({"task": "detection", "detection": {"architecture": "yolo"}},
     "detection.architecture is the string 'yolo'; expected one of faster_rcnn, retinanet"),
    ({"detection": {"architecture": "retinanet", "iou": 0}}, "detection.iou is 0; expected a number in (0, 1]"),
    ({"gray_input": "average"}, "gray_input is the string 'average'; expected one of replicate, sum-first-conv"),
    ({"roi": "false"}, "roi is the string 'false'; expected true or false"),
    ({"neighbours": 0}, "neighbours is 0; expected true or false"),
    ({"recipe": "name: demo"}, "recipe is the string 'name: demo'; expected an object"),
    ({"recipe": None}, "recipe is null; expected an object"),
    ({"trained_on": []}, "trained_on is an empty list; expected an object"),
    ({"trained_on": {"rows": [64]}}, "trained_on.rows is a list of 1; expected null or [smallest, largest] in pixels"),
    ({"trained_on": {"rows": [64, "x"]}}, "trained_on.rows[1] is the string 'x'; expected a whole number"),
    ({"trained_on": {"modalities": "DX"}}, "trained_on.modalities is the string 'DX'; expected a list of distinct"),
    ({"started_from": "run"}, "started_from is the string 'run'; expected an object"),
    ({"threshold_rule": 3}, "threshold_rule is 3; expected text"),
    ({"threshold_rule": "youden\nerror: forged line"}, "threshold_rule is the string 'youden\\nerror: forged line'; "
                                                      "expected text without control characters"),
    ({"gradcam_layer": "conv; import os"}, "gradcam_layer is the string 'conv; import os'; expected a layer name"),
    # code-like values: JSON cannot hold code, and the fields that name things take only names
    ({"backbone": "__import__('os').system('touch x')"},
     "backbone is the string \"__import__('os').system('touch x')\"; expected a registered backbone name"),
    ({"backbone": "!!python/object/apply:os.system"},
     "backbone is the string '!!python/object/apply:os.system'; expected a registered backbone name"),
    ({"backbone": {"module": "os", "class_name": "system"}}, "backbone is an object; expected a registered backbone"),
    ({"task": "!!python/object:os.system"}, "task is the string '!!python/object:os.system'; expected one of"),
    ({"classes": KeyError}, "missing field(s) classes"),
    ({"evil": 1}, "unknown field 'evil'"),
])
def test_each_bad_field_is_one_line_naming_file_and_field(tmp_path, fields, message):
    run, path = run_with(tmp_path, changed(**fields))
    with pytest.raises(UserError) as caught:
        load_meta(run)
    text = str(caught.value)
    assert text.startswith(f"{path}: {message}"), text
    assert "\n" not in text and len(text) < 400


@pytest.mark.parametrize(("content", "message"), [
    (b'{"classes": ["normal", "fract\xffure"]}', "not UTF-8 text (byte 29: 0xff)"),
    (b"\xff\xfe{}", "not UTF-8 text (byte 0: 0xff)"),
    (b"", "unreadable model metadata (not valid JSON: Expecting value at line 1 column 1)"),
    (b'{"classes": ["a", "b"],\n "input_size": 48,,}', "unreadable model metadata (not valid JSON: Expecting "
                                                       "property name enclosed in double quotes at line 2"),
    (b"[1, 2]", "a list of 2; expected a JSON object of run metadata"),
    (b'"classes"', "the string 'classes'; expected a JSON object"),
    (b'{"threshold": 0.1, "threshold": 0.9}', "unreadable model metadata (key 'threshold' given twice)"),
    (b"[" * 100_000 + b"]" * 100_000, "unreadable model metadata (nested too deeply)"),
    (b'{"recipe": ' + b'{"a": ' * 80 + b"1" + b"}" * 81, "unreadable model metadata (nested more than 64 levels"),
])
def test_unreadable_files_are_one_line(tmp_path, content, message):
    run, path = run_with(tmp_path, content)
    with pytest.raises(UserError) as caught:
        load_meta(run)
    assert str(caught.value).startswith(f"{path}: {message}"), str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_module, "MAX_META_BYTES", 100)
    run, path = run_with(tmp_path, changed())
    with pytest.raises(UserError, match=r"tfxray.json: \d[\d,]* bytes; model metadata over 100 bytes is refused"):
        load_meta(run)


def test_huge_values_are_not_echoed(tmp_path):
    run, path = run_with(tmp_path, changed(classes=["normal", "x" * 1_000_000], task="y" * 1_000_000))
    with pytest.raises(UserError) as caught:
        load_meta(run)
    assert len(str(caught.value)) < 400


# --------------------------------------------------------------------------- against the model itself


def bad_run(tiny_run, tmp_path, **fields):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    meta = json.loads((run / "tfxray.json").read_text())
    meta.update(fields)
    (run / "tfxray.json").write_text(json.dumps(meta))
    return run


def test_real_run_metadata_passes(tiny_run):
    bundle = load_bundle(tiny_run)
    assert bundle.meta.classes == ["normal", "fracture"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"classes": ["a", "b", "c"]}, "classes has 3 names but model.keras has one sigmoid output (a two-class model); "
                                   "expected 2 class names"),
    ({"input_size": 64}, "input_size is 64 but model.keras takes 48 x 48 px"),
    ({"channels": 3}, "channels is 3 but model.keras takes 1"),
])
def test_metadata_must_describe_the_loaded_model(tiny_run, tmp_path, fields, message):
    run = bad_run(tiny_run, tmp_path, **fields)
    with pytest.raises(UserError) as caught:
        load_bundle(run)
    assert str(caught.value) == f"{run / 'tfxray.json'}: {message}"


@pytest.mark.parametrize(("fields", "message"), [
    ({"threshold": float("nan")}, "threshold is NaN; expected a number in [0, 1]"),  # called every image normal
    ({"classes": ["a", "b", "c"]}, "classes has 3 names but model.keras has one sigmoid output"),  # malformed CSV
    ({"threshold": None}, "threshold is null"),  # a TypeError traceback
    ({"threshold": "0.5"}, "threshold is the string '0.5'"),
    ({"input_size": "48"}, "input_size is the string '48'"),  # a TensorFlow traceback
    ({"classes": []}, "classes is an empty list"),  # an IndexError traceback
])
def test_score_refuses_a_bad_run_with_exit_2_and_writes_nothing(tiny_run, wrist_png, tmp_path, fields, message):
    run = bad_run(tiny_run, tmp_path, **fields)
    folder, manifest = wrist_png
    inbox = copy_images(folder, manifest.path[:2], tmp_path / "inbox")
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(cli, ["score", str(run), str(inbox), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {run / 'tfxray.json'}: {message}")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_evaluate_and_inspect_refuse_it_too(tiny_run, wrist_png, tmp_path):
    run = bad_run(tiny_run, tmp_path, threshold=float("nan"))
    folder, _ = wrist_png
    expected = f"error: {run / 'tfxray.json'}: threshold is NaN; expected a number in [0, 1]\n"
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--split", "test", "--out", str(tmp_path / "e")])
    assert (result.exit_code, result.output) == (2, expected)
    result = CliRunner().invoke(cli, ["inspect", str(folder / "images" / "P0001"), "--run", str(run),
                                      "--out", str(tmp_path / "audit.csv")])
    assert (result.exit_code, result.output) == (2, expected)
    result = CliRunner().invoke(cli, ["gradcam", str(run), str(folder / "images" / "P0001"),
                                      "--out", str(tmp_path / "g")])
    assert (result.exit_code, result.output) == (2, expected)


def test_a_valid_edit_still_scores(tiny_run, wrist_png, tmp_path):
    run = bad_run(tiny_run, tmp_path, threshold=0)  # an integer threshold is a number: every image positive
    folder, manifest = wrist_png
    inbox = copy_images(folder, manifest.path[:2], tmp_path / "inbox")
    result = CliRunner().invoke(cli, ["score", str(run), str(inbox), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(tmp_path / "s.csv").call) == {"fracture"}
