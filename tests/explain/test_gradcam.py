import numpy as np
import pytest

from tfxray.errors import UserError
from pathlib import Path

from tfxray.explain.gradcam import Heatmap, compute_cams, explain_paths, localization, save_panel
from tfxray.models.bundle import Bundle, BundleMeta, load_bundle


def test_pointing_game_on_hand_made_heatmaps():
    cams = np.zeros((3, 10, 10), np.float32)
    cams[0, 2, 3] = 1.0  # inside box 0
    cams[1, 8, 8] = 1.0  # outside box 1
    cams[2] = 1.0  # flat: argmax at (0, 0), inside box 2
    boxes = [np.array([[2, 1, 4, 3]]), np.array([[0, 0, 2, 2]]), np.array([[0, 0, 4, 4]])]
    # a 10 px model input on 10 px images: the boxes map onto the heatmaps unchanged
    bundle = Bundle(None, BundleMeta(["normal", "fracture"], input_size=10, channels=1, resize="stretch",
                                     backbone="tiny_cnn"), Path("."))
    heatmaps = [Heatmap(f"im{i}", np.zeros((10, 10, 1)), cam, 0.9, "fracture", source_size=(10, 10))
                for i, cam in enumerate(cams)]
    result, rows = localization(bundle, heatmaps, boxes)
    assert [row["hit"] for row in rows] == [True, False, True]
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
    with pytest.raises(UserError, match="no layer named 'nope'"):
        compute_cams(bundle, images, layer="nope")


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_layer_override(tiny_run, method):
    """--layer picks another layer than the backbone's default, and its heatmaps are tf-keras-vis's for it."""
    bundle = load_bundle(tiny_run)
    images = np.random.default_rng(3).random((3, 48, 48, 1)).astype("float32")
    default = compute_cams(bundle, images, method=method)
    assert bundle.meta.gradcam_layer == "stage2_b_relu"
    np.testing.assert_allclose(compute_cams(bundle, images, layer="stage2_b_relu", method=method), default, atol=1e-6)
    earlier = compute_cams(bundle, images, layer="stage1_b_relu", method=method)  # 24 px maps, not 12
    assert earlier.shape == default.shape == (3, 48, 48)
    assert np.abs(earlier - default).mean() > 0.05  # really another layer's heatmaps
    np.testing.assert_allclose(earlier, _plain_tf_keras_vis(bundle.model, images, "stage1_b_relu", method), atol=1e-5)


def test_panel_png(tiny_run, wrist_png, tmp_path, monkeypatch):
    """Left: the radiograph as read (not normalized), gray; right: the coloured overlay; caption: path, score, call."""
    from PIL import Image

    from .helpers import capture_captions, panel_parts, shrunk

    folder, manifest = wrist_png
    bundle = load_bundle(tiny_run)
    source = folder / manifest.path[0]
    heatmap = explain_paths(bundle, [str(source)])[0]
    heatmap.path = "P0001/view.png"
    captions = capture_captions(monkeypatch)
    path = save_panel(heatmap, tmp_path / "panel.png")
    width, height = Image.open(path).size
    assert width > height > 200  # two panels side by side

    radiograph, (top, bottom, left, right), coloured = panel_parts(path)
    assert bottom - top > 150 and abs((bottom - top) - (right - left)) <= 2  # the square image, drawn large
    assert right < width / 2 + 20  # on the left
    assert coloured[top:bottom, right:].sum() > 0.5 * (bottom - top) ** 2  # the overlay beside it
    assert not coloured[top:bottom, left:right].any()
    # the 16-bit PNG read independently of tfxray, scaled to [0, 1]; both compared at 24 px
    original = np.asarray(Image.open(source), dtype=np.float64) / 65535
    shown, reference = shrunk(radiograph), shrunk(original)
    assert np.corrcoef(shown.ravel(), reference.ravel())[0, 1] > 0.99
    # the same gray levels, not a normalized or contrast-stretched image (that is 0.08 off here)
    assert np.abs(shown - reference).mean() < 0.02

    caption = captions["panel.png"]
    assert caption == f"P0001/view.png   score {heatmap.score:.3f}   call: {heatmap.call}"
    score = float(np.asarray(bundle.model(heatmap.image[None]))[0, 0])
    assert f"score {score:.3f}" in caption
    assert heatmap.call == ("fracture" if score >= bundle.meta.threshold else "normal")


