"""A new user's first hour with `tfxray train`: the budget they asked for, the patients they named,
a refusal before wasted work, nothing half-made left behind, and the run's own test manifest."""

import math
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from tfxray.cli.main import cli
from tfxray.data.manifest import load_manifest

INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
TINY = ["--backbone", "tiny_cnn", "--input-size", "32", "--batch-size", "8", "--set", "augment.offline.factor=1"]


def absolute_table(wrist_png) -> pd.DataFrame:
    folder, _ = wrist_png
    table = pd.read_csv(folder / "manifest.csv", dtype=str)
    table["path"] = [str(folder / p) for p in table["path"]]
    return table


def write_csv(table: pd.DataFrame, path) -> str:
    table.to_csv(path, index=False)
    return str(path)


@pytest.mark.slow  # about 12 s with TensorFlow's import
def test_wrist_with_epochs_patient_spelling_boxes_restore_and_overwrite(wrist_png, tmp_path):
    """`train wrist --epochs 3` trains 3 epochs (not the recipe's 20000 iterations), reads 'Patient ID'
    as the patient column, writes test.csv/val.csv with every box, reports the restored epoch, and
    --overwrite replaces an earlier run."""
    table = absolute_table(wrist_png).rename(columns={"patient_id": "Patient ID"})
    boxed = table[table["x1"].notna()]
    second = boxed.assign(x1="1", y1="1", x2="5", y2="6")  # a second box on every boxed image
    manifest = write_csv(pd.concat([table, second], ignore_index=True), tmp_path / "m.csv")
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text("name: old\n")
    (run / "old-history.csv").write_text("epoch\n1\n")

    result = CliRunner().invoke(cli, ["train", "wrist", "--data", manifest, "--out", str(run), *TINY, "--epochs", "3",
                                      "--freeze", "none", "--set", "train.restore_best=true", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert not (run / "old-history.csv").exists()
    assert f"--overwrite: removed the previous run at {run}" in result.output

    split = pd.read_csv(run / "split.csv", dtype=str)
    n_train = int((split.split == "train").sum())
    assert f"budget: 3 epochs of {math.ceil(n_train / 8)} steps (command line)" in result.output
    assert "Epoch 1/3" in result.output and "Epoch 3/3" in result.output
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    assert (recipe["train"]["epochs"], recipe["train"]["iterations"]) == (3, 0)
    history = pd.read_csv(run / "history.csv")
    assert history.epoch.tolist() == [1, 2, 3]

    # patients, not images, were kept whole: 'Patient ID' is patient_id
    assert set(split.group_by) == {"patient_id"} and split.groupby("patient_id").split.nunique().max() == 1
    counts = split.split.value_counts()
    assert (f"split: {counts['train']} train / {counts['validation']} validation / {counts['test']} test images, "
            f"grouped by patient_id; test.csv and val.csv beside split.csv") in result.output

    # test.csv and val.csv: real manifests of each side, absolute paths, one row per box
    original = load_manifest(manifest, classes=["normal", "fracture"])
    for name, side in (("test.csv", "test"), ("val.csv", "validation")):
        rows = pd.read_csv(run / name, dtype=str)
        assert all(os.path.isabs(p) for p in rows.path)
        assert {"path", "label", "patient_id", "study_id", "x1", "y1", "x2", "y2"} <= set(rows.columns)
        assert "split" not in rows.columns
        side_paths = set(split.path[split.split == side])
        assert set(rows.path) == side_paths
        expected_rows = sum(max(1, int((original.boxes.path == p).sum())) for p in side_paths)
        assert len(rows) == expected_rows
        reread = load_manifest(run / name)  # its own classes: a small side may hold one
        assert len(reread.boxes) == int(original.boxes.path.isin(side_paths).sum())

    best = int(history.val_loss.idxmin())
    line = f"restored the weights of epoch {best + 1} (lowest val_loss {history.val_loss[best]:.4f})"
    assert line in result.output
    assert (run / "history.png").is_file()


class Captured(Exception):
    pass


@pytest.fixture()
def captured_training(monkeypatch):
    """tfxray.training.trainer.train replaced by a recorder: the command's resolution, without training."""
    import tfxray.training.trainer as trainer

    def record(recipe, manifest, run_dir, **options):
        raise Captured(recipe, options)

    monkeypatch.setattr(trainer, "train", record)


def resolved(result):
    assert isinstance(result.exception, Captured), result.output
    recipe, options = result.exception.args
    return recipe, options["budget_source"]


@pytest.mark.parametrize(("env", "args", "expected"), [
    ({}, [], (20000, 10, "recipe")),  # wrist's own budget
    ({"TFXRAY_TRAIN_EPOCHS": "4"}, [], (0, 4, "environment")),  # the environment beats the recipe
    ({"TFXRAY_TRAIN_ITERATIONS": "7"}, ["--epochs", "2"], (0, 2, "command line")),  # the command line beats both
    ({"TFXRAY_TRAIN_EPOCHS": "4"}, ["--iterations", "9"], (9, 4, "command line")),
    ({}, ["--set", "train.epochs=5"], (0, 5, "command line")),
])
def test_budget_precedence_command_line_environment_recipe(wrist_png, tmp_path, captured_training, env, args, expected):
    folder, _ = wrist_png
    result = CliRunner().invoke(cli, ["train", "wrist", "--data", str(folder / "manifest.csv"), "--out",
                                      str(tmp_path / "r"), "--backbone", "tiny_cnn", *args], env=env)
    recipe, source = resolved(result)
    assert (recipe.train.iterations, recipe.train.epochs, source) == expected


def test_an_environment_variable_never_beats_a_command_line_set(wrist_png, tmp_path, captured_training):
    folder, _ = wrist_png
    result = CliRunner().invoke(cli, ["train", "demo", "--data", str(folder / "manifest.csv"), "--out",
                                      str(tmp_path / "r"), "--set", "train.lr=0.1"], env={"TFXRAY_TRAIN_LR": "0.5"})
    assert resolved(result)[0].train.lr == 0.1
    result = CliRunner().invoke(cli, ["train", "demo", "--data", str(folder / "manifest.csv"), "--out",
                                      str(tmp_path / "r")], env={"TFXRAY_TRAIN_LR": "0.5"})
    assert resolved(result)[0].train.lr == 0.5
    both = CliRunner().invoke(cli, ["train", "demo", "--data", str(folder / "manifest.csv"), "--out",
                                    str(tmp_path / "r"), "--epochs", "2", "--iterations", "5"])
    assert both.exit_code == 2 and "train.epochs and train.iterations both given" in both.output


def test_resume_refuses_overrides_from_the_environment_too(wrist_png, tmp_path):
    folder, _ = wrist_png
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text("name: old\n")
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--data", str(folder / "manifest.csv")],
                                env={"TFXRAY_TRAIN_EPOCHS": "4"})
    assert result.exit_code == 2
    assert ("--resume continues the run's own recipe.yaml: leave out RECIPE and overrides (given from the "
            "environment)") in result.output


def test_without_a_patient_column_the_split_falls_back_to_studies_and_says_so(wrist_png, tmp_path, captured_training):
    table = absolute_table(wrist_png).drop(columns="patient_id")
    manifest = write_csv(table, tmp_path / "m.csv")
    result = CliRunner().invoke(cli, ["train", "demo", "--data", manifest, "--out", str(tmp_path / "r")])
    assert result.output.splitlines()[0] == (f"no patient column (patient_id) in {manifest}: the split is grouped by "
                                             f"study_id, so one patient's studies may fall on different sides")
    misspelt = write_csv(absolute_table(wrist_png).rename(columns={"patient_id": "patinet_id"}), tmp_path / "typo.csv")
    refused = CliRunner().invoke(cli, ["train", "demo", "--data", misspelt, "--out", str(tmp_path / "r")])
    assert refused.exit_code == 2
    assert refused.output.strip() == (f"error: {misspelt}: column 'patinet_id' is not one tfxray reads "
                                      f"(did you mean 'patient_id'?); rename it")


FROZEN_NOISE = ("error: model.freeze: {freeze} keeps {backbone}'s random weights (weights: none) frozen{phase}, so the "
                "head would learn on noise; train it all with --freeze none, or start from ImageNet (--weights imagenet)"
                " or a weights file (--weights FILE)")


@pytest.mark.parametrize(("args", "freeze", "backbone", "phase"), [
    (["wrist", "--weights", "none"], "all-but-top", "inception_v3", ""),
    (["demo", "--backbone", "resnet50", "--weights", "none", "--freeze", "until:stage2"], "until:stage2", "resnet50", ""),
    (["wrist", "--weights", "none", "--set", "model.unfreeze=until:mixed7", "--set", "train.finetune_epochs=2"],
     "all-but-top", "inception_v3", " in the staged schedule's first phase"),
])
def test_a_frozen_random_backbone_is_refused_before_anything_is_made(wrist_png, tmp_path, args, freeze, backbone,
                                                                     phase):
    folder, _ = wrist_png
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", *args, "--data", str(folder / "manifest.csv"), "--out", str(run)])
    assert result.exit_code == 2
    assert result.output.strip() == FROZEN_NOISE.format(freeze=freeze, backbone=backbone, phase=phase)
    assert not run.exists()


def test_tiny_cnn_is_meant_to_train_from_scratch_frozen_or_not(wrist_png, tmp_path, captured_training):
    folder, _ = wrist_png
    result = CliRunner().invoke(cli, ["train", "wrist", "--backbone", "tiny_cnn", "--data", str(folder / "manifest.csv"),
                                      "--out", str(tmp_path / "r")])
    recipe, _ = resolved(result)
    assert (recipe.model.backbone, recipe.model.weights, recipe.model.freeze) == ("tiny_cnn", "none", "all-but-top")


@pytest.fixture()
def offline(tmp_path, monkeypatch):
    """An empty Keras cache and a download that fails as Keras' does offline; the calls are recorded."""
    import tfxray.models.weights as weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    calls = []

    def no_network(spec, cache_dir):
        calls.append((spec.imagenet_file, cache_dir))
        raise Exception(f"URL fetch failure on {spec.imagenet_url}: None -- [Errno -3] Temporary failure in name "
                        f"resolution")

    monkeypatch.setattr(weights, "_keras_download", no_network)
    return calls


def test_missing_imagenet_weights_fail_in_a_second_naming_the_ways_on(wrist_png, tmp_path, offline):
    folder, _ = wrist_png
    run = tmp_path / "run"
    run.mkdir()  # an empty folder given as --out stays as it was
    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["train", "wrist", "--data", str(folder / "manifest.csv"), "--out", str(run)])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 2 and elapsed < 5, (elapsed, result.output)
    assert offline == [(INCEPTION_FILE, tmp_path / "keras" / "models")]
    message = result.output.strip()
    assert message.startswith("error: model.weights: ImageNet weights for inception_v3 are not in Keras' cache and "
                              "could not be downloaded ([Errno -3] Temporary failure in name resolution).")
    assert "--weights none --freeze none" in message and "--backbone tiny_cnn --weights none" in message
    assert f"'tfxray weights import {INCEPTION_FILE}'" in message and "(Exception)" not in message
    assert "\n" not in message
    assert list(run.iterdir()) == []


