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

    synthesize(tmp_path / "data", task="wrist", n=40, seed=3, size=96, progress=False)
    recipe = load_recipe("wrist", [
        (["data", "input_size"], 75), (["model", "weights"], "none"), (["train", "iterations"], 6),
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
