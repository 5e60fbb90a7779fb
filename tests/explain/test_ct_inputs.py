"""A CT model is explained on the input it was trained on: the box's region of the slice and its
two neighbours as channels, built by the same input builder as training (not a whole slice
copied into three channels)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tfxray.cli.main import cli
from tfxray.data.geometry import ImageGeometry
from tfxray.data.inputs import input_builder, load_input
from tfxray.data.manifest import load_manifest
from tfxray.data.pipeline import training_dataset
from tfxray.data.synth import synthesize
from tfxray.explain.gradcam import explain_paths
from tfxray.models.bundle import BundleMeta, load_bundle, save_bundle

SIZE = 32


@pytest.fixture(scope="module")
def ct_run(tmp_path_factory):
    """CT phantoms and an untrained tiny_cnn saved as a CT run (ROI + neighbours, 3 channels)."""
    import keras

    from tfxray.models.classifier import build_classifier

    root = tmp_path_factory.mktemp("ct")
    synthesize(root / "data", task="ct", n=12, seed=2, size=96, progress=False)
    keras.utils.set_random_seed(1)
    model = build_classifier("tiny_cnn", input_size=SIZE, channels=3, n_classes=2, weights=None)
    meta = BundleMeta(classes=["benign", "malignant"], input_size=SIZE, channels=3, resize="stretch",
                      backbone="tiny_cnn", gradcam_layer="stage2_b_relu", roi=True, neighbours=True)
    save_bundle(model, meta, root / "run")
    return root / "run", root / "data" / "manifest.csv"


def test_gradcam_input_equals_the_training_input(ct_run):
    run_dir, manifest_csv = ct_run
    bundle = load_bundle(run_dir)
    manifest = load_manifest(manifest_csv)
    paths = manifest.images["path"].tolist()[3:6]
    geometry = ImageGeometry(SIZE, 3)
    training_inputs = input_builder(geometry, roi=True, neighbours=True, images=manifest.images, boxes=manifest.boxes)
    (trained_on, _), = list(training_dataset(paths, np.zeros(3), training_inputs, batch_size=3, shuffle=False, seed=0))

    heatmaps = explain_paths(bundle, paths, manifest=manifest)
    explained = np.stack([h.image for h in heatmaps])
    np.testing.assert_array_equal(explained, np.asarray(trained_on))
    # the slices differ from their neighbours: the channels are not one slice copied three times
    assert np.abs(explained[..., 0] - explained[..., 1]).max() > 0.01
    whole_slice = np.stack([load_input(p, geometry)[0] for p in paths])
    assert np.abs(explained - whole_slice).max() > 0.1
    # the heatmap knows its crop: the lesion box lands inside the input, centred
    assert heatmaps[0].roi is not None


def test_gradcam_cli_on_a_ct_run_needs_its_manifest(ct_run, tmp_path):
    run_dir, manifest_csv = ct_run
    manifest = load_manifest(manifest_csv)
    one = manifest.images["path"].iloc[0]
    refused = CliRunner().invoke(cli, ["gradcam", str(run_dir), one, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2 and "manifest with boxes and series" in refused.output
    assert "Traceback" not in refused.output

    done = CliRunner().invoke(cli, ["gradcam", str(run_dir), "--boxes", str(manifest_csv), "--out", str(tmp_path / "b")])
    assert done.exit_code == 0, done.output
    panels = sorted((tmp_path / "b").glob("*_gradcam.png"))
    assert len(panels) == len(manifest.images)
    report = json.loads((tmp_path / "b" / "pointing_game.json").read_text())
    # every slice's box is its crop's centre square: the box covers the ROI's middle, so its share is large
    assert report["n"] == len(manifest.images) and 0.2 < report["chance"] <= 1.0