def test_panel_with_a_box(tiny_run, wrist_png, tmp_path):
    from PIL import Image

    folder, manifest = wrist_png
    heatmap = explain_paths(load_bundle(tiny_run), [str(folder / manifest.path[0])])[0]
    plain = np.asarray(Image.open(save_panel(heatmap, tmp_path / "plain.png")).convert("RGB")).astype(int)
    boxed = np.asarray(Image.open(save_panel(heatmap, tmp_path / "boxed.png", box=np.array([[5, 5, 20, 20]])))
                       .convert("RGB")).astype(int)
    assert plain.shape == boxed.shape
    lime = (boxed[..., 1] > 200) & (boxed[..., 0] < 100) & (boxed[..., 2] < 100)
    assert lime.sum() > 100 and not ((plain[..., 1] > 200) & (plain[..., 0] < 100) & (plain[..., 2] < 100)).any()


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


def test_gradcam_command_layer_option(tiny_run, wrist_png, tmp_path):
    """`tfxray gradcam --layer`: the same radiograph, another overlay; an unknown layer is a usage error."""
    from click.testing import CliRunner
    from PIL import Image

    from tfxray.cli.main import cli

    from .helpers import panel_parts

    folder, manifest = wrist_png
    image = str(folder / manifest.path[0])
    panels = {}
    for layer in (None, "stage1_b_relu"):
        out = tmp_path / str(layer)
        result = CliRunner().invoke(cli, ["gradcam", str(tiny_run), image, "--out", str(out),
                                          *(["--layer", layer] if layer else [])])
        assert result.exit_code == 0, result.output
        (panels[layer],) = out.glob("*.png")
    default, other = (np.asarray(Image.open(panels[k]).convert("RGB")).astype(int) for k in (None, "stage1_b_relu"))
    assert default.shape == other.shape
    gray, (top, bottom, left, right), _ = panel_parts(panels[None])
    np.testing.assert_array_equal(panel_parts(panels["stage1_b_relu"])[0], gray)  # the radiograph, unchanged
    assert np.abs(default[top:bottom, right:] - other[top:bottom, right:]).mean() > 5  # the overlay is not
    bad = CliRunner().invoke(cli, ["gradcam", str(tiny_run), image, "--out", str(tmp_path / "x"), "--layer", "nope"])
    assert bad.exit_code == 2 and "no layer named 'nope'" in bad.output


def test_dicom_panel_shows_the_display_window(tiny_run, wrist_dicom, tmp_path):
    """A DICOM's panel shows its pixels through its VOI window, not min-max scaled.

    The window is set to clip the dark end (to black) and not the bright end: the panel reader
    finds the radiograph by its non-white pixels.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut

    from .helpers import panel_parts, shrunk

    folder, manifest = wrist_dicom
    ds = pydicom.dcmread(folder / manifest.path[0])
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    low, high = np.percentile(values, 30), values.max() + 100
    ds.WindowCenter, ds.WindowWidth = round((low + high) / 2) + 0.5, round(high - low)
    ds.save_as(tmp_path / "windowed.dcm")
    heatmap = explain_paths(load_bundle(tiny_run), [str(tmp_path / "windowed.dcm")])[0]
    radiograph, _, _ = panel_parts(save_panel(heatmap, tmp_path / "panel.png"))

    # DICOM's linear VOI function (PS3.3 C.11.2.1.2), MONOCHROME2
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    windowed = np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    stretched = (values - values.min()) / (values.max() - values.min())
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert (windowed == 0).mean() > 0.2 and windowed.max() < 0.99  # clips the dark end only
    assert radiograph.shape[0] == radiograph.shape[1]  # the whole image was found
    assert np.abs(shrunk(radiograph) - shrunk(windowed)).mean() < 0.02
    assert np.abs(shrunk(radiograph) - shrunk(stretched)).mean() > 0.05  # 0.07 here
