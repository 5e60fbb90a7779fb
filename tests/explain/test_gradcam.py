import numpy as np
import pytest

from tfxray.errors import UserError
from tfxray.explain.gradcam import compute_cams, explain_paths, pointing_game, save_panel
from tfxray.models.bundle import load_bundle


def test_pointing_game_on_hand_made_heatmaps():
    cams = np.zeros((3, 10, 10), np.float32)
    cams[0, 2, 3] = 1.0  # inside box 0
    cams[1, 8, 8] = 1.0  # outside box 1
    cams[2] = 1.0  # flat: argmax at (0, 0), inside box 2
    boxes = [np.array([[2, 1, 4, 3]]), np.array([[0, 0, 2, 2]]), np.array([[0, 0, 4, 4]])]
    result = pointing_game(cams, boxes)
    assert result["n"] == 3
    assert result["hit_rate"] == pytest.approx(2 / 3)
    # mass: 1.0, 0.0, 25/100 (5x5 pixels of a flat map; box ends are inclusive)
    assert result["mass_in_box"] == pytest.approx((1.0 + 0.0 + 0.25) / 3)
    assert result["chance"] == pytest.approx((9 / 100 + 9 / 100 + 25 / 100) / 3)


def test_batched_cams_equal_one_at_a_time(tiny_run, wrist_png):
    folder, manifest = wrist_png
    bundle = load_bundle(tiny_run)
    paths = [str(folder / p) for p in manifest.path[:4]]
    batched = explain_paths(bundle, paths, batch_size=4)
    single = [explain_paths(bundle, [p], batch_size=1)[0] for p in paths]
    for a, b in zip(batched, single):
        assert a.cam.shape == (48, 48)
        assert 0 <= a.cam.min() and a.cam.max() <= 1
        np.testing.assert_allclose(a.cam, b.cam, atol=1e-4)
        assert a.score == pytest.approx(b.score, abs=1e-6)


def test_gradcam_plus_plus_and_bad_layer(tiny_run, wrist_png):
    folder, manifest = wrist_png
    bundle = load_bundle(tiny_run)
    images = np.random.default_rng(0).random((2, 48, 48, 1)).astype("float32")
    cams = compute_cams(bundle, images, method="gradcam++")
    assert cams.shape == (2, 48, 48) and np.isfinite(cams).all()
    earlier = compute_cams(bundle, images, layer="stage2_b_relu")
    assert earlier.shape == (2, 48, 48)
    with pytest.raises(UserError, match="no layer named 'nope'"):
        compute_cams(bundle, images, layer="nope")


def test_panel_png(tiny_run, wrist_png, tmp_path):
    folder, manifest = wrist_png
    bundle = load_bundle(tiny_run)
    heatmap = explain_paths(bundle, [str(folder / manifest.path[0])])[0]
    path = save_panel(heatmap, tmp_path / "panel.png", box=np.array([[5, 5, 20, 20]]))
    from PIL import Image

    image = Image.open(path)
    assert image.size[0] > image.size[1] > 200  # two panels side by side


def _plain_tf_keras_vis(model, images, layer, method):
    """Heatmaps from tf-keras-vis used the textbook way: a clone with a linear output, called eagerly."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore

    cls = Gradcam if method == "gradcam" else GradcamPlusPlus
    explainer = cls(model, model_modifier=ReplaceToLinear(), clone=True)
    return explainer(BinaryScore([1.0] * len(images)), images, penultimate_layer=layer, seek_penultimate_conv_layer=False)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_traced_backbone_gives_tf_keras_vis_heatmaps(tiny_run, method):
    from tfxray.explain.gradcam import explainer_for

    bundle = load_bundle(tiny_run)
    images = np.random.default_rng(1).random((3, 48, 48, 1)).astype("float32")
    layer = bundle.meta.gradcam_layer
    ours = compute_cams(bundle, images, method=method)
    assert explainer_for(bundle.model, method, layer).model.name.endswith("_explain")  # the traced path ran
    expected = _plain_tf_keras_vis(bundle.model, images, layer, method)
    assert expected.std() > 0.05  # heatmaps with structure, not flat maps
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    # the model itself is untouched: its head still ends in a sigmoid
    assert bundle.model.layers[-1].activation.__name__ == "sigmoid"


@pytest.mark.slow
def test_resnet50_heatmaps_and_a_layer_the_model_cannot_be_cut_at():
    from tfxray.explain.gradcam import explainer_for, explanation_model
    from tfxray.models.bundle import Bundle, BundleMeta
    from tfxray.models.classifier import build_classifier

    import keras

    keras.utils.set_random_seed(0)
    model = build_classifier("resnet50", input_size=64, weights=None)
    bundle = Bundle(model, BundleMeta(classes=["normal", "fracture"], input_size=64, channels=1, resize="stretch",
                                      backbone="resnet50", gradcam_layer="conv5_block3_out"), path=None)
    images = np.random.default_rng(2).random((2, 64, 64, 1)).astype("float32")
    np.testing.assert_allclose(compute_cams(bundle, images), _plain_tf_keras_vis(model, images, "conv5_block3_out", "gradcam"),
                               atol=1e-5)
    # inside the last block: its residual connection skips past the layer, so the model runs whole
    inner = "conv5_block3_2_relu"
    assert explanation_model(model, inner) is None
    cams = compute_cams(bundle, images, layer=inner)
    assert not explainer_for(model, "gradcam", inner).model.name.endswith("_explain")
    np.testing.assert_allclose(cams, _plain_tf_keras_vis(model, images, inner, "gradcam"), atol=1e-5)
