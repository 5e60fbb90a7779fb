"""Training end to end on tiny phantoms: cross-validation, resume after kill -9, feature cache."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.chain_helpers import epochs_done, kill_when, tiny_recipe
from tfxray.data.manifest import load_manifest
from tfxray.models.bundle import load_bundle
from tfxray.models.inference import predict_paths


def test_cross_validation_scores_each_image_once_by_a_model_that_never_saw_it(wrist_png, tmp_path):
    from tfxray.training.crossval import cross_validate

    folder, _ = wrist_png
    recipe = tiny_recipe(**{"data.folds": 3, "train.epochs": 1, "data.input_size": 32})
    manifest = load_manifest(folder / "manifest.csv", classes=recipe.classes)
    oof = cross_validate(recipe, manifest, tmp_path / "cv", verbose=0)
    assert sorted(oof.path) == sorted(manifest.images.path)
    assert sorted(oof.fold.unique()) == [1, 2, 3]
    assert oof.groupby("patient_id").fold.nunique().max() == 1  # no patient in two folds
    for fold in (1, 2, 3):
        split = pd.read_csv(tmp_path / "cv" / f"fold-{fold}" / "split.csv")
        held = set(oof.loc[oof.fold == fold, "path"])
        assert set(split.loc[split.split.isin(["train", "validation"]), "path"]).isdisjoint(held)
        # the fold's sides as manifests: its held-out fold is its test.csv, its validation side val.csv
        test = pd.read_csv(tmp_path / "cv" / f"fold-{fold}" / "test.csv")
        assert set(test.path) == held and len(test) == len(held) and "split" not in test.columns
        val = pd.read_csv(tmp_path / "cv" / f"fold-{fold}" / "val.csv")
        assert set(val.path) == set(split.path[split.split == "validation"])
        bundle = load_bundle(tmp_path / "cv" / f"fold-{fold}")
        part = oof[oof.fold == fold]
        scores, _ = predict_paths(bundle, part.path.tolist())
        np.testing.assert_allclose(part.score, scores[:, 0], atol=1e-5)


@pytest.mark.slow
def test_resume_after_kill_9_continues_from_the_last_epoch(wrist_png, tmp_path):
    folder, _ = wrist_png
    run = tmp_path / "run"
    history = run / "history.csv"
    kill_when(["train", "demo", "--data", folder / "manifest.csv", "--out", run, "--input-size", "64", "--epochs", "8",
               "--batch-size", "4", "--quiet", "--set", "train.schedule.name=step", "--set", "train.schedule.every=5",
               "--set", "train.schedule.factor=0.5"], epochs_done(history, 3))
    before = pd.read_csv(history)
    done = len(before)
    assert 3 <= done < 8
    assert (run / "checkpoint").is_dir()

    resumed = subprocess.run(
        [sys.executable, "-m", "tfxray.cli.main", "train", "--data", str(folder / "manifest.csv"), "--resume", str(run),
         "--quiet"], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = pd.read_csv(history)
    assert list(after.epoch) == list(range(1, 9))  # every epoch once, none repeated
    # epochs finished before the kill are kept as they were (not retrained)
    pd.testing.assert_frame_equal(after.iloc[: done - 1].reset_index(drop=True), before.iloc[: done - 1].reset_index(drop=True))
    # the schedule's step survived: lr halves every 5 steps of 12 per epoch (48 images / 4)
    steps_per_epoch = int(np.ceil(len(pd.read_csv(run / "split.csv").query("split == 'train'")) / 4))
    expected_lr = [0.001 * 0.5 ** ((e * steps_per_epoch) // 5) for e in after.epoch]
    np.testing.assert_allclose(after.lr, expected_lr, rtol=1e-5)
    assert not (run / "checkpoint").exists()
    assert load_bundle(run).meta.classes == ["normal", "fracture"]


def test_feature_cache_matches_training_through_the_frozen_backbone(wrist_png, tmp_path):
    """With all-but-top, the head trained on cached features is the same computation as plain fit."""
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    manifest = load_manifest(folder / "manifest.csv", classes=["normal", "fracture"])
    runs = {}
    for cache in (True, False):
        recipe = tiny_recipe(**{"model.freeze": "all-but-top", "train.feature_cache": cache, "train.epochs": 2,
                                "data.input_size": 32, "train.optimizer": "sgd", "train.lr": 0.1})
        runs[cache] = train(recipe, manifest, tmp_path / f"cache-{cache}", verbose=0)
    a, b = (load_bundle(tmp_path / f"cache-{c}") for c in (True, False))
    x = np.random.default_rng(0).random((4, 32, 32, 1)).astype("float32")
    # same backbone (same seed, frozen), same head start, same batches: same trained head
    np.testing.assert_allclose(np.asarray(a.model(x)), np.asarray(b.model(x)), atol=2e-4)
    np.testing.assert_allclose(runs[True].history.loss, runs[False].history.loss, rtol=1e-3)


def test_second_run_reuses_the_cache(wrist_png, tmp_path, capsys):
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    manifest = load_manifest(folder / "manifest.csv", classes=["normal", "fracture"])
    recipe = tiny_recipe(**{"model.freeze": "all-but-top", "train.epochs": 1, "data.input_size": 32,
                            "train.cache_dir": str(tmp_path / "cache")})
    train(recipe, manifest, tmp_path / "first", verbose=1)
    first = capsys.readouterr().out
    train(recipe, manifest, tmp_path / "second", verbose=1)
    second = capsys.readouterr().out
    assert "feature cache: 0 of" in first
    n_used = len(pd.read_csv(tmp_path / "second" / "split.csv").query("split != 'test'"))
    assert f"feature cache: {n_used} of {n_used} images reused" in second


def test_staged_schedule_trains_the_head_then_unfreezes_at_a_tenth_of_the_rate(wrist_png, tmp_path):
    import keras

    from tfxray.models.classifier import build_classifier
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    manifest = load_manifest(folder / "manifest.csv", classes=["normal", "fracture"])
    recipe = tiny_recipe(**{"model.freeze": "all-but-top", "model.unfreeze": "until:stage2", "train.epochs": 1,
                            "train.finetune_epochs": 2, "data.input_size": 32, "train.optimizer": "sgd",
                            "train.lr": 0.05, "train.cache_dir": str(tmp_path / "cache")})
    result = train(recipe, manifest, tmp_path / "run", verbose=0)
    assert list(result.history.epoch) == [1, 2, 3]
    np.testing.assert_allclose(result.history.lr, [0.05, 0.005, 0.005], rtol=1e-5)
    keras.utils.set_random_seed(recipe.train.seed)
    initial = build_classifier("tiny_cnn", input_size=32, channels=1, weights=None, normalization="per_image")
    trained = load_bundle(tmp_path / "run").model
    same = lambda name: all(np.array_equal(a, b) for a, b in zip(initial.get_layer(name).get_weights(),
                                                                 trained.get_layer(name).get_weights()))
    assert same("stem_conv") and same("stage2_b_conv")  # frozen in both phases
    assert not same("stage3_a_conv") and not same("head_dense")  # trained in the second phase
    assert not (tmp_path / "run" / "head-phase.weights.h5").exists()