def test_a_present_intact_file_is_used_and_a_corrupt_one_fetched_again(tmp_path, offline, monkeypatch):
    import dataclasses
    import hashlib

    from tfxray.errors import UserError
    from tfxray.models import backbones
    from tfxray.models.weights import ensure_imagenet_file

    content = b"pretend weights"
    spec = dataclasses.replace(backbones.BACKBONES["inception_v3"], imagenet_md5=hashlib.md5(content).hexdigest())
    monkeypatch.setitem(backbones.BACKBONES, "inception_v3", spec)
    path = tmp_path / "keras" / "models" / INCEPTION_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert ensure_imagenet_file("inception_v3") == path and offline == []
    path.write_bytes(b"half a download")
    with pytest.raises(UserError, match="could not be downloaded"):
        ensure_imagenet_file("inception_v3")
    assert len(offline) == 1


def test_a_failure_before_the_first_epoch_removes_only_what_it_made(wrist_png, tmp_path, monkeypatch):
    import tfxray.training.trainer as trainer
    from tests.chain_helpers import tiny_recipe

    def broken(*args, **kwargs):
        raise RuntimeError("broken input pipeline")

    monkeypatch.setattr(trainer, "build_inputs", broken)
    folder, _ = wrist_png
    recipe = tiny_recipe(**{"data.input_size": 32})
    manifest = load_manifest(folder / "manifest.csv", classes=recipe.classes)
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="broken input pipeline"):
        trainer.train(recipe, manifest, kept, verbose=0)
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]  # split.csv, test.csv... removed; the note kept
    fresh = tmp_path / "new" / "deeper" / "run"
    result = CliRunner().invoke(cli, ["train", "demo", "--data", str(folder / "manifest.csv"), "--out", str(fresh),
                                      "--input-size", "32"])
    assert isinstance(result.exception, RuntimeError)
    assert not (tmp_path / "new").exists()  # the folders it created, parents included


