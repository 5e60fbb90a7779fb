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
