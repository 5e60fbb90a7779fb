"""Online augmentation layers, checked against scipy and against hand-made images."""

import numpy as np
import pytest
from scipy import ndimage

from tfxray.config import OnlineAugmentConfig
from tfxray.data.augment import AffineParams, transform_matrix
from tfxray.data.online import RadiographAugmentation, affine_transforms, online_augmentation


def _apply(image, transforms):
    import tensorflow as tf

    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None, ..., None], transforms=transforms, output_shape=image.shape, fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT",
    ).numpy()[0, ..., 0]


@pytest.mark.parametrize("params", [
    AffineParams(rotation=30),
    AffineParams(rotation=-170, shift_x=0.1),
    AffineParams(flip=True, rotation=10, shift_x=0.1, shift_y=-0.05, shear=0.1, zoom_x=0.9, zoom_y=1.1),
])
def test_one_resampling_matches_scipy(params):
    """The composed matrix, applied by TensorFlow, equals scipy's affine_transform of the offline matrix."""
    image = ndimage.gaussian_filter(np.random.default_rng(0).random((40, 50)), 2).astype(np.float32)
    row = [[float(params.flip), params.rotation, params.shift_x, params.shift_y, params.shear, params.zoom_x,
            params.zoom_y]]
    ours = _apply(image, affine_transforms(np.array(row, np.float32), 40, 50))
    source = image[:, ::-1] if params.flip else image
    reference = ndimage.affine_transform(source, transform_matrix(params, 40, 50), order=1, mode="constant")
    inner = (slice(10, -10), slice(10, -10))  # the two libraries fill past the border differently
    assert np.abs(ours - reference)[inner].max() < 1e-5


def test_quarter_turn_moves_a_pixel_where_expected():
    image = np.zeros((5, 5), np.float32)
    image[0, 2] = 1.0  # top centre
    out = _apply(image, affine_transforms(np.array([[0, 90, 0, 0, 0, 1, 1]], np.float32), 5, 5))
    # output(r, c) samples input(R(r - 2, c - 2) + 2): the top-centre pixel lands mid-left or mid-right
    assert np.unravel_index(out.argmax(), out.shape) in ((2, 0), (2, 4)) and out.max() == pytest.approx(1.0)


def test_flip_probability_one_mirrors_and_zero_keeps():
    image = np.random.default_rng(1).random((2, 6, 7, 1)).astype(np.float32)
    mirrored = np.asarray(RadiographAugmentation(flip_probability=1.0, seed=0)(image, training=True))
    assert np.allclose(mirrored, image[:, :, ::-1], atol=1e-6)
    assert np.allclose(np.asarray(RadiographAugmentation(seed=0)(image, training=True)), image, atol=1e-6)
    layer = RadiographAugmentation(rotation=90, flip_probability=1.0, brightness=0.5, seed=0)
    assert np.array_equal(np.asarray(layer(image, training=False)), image)


def test_draws_cover_the_full_circle_and_the_flip_rate():
    layer = RadiographAugmentation(rotation=180, flip_probability=0.3, zoom=0.1, brightness=0.2, contrast=0.3, seed=3)
    params = np.asarray(layer.draw(4000))
    flip, rotation, zoom_x, zoom_y = params[:, 0], params[:, 1], params[:, 5], params[:, 6]
    assert rotation.min() < -175 and rotation.max() > 175 and np.abs(rotation).max() <= 180
    assert abs(flip.mean() - 0.3) < 0.03  # binomial sd 0.007
    assert zoom_x.min() >= 0.9 and zoom_x.max() <= 1.1
    assert abs(np.corrcoef(zoom_x, zoom_y)[0, 1]) < 0.1  # drawn apart, as ImageDataGenerator does
    assert np.abs(params[:, 7]).max() <= 0.2 and params[:, 8].min() >= 0.7 and params[:, 8].max() <= 1.3
    assert abs(np.corrcoef(params[:, 7], params[:, 8])[0, 1]) < 0.1  # brightness not tied to contrast


def test_brightness_and_contrast_as_keras_computes_them():
    """One image, its draws read back: x + delta, then (x - mean) * factor + mean, clipped to [0, 1]."""
    image = np.random.default_rng(2).random((3, 5, 4, 1)).astype(np.float32) * 0.6 + 0.2
    layer = RadiographAugmentation(brightness=0.3, contrast=0.5, seed=1)
    import tensorflow as tf

    seed = tf.constant(42, tf.int64)
    params = np.asarray(layer.draw(3, seed))
    out = np.asarray(layer(image, training=True, seed=seed))
    bright = np.clip(image + params[:, 7, None, None, None], 0, 1)
    mean = bright.mean(axis=(1, 2), keepdims=True)
    expected = np.clip((bright - mean) * params[:, 8, None, None, None] + mean, 0, 1)
    assert np.allclose(out, expected, atol=1e-6)
    assert np.array_equal(out, np.asarray(layer(image, training=True, seed=seed)))  # stateless given a seed


def test_builder_is_off_when_nothing_is_asked():
    assert online_augmentation(OnlineAugmentConfig(enabled=False, rotation=10), seed=0) is None
    assert online_augmentation(OnlineAugmentConfig(enabled=True), seed=0) is None


def test_builder_reads_the_recipe_fields():
    cfg = OnlineAugmentConfig(enabled=True, rotation=180, flip=True, brightness=0.2, contrast=0.2)
    layer = online_augmentation(cfg, seed=5)
    assert (layer.rotation, layer.flip_probability, layer.brightness, layer.contrast, layer.zoom) == (180, 0.5, 0.2, 0.2, 0)
    image = np.full((16, 12, 12, 1), 0.5, np.float32)
    out = np.asarray(layer(image, training=True))
    assert out.shape == image.shape and out.min() >= 0.0 and out.max() <= 1.0
    assert len(np.unique(out[:, 6, 6, 0].round(4))) > 8  # each image of the batch draws its own jitter


def test_recipe_flip_mirrors_half_the_images():
    """augment.online.flip is a yes/no: true is a flip probability of one half, false none."""
    flipping = online_augmentation(OnlineAugmentConfig(enabled=True, flip=True), seed=0)
    assert flipping.flip_probability == 0.5
    assert online_augmentation(OnlineAugmentConfig(enabled=True, flip=False, rotation=10), seed=0).flip_probability == 0
    image = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (64, 8, 1))[..., None]
    out = np.asarray(flipping(image, training=True))
    mirrored = np.array([np.array_equal(o, image[0, :, ::-1]) for o in out])
    assert all(mirrored | np.array([np.array_equal(o, image[0]) for o in out]))  # each image flipped or kept
    assert 16 <= mirrored.sum() <= 48  # 64 draws at p = 1/2
