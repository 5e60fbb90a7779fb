"""Training a detector (task: detection) from the command line: the run it writes, --init from another run,
hard-positive mining, resume after kill -9, and the recipe fields a detector (or a classifier) refuses."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.chain_helpers import epochs_done, kill_when
from tfxray.config import load_recipe
from tfxray.errors import UserError

RECIPE = """\
name: det-test
task: detection
classes: [normal, fracture]
data: {input_size: 64, channels: 1, resize: pad, split: [0.7, 0.3, 0.0]}
augment: {boxes: {enabled: true, flip: 0.5, rotation: 20}}
model: {backbone: tiny_cnn, weights: none, freeze: none}
detection: {fpn_filters: 16, head_units: 32, anchor_scale: 4, rpn_samples: 64, roi_samples: 32,
            proposals_train: 128, proposals_test: 64, cutoff: 0.4, rcnn_weight: 1.0, max_detections: 20}
train: {optimizer: adam, lr: 0.001, epochs: 2, batch_size: 8, restore_best: true}
"""


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def pelvis(tmp_path_factory):
    """40 pelvis phantoms (128 px, one or two femoral-neck boxes on the fractures) and a tiny detector recipe."""
    from tfxray.data.synth import synthesize

    folder = tmp_path_factory.mktemp("pelvis")
    synthesize(folder, task="pelvis", n=40, seed=3, size=128, progress=False)
    recipe = folder / "det.yaml"
    recipe.write_text(RECIPE)
    return folder / "manifest.csv", recipe


def _train_killed_then_resumed(manifest, recipe, run):
    """`tfxray train det.yaml --data M --out RUN --epochs 3` in a process killed with SIGKILL once two epochs are in
    history.csv, then `tfxray train --resume RUN --data M`. Returns (history at the kill, the resumed output)."""
    history = run / "history.csv"
    kill_when(["train", recipe, "--data", manifest, "--out", run, "--epochs", "3", "--quiet"], epochs_done(history, 2),
              timeout=300)
    before = pd.read_csv(history)
    assert (run / "checkpoint").is_dir() and not (run / "tfxray.json").exists()
    resumed = CliRunner().invoke(cli, ["train", "--resume", str(run), "--data", str(manifest), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    return before, resumed.output


@pytest.fixture(scope="module")
def trained(pelvis, tmp_path_factory):
    """The module's detector run, made by the command line as a user whose first attempt was killed would make it:
    `tfxray train det.yaml --data manifest.csv --out RUN` (3 epochs at 64 px) killed with SIGKILL during its
    third epoch, then `tfxray train --resume RUN --data manifest.csv` (one run for the whole module: the graph
    traces of each training dominate the time)."""
    manifest, recipe = pelvis
    run = tmp_path_factory.mktemp("det_runs") / "generic"
    before, output = _train_killed_then_resumed(manifest, recipe, run)
    return run, output, before


def max_scores(detections: pd.DataFrame, paths) -> np.ndarray:
    """An image's score: its highest box confidence, 0 without a box."""
    best = detections.groupby("path")["score"].max()
    return np.array([float(best.get(p, 0.0)) for p in paths])


@pytest.mark.slow  # the module's training, killed and resumed: about 60-90 s
def test_cli_train_writes_a_detector_run(trained):
    from sklearn.metrics import roc_auc_score

    from tfxray.models.bundle import load_bundle
    from tfxray.models.inference import detect_paths

    run, output, _ = trained
    meta = json.loads((run / "tfxray.json").read_text())
    assert meta["task"] == "detection"
    assert meta["threshold"] == 0.4  # detection.cutoff
    assert meta["detection"]["box_classes"] == ["fracture"]
    assert meta["detection"]["architecture"] == "faster_rcnn" and meta["detection"]["iou"] == 0.5
    assert meta["classes"] == ["normal", "fracture"] and meta["input_size"] == 64 and meta["resize"] == "pad"
    assert meta["started_from"] == {} and meta["detection"]["mined"] == 0
    history = pd.read_csv(run / "history.csv")
    assert list(history.epoch) == [1, 2, 3]
    for column in ("loss", "rpn_class_loss", "rpn_box_loss", "rcnn_class_loss", "rcnn_box_loss", "val_loss",
                   "val_auc"):
        assert column in history.columns and np.isfinite(history[column]).all(), column
    assert history.val_auc.between(0, 1).all()
    # the saved model is the best epoch's (restore_best on val_auc): recomputed here from its boxes on
    # val.csv, each image scored by its highest box (0 without one), with scikit-learn
    val = pd.read_csv(run / "val.csv").drop_duplicates("path")
    detections, statuses, _ = detect_paths(load_bundle(run), val.path.tolist())
    assert (statuses == 0).all()
    labels = (val.label == "fracture").to_numpy()
    assert 0 < labels.sum() < len(labels)
    assert roc_auc_score(labels, max_scores(detections, val.path)) == pytest.approx(history.val_auc.max(), abs=1e-9)
    assert "threshold 0.4000" in output


