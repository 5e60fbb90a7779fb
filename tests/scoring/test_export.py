"""`tfxray export`: the SavedModel and the TFLite file give the run's scores on the same pixels."""

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from tfxray.cli.main import cli
from tfxray.models.bundle import load_bundle

from .helpers import reference_input


@pytest.fixture(scope="module")
def pixels_and_scores(tiny_run, wrist_png):
    png_dir, manifest = wrist_png
    bundle = load_bundle(tiny_run)
    images = np.stack([reference_input(png_dir / p, bundle.meta.input_size) for p in manifest.path[:5]])
    return images, np.asarray(bundle.model(images, training=False))


def test_savedmodel_serving_signature(tiny_run, pixels_and_scores, tmp_path):
    import tensorflow as tf

    images, expected = pixels_and_scores
    out = tmp_path / "serving" / "1"
    result = CliRunner().invoke(cli, ["export", str(tiny_run), "--format", "savedmodel", "--out", str(out)])
    assert result.exit_code == 0, result.output
    loaded = tf.saved_model.load(str(out))
    signature = loaded.signatures["serving_default"]
    spec = signature.structured_input_signature[1]["pixels"]
    assert spec.shape.as_list() == [None, 48, 48, 1] and spec.dtype == tf.float32
    scores = signature(pixels=tf.constant(images))["scores"].numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    meta = json.loads((out / "assets" / "tfxray.json").read_text())
    assert meta["classes"] == ["normal", "fracture"] and meta["input_size"] == 48
    assert meta["trained_on"]["kinds"] == ["png"]  # what the model was trained on travels with it
    assert sorted(p.name for p in out.parent.iterdir()) == ["1"]  # no temporary left behind

    again = CliRunner().invoke(cli, ["export", str(tiny_run), "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output


def test_tflite_file(tiny_run, pixels_and_scores, tmp_path):
    import tensorflow as tf

    images, expected = pixels_and_scores
    out = tmp_path / "wrist.tflite"
    result = CliRunner().invoke(cli, ["export", str(tiny_run), "--format", "tflite", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's notice about LiteRT
        interpreter = tf.lite.Interpreter(model_path=str(out))
    runner = interpreter.get_signature_runner("serving_default")
    scores = runner(pixels=images)["scores"]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert json.loads((tmp_path / "wrist.tflite.json").read_text())["threshold"] == load_bundle(tiny_run).meta.threshold
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrist.tflite", "wrist.tflite.json"]
