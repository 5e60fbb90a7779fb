"""`train.scale_lr`: the learning rate times the number of replicas (linear scaling rule)."""

import math
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from tests.chain_helpers import tiny_recipe
from tests.training.test_distribute import train_command


@pytest.mark.parametrize("schedule", [
    {},
    {"train.schedule.name": "step", "train.schedule.every": 3, "train.schedule.factor": 0.5},
    {"train.schedule.name": "cosine", "train.schedule.warmup": 2},
    {"train.schedule.name": "plateau", "train.schedule.factor": 0.5},
])
def test_optimizer_rate_is_the_recipe_rate_times_the_scale(schedule):
    import keras

    from tfxray.training.trainer import _optimizer

    recipe = tiny_recipe(**{"train.lr": 0.001, **schedule})
    for scale in (1, 2, 4):
        optimizer = _optimizer(recipe, total_steps=10, lr_scale=scale)
        rate = optimizer.learning_rate  # the schedule's value at step 0 (or the plain variable)
        first = float(keras.ops.convert_to_numpy(rate))
        expected = 0.001 * scale * (0.5 if schedule.get("train.schedule.name") == "cosine" else 1.0)  # warm-up 1/2
        assert first == pytest.approx(expected, rel=1e-6)


def test_one_replica_leaves_the_rate_alone(wrist_png, tmp_path):
    from tfxray.data.manifest import load_manifest
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**{"train.scale_lr": True, "train.lr": 0.003, "train.epochs": 1, "data.input_size": 32,
                            "train.strategy": "default"})
    history = train(recipe, load_manifest(folder / "manifest.csv", classes=recipe.classes), tmp_path / "run",
                    verbose=0).history
    assert history.lr.tolist() == pytest.approx([0.003], rel=1e-6)


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_doubles_the_rate_and_its_schedule(wrist_png, tmp_path):
    folder, _ = wrist_png
    run = tmp_path / "run"
    env = {**os.environ, "TFXRAY_CPU_DEVICES": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = train_command(folder, run, "--strategy", "mirrored", "--set", "train.scale_lr=true",
                            "--set", "train.schedule.name=step", "--set", "train.schedule.every=4",
                            "--set", "train.schedule.factor=0.5")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MirroredStrategy: 2 replicas, global batch 8" in result.stdout
    history = pd.read_csv(run / "history.csv")
    n_train = int((pd.read_csv(run / "split.csv").split == "train").sum())
    steps = math.ceil(n_train / 8)  # global batch: 4 per replica x 2
    # the demo's 0.001 x 2 replicas, halved every 4 steps
    expected = [0.002 * 0.5 ** ((epoch * steps) // 4) for epoch in history.epoch]
    np.testing.assert_allclose(history.lr, expected, rtol=1e-6)
