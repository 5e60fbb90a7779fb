"""Each published recipe trains end to end on phantoms of its kind, shrunk by overrides."""

import pandas as pd
import pytest

from tfxray.config import load_recipe
from tfxray.data.manifest import load_manifest
from tfxray.data.synth import synthesize
from tfxray.models.bundle import load_bundle


@pytest.mark.slow
def test_wrist_recipe_inception_top_layer_with_8x_offline_amplification(tmp_path):
    from tfxray.training.trainer import train

    from tfxray.models.backbones import build_backbone

    synthesize(tmp_path / "data", task="wrist", n=40, seed=3, size=96, progress=False)
    # The recipe's frozen InceptionV3 from a weights file (random here, no download): a frozen backbone
    # with weights: none is refused, since its head would learn on noise.
    weights = tmp_path / "inception.weights.h5"
    build_backbone("inception_v3", (75, 75, 3)).save_weights(weights)
    recipe = load_recipe("wrist", [
        (["data", "input_size"], 75), (["model", "weights"], str(weights)), (["train", "iterations"], 6),
        (["train", "batch_size"], 16), (["train", "schedule", "every"], 2), (["train", "cache_dir"], str(tmp_path / "c")),
    ])
    manifest = load_manifest(tmp_path / "data" / "manifest.csv", classes=recipe.classes)
    result = train(recipe, manifest, tmp_path / "run", verbose=0)
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    amplified = pd.read_csv(tmp_path / "run" / "amplified" / "amplified.csv")
    n_train = int((split.split == "train").sum())
    assert len(amplified) == 8 * n_train and set(amplified.source) == set(split.path[split.split == "train"])
    # a budget of 6 iterations: one epoch of exactly 6 steps (the schedule decays every 2)
    assert len(result.history) == 1
    assert result.history.lr.iloc[-1] == pytest.approx(0.02 * 0.67**3, rel=1e-5)
    bundle = load_bundle(tmp_path / "run")
    assert bundle.meta.backbone == "inception_v3" and bundle.meta.input_size == 75
    assert "youden" in bundle.meta.threshold_rule
    trainable = {l.name for l in bundle.model.layers if l.trainable and l.weights}
    assert trainable == {"head_dense"}  # the top layer only


def test_vertebral_radiograph_recipe_builds_resnext_with_its_shallow_stages_frozen():
    from tfxray.data.geometry import ImageGeometry
    from tfxray.training.trainer import _build_model

    recipe = load_recipe("vertebral-radiograph", [(["data", "input_size"], 32), (["model", "weights"], "none")])
    assert (recipe.model.backbone, recipe.model.freeze, recipe.data.folds) == ("resnext50_32x4d", "until:stage2", 5)
    model = _build_model(recipe, ImageGeometry(32, recipe.data.channels, recipe.data.resize), 0.3, 0.2)
    assert not model.get_layer("layer2_3_conv3").trainable and model.get_layer("layer3_0_conv1").trainable
    assert not model.get_layer("layer2_3_bn3").trainable  # frozen BatchNorm too


@pytest.mark.slow
def test_vertebral_radiograph_recipe_shallow_frozen_cross_validated(tmp_path):
    from tfxray.training.crossval import cross_validate

    synthesize(tmp_path / "data", task="spine", n=36, seed=4, size=64, progress=False)
    # The recipe's ResNeXt-50 is built with its freeze in the test above; here the tiny CNN (same
    # stage names) keeps two folds of training cheap: tracing ResNeXt's training step costs about
    # 35 s per fold on 2 cores, and what this test checks is the protocol's path (folds, colour
    # jitter, dataset mean/std per fold, balanced classes, shallow stages frozen).
    recipe = load_recipe("vertebral-radiograph", [
        (["data", "input_size"], 32), (["data", "folds"], 2), (["model", "weights"], "none"),
        (["model", "backbone"], "tiny_cnn"), (["train", "epochs"], 1), (["train", "batch_size"], 8),
    ])
    assert recipe.model.freeze == "until:stage2" and recipe.data.normalization == "dataset"
    manifest = load_manifest(tmp_path / "data" / "manifest.csv", classes=recipe.classes)
    oof = cross_validate(recipe, manifest, tmp_path / "cv", verbose=0)
    assert sorted(oof.path) == sorted(manifest.images.path) and set(oof.fold) == {1, 2}
    bundle = load_bundle(tmp_path / "cv" / "fold-1")
    model = bundle.model
    boundary = [layer.name for layer in model.layers].index("stage2_pool")
    shallow = [layer for layer in model.layers[1 : boundary + 1] if layer.weights]
    deep = [layer for layer in model.layers[boundary + 1 :] if layer.weights]
    assert shallow and not any(layer.trainable for layer in shallow)
    assert deep and all(layer.trainable for layer in deep)
    pre = model.get_layer("preprocessing")
    assert pre.mode == "dataset" and 0 < pre.mean < 1 and pre.std > 0
    # computed on the fold's training split only, as its split.csv lists it
    from tests.training.test_normalization import training_split_stats_match_the_saved_model

    training_split_stats_match_the_saved_model(tmp_path / "cv" / "fold-1", 32)