def test_overwrite_replaces_only_a_run_and_never_the_data(wrist_png, tmp_path):
    folder, _ = wrist_png
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"x")
    result = CliRunner().invoke(cli, ["train", "demo", "--data", str(folder / "manifest.csv"), "--out", str(photos),
                                      "--overwrite"])
    assert result.exit_code == 2 and "not a tfxray run folder" in result.output
    assert (photos / "holiday.jpg").exists()
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text("name: old\n")
    inside = write_csv(absolute_table(wrist_png), run / "test.csv")
    result = CliRunner().invoke(cli, ["train", "demo", "--data", inside, "--out", str(run), "--overwrite"])
    assert result.exit_code == 2 and "lies inside it" in result.output and (run / "test.csv").exists()
    again = CliRunner().invoke(cli, ["train", "demo", "--data", str(folder / "manifest.csv"), "--out", str(run)])
    assert again.exit_code == 2
    assert f"already exists and is not empty (continue it with --resume {run}, or replace it with --overwrite)" in \
        again.output


def test_set_learning_rate_names_train_lr(wrist_png, tmp_path):
    folder, _ = wrist_png
    result = CliRunner().invoke(cli, ["train", "demo", "--data", str(folder / "manifest.csv"), "--out",
                                      str(tmp_path / "r"), "--set", "learning_rate=0.1"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: demo: unknown key 'learning_rate' (did you mean 'train.lr'?)"


RUN_CLI = """
import sys, time
start = time.perf_counter()
from tfxray.cli.main import cli
try:
    cli.main(args=sys.argv[1:], prog_name="tfxray")
except SystemExit as exit:
    code = exit.code
print(code, 'tensorflow' in sys.modules, round(time.perf_counter() - start, 2))
"""
TF_NOTICES = ("oneDNN", "absl", "cpu_feature_guard", "This TensorFlow binary")


def run_cli(*args, **env):
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | env
    done = subprocess.run([sys.executable, "-c", RUN_CLI, *args], capture_output=True, text=True, env=environment,
                          timeout=300)
    code, imported, seconds = done.stdout.split()[-3:]
    return int(code), imported == "True", float(seconds), done.stderr


def test_a_recipe_typo_is_reported_before_tensorflow_is_imported(wrist_png, tmp_path):
    folder, _ = wrist_png
    code, imported, seconds, stderr = run_cli("train", "demo", "--data", str(folder / "manifest.csv"), "--out",
                                              str(tmp_path / "r"), "--set", "train.lrr=1")
    assert (code, imported) == (2, False)
    assert stderr == "error: demo.train: unknown key 'lrr' (did you mean 'lr'?)\n"
    assert seconds < 5  # importing TensorFlow alone takes longer on this machine
    assert not (tmp_path / "r").exists()


@pytest.mark.slow  # a subprocess importing TensorFlow: about 8 s
def test_tensorflow_start_up_notices_never_reach_stderr(wrist_png, tmp_path):
    """A command that imports TensorFlow (here to look the freeze boundary up in the graph) prints its one error line only."""
    folder, _ = wrist_png
    code, imported, _, stderr = run_cli("train", "demo", "--data", str(folder / "manifest.csv"), "--out",
                                        str(tmp_path / "r"), "--freeze", "until:no_such_layer")
    assert (code, imported) == (2, True)
    assert not any(notice in stderr for notice in TF_NOTICES), stderr
    assert stderr == ("error: model.freeze: until:no_such_layer names neither a stage (stem, stage1, stage2, stage3, "
                      "stage4) nor a layer of tiny_cnn\n")
