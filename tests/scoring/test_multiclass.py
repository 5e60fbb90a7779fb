"""Scoring with a model of three classes: softmax head, a score column per class, argmax call,
and no roll-ups (they need two classes), which the user is told."""


import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.folder_helpers import BROKEN_PNG, copy_images
from tfxray.cli.main import cli
from tfxray.data.geometry import ImageGeometry
from tfxray.data.inputs import load_input
from tfxray.models.bundle import BundleMeta, load_bundle, save_bundle
from tfxray.scoring.batch import rollup_path
from tfxray.models.inference import geometry_of

CLASSES = ["normal", "fracture", "hardware"]
SIZE = 32


@pytest.fixture()
def folder(tmp_path, wrist_png):
    png_dir, manifest = wrist_png
    folder = copy_images(png_dir, manifest.path[:8], tmp_path / "in")
    (folder / "broken.png").write_bytes(BROKEN_PNG)
    return folder


@pytest.fixture()
def three_class_run(tmp_path, folder):
    """An untrained tiny_cnn with a softmax head of three units, saved as a run.

    At random weights the three probabilities are all near 1/3 and one class wins everywhere;
    the head is set so that the images of ``folder`` spread over the classes.
    """
    import keras

    from tfxray.models.classifier import build_classifier

    keras.utils.set_random_seed(3)
    model = build_classifier("tiny_cnn", input_size=SIZE, channels=1, n_classes=3, weights=None)
    assert model.layers[-1].activation.__name__ == "softmax" and model.output_shape == (None, 3)
    meta = BundleMeta(classes=CLASSES, input_size=SIZE, channels=1, resize="stretch", backbone="tiny_cnn",
                      gradcam_layer="stage2_b_relu")
    geometry = ImageGeometry(SIZE, 1, "stretch")
    images = np.stack([load_input(str(p), geometry)[0] for p in sorted(folder.glob("P*"))])
    features = np.asarray(keras.Model(model.input, model.get_layer("head_pool").output)(images))
    centred = features - features.mean(0)
    kernel = np.random.default_rng(0).normal(size=(features.shape[1], 3)).astype("float32")
    kernel *= 3.0 / (centred @ kernel).std()  # logits spread by a few units
    head = model.get_layer("head_dense")
    head.set_weights([kernel, -(features.mean(0) @ kernel)])
    run = tmp_path / "run3"
    save_bundle(model, meta, run)
    return run


def test_three_classes_score_per_class_and_call_the_argmax(three_class_run, folder, tmp_path):
    out, panels = tmp_path / "scores.csv", tmp_path / "panels"
    result = CliRunner().invoke(cli, ["score", str(three_class_run), str(folder), "--out", str(out),
                                      "--gradcam", str(panels), "--allow-errors"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, keep_default_na=False)
    columns = [f"score_{c}" for c in CLASSES]
    assert list(table.columns) == ["path", "sop_instance_uid", "patient_id", "study_id", "frame", *columns,
                                   "call", "status", "error"]
    ok = table[table.status == "ok"]
    assert len(ok) == 8 and table[table.status == "error"].path.tolist() == ["broken.png"]
    assert (table.loc[table.status == "error", columns] == "").all(axis=None)
    scores = ok[columns].astype(float).to_numpy()
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=5e-6)  # softmax, written to 6 decimals

    bundle = load_bundle(three_class_run)
    images = np.stack([load_input(str(folder / p), geometry_of(bundle))[0] for p in ok.path])
    expected = np.asarray(bundle.model(images))
    np.testing.assert_allclose(scores, expected, atol=2e-6)
    assert list(ok.call) == [CLASSES[i] for i in expected.argmax(1)]
    assert len(set(ok.call)) >= 2, list(ok.call)  # the calls really depend on the image

    # roll-ups need two classes: none written, and the user is told so in one line
    assert not rollup_path(out).exists()
    notice = "roll-ups: none written (per-study and per-patient roll-ups need a two-class model; this one has 3 classes)"
    assert notice in result.output.splitlines()
    assert f"roll-ups: {rollup_path(out)}" not in result.output
    # a Grad-CAM panel per scored image (the heatmap of the predicted class)
    assert len(list(panels.glob("*.png"))) == 8