@pytest.mark.slow
def test_vertebral_ct_recipe_roi_neighbours_amplified_patient_max(tmp_path):
    from tfxray.evaluation.report import evaluate_table
    from tfxray.training.crossval import cross_validate

    synthesize(tmp_path / "data", task="ct", n=48, seed=5, size=96, progress=False)
    # The recipe's ResNet50 (built with its head and L2 in tests/models/test_head.py) is swapped for the
    # tiny CNN here: tracing ResNet50's training step twice (two folds) costs about 100 s on 2 cores,
    # and what this test checks is the data path (ROI, neighbours, amplification, folds, patient max).
    assert load_recipe("vertebral-ct", []).model.backbone == "resnet50"
    recipe = load_recipe("vertebral-ct", [
        (["data", "input_size"], 32), (["data", "folds"], 2), (["model", "weights"], "none"),
        (["model", "backbone"], "tiny_cnn"),
        (["augment", "offline", "factor"], 2), (["train", "epochs"], 1), (["train", "batch_size"], 8),
    ])
    assert (recipe.data.input_size, recipe.data.channels, recipe.train.beta_1, recipe.train.lr) == (32, 3, 0.5, 1e-4)
    manifest = load_manifest(tmp_path / "data" / "manifest.csv", classes=recipe.classes)
    oof = cross_validate(recipe, manifest, tmp_path / "cv", verbose=0)
    assert sorted(oof.path) == sorted(manifest.images.path)
    amplified = pd.read_csv(tmp_path / "cv" / "fold-1" / "amplified" / "amplified.csv")
    split = pd.read_csv(tmp_path / "cv" / "fold-1" / "split.csv")
    assert len(amplified) == 2 * int((split.split == "train").sum())
    bundle = load_bundle(tmp_path / "cv" / "fold-1")
    assert bundle.meta.channels == 3 and bundle.meta.roi and bundle.meta.neighbours
    assert recipe.train.early_stopping == 10 and recipe.train.restore_best
    assert bundle.model.get_layer("head_dense").kernel_regularizer.l2 == pytest.approx(1e-4)  # the protocol's L2
    report = evaluate_table(oof, label_column="label", positive="malignant", score_columns=["score"],
                            patient_column="patient_id", aggregate="max", threshold="0.5")
    assert set(report["levels"]) == {"image", "patient"}
    # out-of-fold scores come from the ROI-and-neighbours input, as the model was trained
    import numpy as np

    from tfxray.data.ct import ct_rows, load_ct_input
    from tfxray.data.geometry import ImageGeometry

    part = oof[oof.fold == 1]
    rows = ct_rows(manifest.images, manifest.boxes, roi=True, neighbours=True, paths=part.path.tolist())
    boxes = rows[["x1", "y1", "x2", "y2"]].to_numpy()
    images = np.stack([load_ct_input(triple, box, ImageGeometry(32, 3))
                       for triple, box in zip(rows[["prev_path", "path", "next_path"]].to_numpy(), boxes)])
    np.testing.assert_allclose(part.score, np.asarray(bundle.model(images))[:, 0], atol=1e-5)
