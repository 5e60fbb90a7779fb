"""train.precision on a CPU: mixed trains in bfloat16, mixed_float16 (forced) with loss scaling; the
global dtype policy is put back after training, and the saved model scores in float32."""

import numpy as np
import pytest

from tests.chain_helpers import tiny_recipe
from tfxray.data.manifest import load_manifest
from tfxray.errors import UserError
from tfxray.models.bundle import load_bundle
from tfxray.training.distribute import precision_policy


def test_precision_policy_by_device():
    assert precision_policy("mixed", has_gpu=True) == "mixed_float16"
    assert precision_policy("mixed", has_gpu=False) == "mixed_bfloat16"
    assert precision_policy("mixed_float16", has_gpu=False) == "mixed_float16"
    assert precision_policy("mixed_bfloat16", has_gpu=True) == "mixed_bfloat16"
    assert precision_policy("float32", has_gpu=True) == "float32"
    with pytest.raises(UserError, match="train.precision"):
        precision_policy("half", has_gpu=False)


def has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def spy_on_fit(monkeypatch):
    import keras

    from tfxray.training import trainer

    seen = []
    original = trainer._fit

    def spy(model, *args, **kwargs):
        seen.append({"policy": keras.mixed_precision.global_policy().name, "optimizer": type(model.optimizer).__name__,
                     "output": model.output.dtype, "conv": model.get_layer("stem_conv").compute_dtype})
        return original(model, *args, **kwargs)

    monkeypatch.setattr(trainer, "_fit", spy)
    return seen


def train_tiny(wrist_png, run_dir, precision, verbose=0, **extra):
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**{"train.precision": precision, "data.input_size": 32, "model.freeze": "none", **extra})
    manifest = load_manifest(folder / "manifest.csv", classes=recipe.classes)
    return train(recipe, manifest, run_dir, verbose=verbose), manifest


def float32_copy(model):
    """The same weights in a float32 model: what the mixed-precision model approximates."""
    import keras

    from tfxray.models.classifier import build_classifier

    assert keras.mixed_precision.global_policy().name == "float32"
    copy = build_classifier("tiny_cnn", input_size=32, weights=None, normalization="per_image")
    copy.set_weights(model.get_weights())
    return copy


def check_saved_model_scores_in_float32(run_dir, manifest, compute_dtype, atol):
    from tfxray.models.inference import predict_paths

    bundle = load_bundle(run_dir)  # safe mode
    assert bundle.model.get_layer("stem_conv").compute_dtype == compute_dtype  # saved with its policy
    assert bundle.model.output.dtype == "float32"
    paths = manifest.images.path.tolist()[:8]
    scores, _ = predict_paths(bundle, paths)
    assert scores.dtype == np.float32 and np.all((scores >= 0) & (scores <= 1))
    reference, _ = predict_paths(type(bundle)(float32_copy(bundle.model), bundle.meta, bundle.path), paths)
    np.testing.assert_allclose(scores, reference, atol=atol)  # half-precision rounding only
    return scores


def test_mixed_on_a_cpu_trains_in_bfloat16_and_puts_the_policy_back(wrist_png, tmp_path, monkeypatch, capsys):
    import keras

    if has_gpu():
        pytest.skip("with a GPU, mixed means float16 (see the forced test)")
    seen = spy_on_fit(monkeypatch)
    result, manifest = train_tiny(wrist_png, tmp_path / "run", "mixed", verbose=1)
    notice = [line for line in capsys.readouterr().out.splitlines() if line.startswith("precision mixed")]
    assert notice == ["precision mixed: no GPU, so mixed_bfloat16 (float16 is emulated on CPUs; "
                      "--set train.precision=mixed_float16 forces it)"]
    assert seen == [{"policy": "mixed_bfloat16", "optimizer": "Adam", "output": "float32", "conv": "bfloat16"}]
    assert keras.mixed_precision.global_policy().name == "float32"  # no leak into what comes next
    assert np.isfinite(result.history.loss).all() and result.history.loss.iloc[-1] < result.history.loss.iloc[0]
    check_saved_model_scores_in_float32(tmp_path / "run", manifest, "bfloat16", atol=0.05)


def test_forced_float16_uses_the_loss_scale_optimizer(wrist_png, tmp_path, monkeypatch):
    """float16 compute is slow on a CPU (emulated) but must still work: 32 px, one epoch."""
    import keras

    seen = spy_on_fit(monkeypatch)
    result, manifest = train_tiny(wrist_png, tmp_path / "run", "mixed_float16", **{"train.epochs": 1})
    assert seen == [{"policy": "mixed_float16", "optimizer": "LossScaleOptimizer", "output": "float32",
                     "conv": "float16"}]
    assert keras.mixed_precision.global_policy().name == "float32"
    assert np.isfinite(result.history.loss).all()
    assert result.history.lr.iloc[0] == pytest.approx(0.001)  # the rate reads through the wrapper
    check_saved_model_scores_in_float32(tmp_path / "run", manifest, "float16", atol=0.01)


def test_policy_is_put_back_when_training_fails(tmp_path):
    import keras

    from tfxray.training.distribute import training_settings

    with pytest.raises(RuntimeError):
        with training_settings("mixed_bfloat16", deterministic=False):
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            raise RuntimeError("boom")
    assert keras.mixed_precision.global_policy().name == "float32"