@pytest.mark.slow  # a second training (1 epoch), started from the first, with its mining pass: about 40-60 s
def test_init_from_a_run_and_hard_positive_mining(trained, pelvis, tmp_path):
    from tfxray.data.manifest import load_manifest
    from tfxray.models.bundle import load_bundle
    from tfxray.models.inference import detect_paths

    manifest, recipe = pelvis
    generic, _, _ = trained
    run = tmp_path / "fn"
    result = CliRunner().invoke(cli, ["train", str(recipe), "--data", str(manifest), "--out", str(run), "--quiet",
                                      "--init", str(generic), "--epochs", "1", "--set", "train.hard_positives=true",
                                      # no validation split: one graph trace fewer (this test is about the start)
                                      "--set", "data.split=[1.0,0.0,0.0]"])
    assert result.exit_code == 0, result.output
    meta = json.loads((run / "tfxray.json").read_text())
    started = meta["started_from"]
    assert started["run"] == str(generic.resolve()) and started["task"] == "detection"
    assert started["backbone"] == "tiny_cnn"
    assert started["copied"] == started["of"] > 0  # the same architecture: every tensor copied

    mined = pd.read_csv(run / "mined.csv", dtype=str)
    assert list(mined.columns) == ["path", "kind", "reason"]
    assert mined.path.is_unique and (mined.kind == "hard positive").all()
    assert meta["detection"]["mined"] == len(mined)
    split = pd.read_csv(run / "split.csv")
    train_positives = set(split.path[(split.split == "train") & (split.label == "fracture")])
    assert set(mined.path) <= train_positives
    # the same choice, made here from the initial model's boxes: a training positive is hard when one of its
    # reference boxes has no box at or above the cut-off (0.4) with IoU >= 0.5
    boxes = load_manifest(manifest).boxes  # original-image pixels, absolute paths as split.csv's
    positives = sorted(train_positives)
    found, statuses, _ = detect_paths(load_bundle(generic), positives)
    assert (statuses == 0).all()
    called = found[found.score >= 0.4]
    hard = set()
    for path in positives:
        predicted = called.loc[called.path == path, ["x1", "y1", "x2", "y2"]].to_numpy()
        for reference in boxes.loc[boxes.path == path, ["x1", "y1", "x2", "y2"]].to_numpy():
            if not any(iou(p, reference) >= 0.5 for p in predicted):
                hard.add(path)
    assert set(mined.path) == hard
    assert len(hard) > 0  # a 2-epoch model at 64 px misses some: the check is not vacuous


def test_hard_positives_without_init_is_a_one_line_error(pelvis, tmp_path):
    manifest, recipe = pelvis
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", str(recipe), "--data", str(manifest), "--out", str(run), "--quiet",
                                      "--set", "train.hard_positives=true"])
    assert result.exit_code != 0
    line = one_line(result)
    assert "train.hard_positives" in line and "--init" in line
    assert not run.exists() or not any(run.iterdir())  # nothing half-made is left behind


@pytest.mark.slow  # the module's training
def test_kill_9_during_detector_training_then_resume(trained):
    run, _, before = trained
    done = len(before)
    assert 2 <= done < 3  # killed during the third and last epoch
    after = pd.read_csv(run / "history.csv")
    assert list(after.epoch) == [1, 2, 3]  # every epoch once, none repeated
    assert "val_auc" in after.columns and after.val_auc.notna().all()
    # epochs finished before the kill are kept as they were (only the last may have been redone)
    pd.testing.assert_frame_equal(after.iloc[: done - 1].reset_index(drop=True),
                                  before.iloc[: done - 1].reset_index(drop=True))
    assert not (run / "checkpoint").exists()
    meta = json.loads((run / "tfxray.json").read_text())
    assert meta["task"] == "detection" and meta["threshold"] == 0.4
    assert meta["recipe"]["train"]["epochs"] == 3  # the resumed run kept the first attempt's recipe


# ----------------------------------------------------------------------------- recipe validation


@pytest.mark.parametrize("key, value", [("augment.online.enabled", True), ("data.folds", 5)])
def test_a_detection_recipe_refuses_fields_it_does_not_read(pelvis, tmp_path, key, value):
    manifest, recipe = pelvis
    with pytest.raises(UserError, match=f"^{key}: not read by a detector"):
        load_recipe(str(recipe), [(key.split("."), value)])
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", str(recipe), "--data", str(manifest), "--out", str(run),
                                      "--set", f"{key}={str(value).lower()}"])
    assert result.exit_code != 0
    assert key in one_line(result)
    assert not run.exists()


@pytest.mark.parametrize("key, value, named", [
    ("detection.cutoff", 0.3, "detection.cutoff"),
    ("augment.boxes.enabled", True, "augment.boxes.enabled"),
    ("train.hard_positives", True, "train.hard_positives"),
])
def test_a_classification_recipe_refuses_detector_fields(key, value, named):
    with pytest.raises(UserError, match=f"^{named}: ") as error:
        load_recipe("demo", [(key.split("."), value)])
    assert len(str(error.value).splitlines()) == 1
    load_recipe("demo")  # the recipe itself is fine
