import numpy as np
import pytest

from tfxray.config import OfflineAugmentConfig
from tfxray.data.augment import AffineParams, amplification_plan, apply_params, draw_params, transform_matrix


def test_wrist_amplification_numbers():
    """1,389 radiographs -> 11,112 with the default factor 8 (Kim & MacKinnon 2018)."""
    cfg = OfflineAugmentConfig(factor=8)
    plan = amplification_plan([f"img{i}.png" for i in range(1389)], cfg.factor, cfg, seed=0)
    assert len(plan) == 11112
    per_image = plan.groupby("source")
    assert (per_image.size() == 8).all()
    first = plan[plan.source == "img0.png"].reset_index(drop=True)
    assert not first.loc[0, "flip"] and first.loc[1, "flip"]  # the image and its horizontal flip
    assert first.loc[0, ["rotation", "shift_x", "shear"]].abs().sum() == 0
    random_part = plan[plan.variant >= 2]
    assert random_part.rotation.abs().max() <= 25 and random_part.rotation.abs().max() > 20
    assert random_part.shift_x.abs().max() <= 0.15 and random_part.shift_y.abs().max() <= 0.15
    assert random_part.shear.abs().max() <= 0.10
    assert random_part.zoom_x.between(0.85, 1.15).all()


def test_plan_is_reproducible_for_a_seed():
    cfg = OfflineAugmentConfig(factor=8)
    a = amplification_plan(["a.png", "b.png"], 8, cfg, seed=3)
    b = amplification_plan(["a.png", "b.png"], 8, cfg, seed=3)
    c = amplification_plan(["a.png", "b.png"], 8, cfg, seed=4)
    assert a.equals(b) and not a.equals(c)


def test_flip_and_identity():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(apply_params(image, AffineParams()), image)
    assert np.array_equal(apply_params(image, AffineParams(flip=True)), image[:, ::-1])


def test_rotation_by_90_degrees_about_the_centre():
    image = np.zeros((5, 5), np.float32)
    image[0, 2] = 1.0  # top centre
    rotated = apply_params(image, AffineParams(rotation=90))
    assert rotated.argmax() in (np.ravel_multi_index((2, 0), (5, 5)), np.ravel_multi_index((2, 4), (5, 5)))
    assert rotated[2, 2] == 0


def test_shift_moves_content_by_the_fraction():
    image = np.zeros((10, 10), np.float32)
    image[5, 5] = 1.0
    shifted = apply_params(image, AffineParams(shift_x=0.2))
    # output(r, c) = input(r, c + 2): the bright pixel moves 2 columns left, as keras' width_shift does
    assert np.unravel_index(shifted.argmax(), shifted.shape) == (5, 3)


def test_matrix_composition_is_identity_for_defaults():
    assert np.allclose(transform_matrix(AffineParams(), 7, 9), np.eye(3))


def test_draw_params_counts():
    cfg = OfflineAugmentConfig(factor=3, flip=False)
    variants = draw_params(np.random.default_rng(0), 3, cfg)
    assert len(variants) == 3 and not any(v.flip for v in variants)


def test_amplified_stacks_are_written_as_three_gray_files(tmp_path):
    """CT inputs (a slice's region and its neighbours) amplify to three 16-bit PNGs per variant, box
    dropped; the amplified rows' own builder reads them back as the variants."""
    import pandas as pd

    from tfxray.data.augment import amplify_offline
    from tfxray.data.geometry import ImageGeometry
    from tfxray.data.inputs import SliceStackInput
    from tfxray.images import read_image

    ramp = np.tile(np.linspace(0, 1, 12, dtype=np.float32), (12, 1))
    stacks = {"a": np.stack([ramp * 0.2, ramp * 0.5, ramp], -1), "b": np.stack([1 - ramp] * 3, -1)}
    rows = pd.DataFrame({"path": ["a", "b"], "prev_path": ["a", "a"], "next_path": ["b", "b"],
                         "x1": [1.0, 2.0], "y1": [1.0, 2.0], "x2": [5.0, 6.0], "y2": [5.0, 6.0],
                         "label": ["benign", "malignant"], "patient_id": ["P1", "P2"]})
    cfg = OfflineAugmentConfig(factor=3, flip=True)
    inputs = SliceStackInput(ImageGeometry(12, 3), rows)
    inputs.load_path = lambda path: (stacks[path], {})  # the crops, as the real builder would make them
    out, amplified = amplify_offline(rows, inputs, cfg, 0, tmp_path, progress=False)
    assert len(out) == 6 and out[["x1", "y2"]].isna().all().all()  # cropped already: no box left
    assert isinstance(amplified, SliceStackInput)
    np.testing.assert_allclose(amplified.load_path(out.path.iloc[0])[0], stacks["a"], atol=1e-4)
    assert out.label.tolist() == ["benign"] * 3 + ["malignant"] * 3
    identity, flipped = out.iloc[0], out.iloc[1]
    channels = [read_image(identity[c]).pixels for c in ("prev_path", "path", "next_path")]
    assert np.abs(np.stack(channels, -1) - stacks["a"]).max() < 1e-4
    assert np.abs(read_image(flipped["path"]).pixels - stacks["a"][:, ::-1, 1]).max() < 1e-4
    assert len(list(tmp_path.glob("*.png"))) == 18
