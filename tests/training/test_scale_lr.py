"""`train.scale_lr`: the learning rate times the number of replicas (linear scaling rule)."""

import pytest

from tests.chain_helpers import tiny_recipe


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


# The run over two replicas, with the rate and its schedule doubled, is
# tests/training/test_distribute.py::test_mirrored_strategy_over_two_logical_cpus (one run for both checks).
