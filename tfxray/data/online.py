"""Online augmentation: a Keras 3 preprocessing layer drawing new random transforms every batch.

``online_augmentation(cfg, seed)`` builds one ``RadiographAugmentation`` layer from the recipe's
``augment.online`` section:

- a random affine transform: rotation (degrees, symmetric; 180 = the full circle, as the
  femoral-neck protocol uses), translation (fraction of the size), zoom (1 +/- zoom, drawn apart
  for height and width, as ImageDataGenerator does), shear (a factor: 0.10 = tangent 0.10, the
  offline convention) and a horizontal flip with a probability, composed into ONE matrix and
  resampled once (bilinear, black fill). The composition is the one offline amplification uses
  (``augment.transform_matrix``), and a test holds it to scipy's resampling;
- brightness (add a uniform draw in +/- brightness) and contrast (scale about the image mean by
  1 +/- contrast), clipped to [0, 1], as ``keras.layers.RandomBrightness`` and ``RandomContrast``
  compute them. "Colour jitter" (the vertebral protocol) on a gray radiograph is brightness and
  contrast only: ``RandomColorJitter``'s saturation and hue need RGB, and with ``channels: 3``
  holding a slice and its neighbours they would mix slices.

Why not chain Keras's own layers (``RandomRotation``, ``RandomTranslation``, ``RandomZoom``,
``RandomShear``, ``RandomFlip``, ``RandomBrightness``, ``RandomContrast``)? Two reasons, both
measured: (1) chained, the geometric layers resample the image four times, and four bilinear
interpolations blur a thin fracture line; (2) each layer draws from a stateful
``SeedGenerator``, which under a parallel tf.data map advances in whatever order the threads
run, so runs are reproducible only if the map runs sequentially, at half the throughput on two
cores. This layer also accepts a per-batch ``seed`` tensor and then draws statelessly: the
training pipeline feeds it a seeded stream (``tf.data.Dataset.random``), so batches are augmented
in parallel and two runs with the same seed get the same batches. Called without ``seed`` it
behaves like Keras's layers (its own ``SeedGenerator``, one step per call).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import keras

if TYPE_CHECKING:
    from ..config import OnlineAugmentConfig

FLIP_PROBABILITY = 0.5  # augment.online.flip: true mirrors half the images, as keras.layers.RandomFlip


def affine_transforms(params, height, width):
    """Per-image ImageProjectiveTransform rows (n, 8) from drawn parameters.

    ``params``: (n, 7) float32 columns flip (0/1), rotation (degrees), shift_x, shift_y
    (fractions), shear (factor), zoom_x, zoom_y, as ``augment.AffineParams``. The matrix maps an
    output pixel (row, col) to the input pixel it samples, composed as offline amplification does:
    flip @ centre @ rotation @ shift @ shear @ zoom @ uncentre.
    """
    import tensorflow as tf

    params = tf.cast(params, tf.float32)
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    flip, rotation, shift_x, shift_y, shear, zoom_x, zoom_y = tf.unstack(params, axis=1)
    theta = rotation * (math.pi / 180.0)
    zero, one = tf.zeros_like(theta), tf.ones_like(theta)

    def mat(rows):  # (n, 3, 3) from nested lists of (n,) tensors
        return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)

    cos, sin = tf.cos(theta), tf.sin(theta)
    m = mat([[cos, -sin, zero], [sin, cos, zero], [zero, zero, one]])
    m = m @ mat([[one, zero, shift_y * h], [zero, one, shift_x * w], [zero, zero, one]])
    m = m @ mat([[one, -shear, zero], [zero, one, zero], [zero, zero, one]])
    m = m @ mat([[zoom_y, zero, zero], [zero, zoom_x, zero], [zero, zero, one]])
    cy, cx = (h - 1) / 2, (w - 1) / 2
    centre = mat([[one, zero, one * cy], [zero, one, one * cx], [zero, zero, one]])
    uncentre = mat([[one, zero, -one * cy], [zero, one, -one * cx], [zero, zero, one]])
    # the flip acts on the input coordinate: sample column w-1-c, as ``apply_params`` flips first
    flipped = mat([[one, zero, zero], [zero, one - 2 * flip, flip * (w - 1)], [zero, zero, one]])
    m = flipped @ centre @ m @ uncentre
    # (row, col) -> ImageProjectiveTransformV3's (x=col, y=row): x' = a0 x + a1 y + a2, y' = b0 x + b1 y + b2
    return tf.stack(
        [m[:, 1, 1], m[:, 1, 0], m[:, 1, 2], m[:, 0, 1], m[:, 0, 0], m[:, 0, 2], zero, zero], axis=1
    )


@keras.saving.register_keras_serializable(package="tfxray")
class RadiographAugmentation(keras.layers.Layer):
    """Random flip, rotation, shift, shear, zoom (one resampling), then brightness and contrast.

    Input: float32 (batch, H, W, C) or (H, W, C) in [0, 1]. The identity when ``training=False``.
    ``seed``: an optional int64 scalar tensor naming this call's draws (the pipeline's per-batch
    stream); without it the layer's own ``SeedGenerator`` supplies one per call. Runs inside
    tf.data with the TensorFlow backend (tfxray's).
    """

    def __init__(self, rotation=0.0, translate=0.0, zoom=0.0, shear=0.0, flip_probability=0.0, brightness=0.0,
                 contrast=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.translate, self.zoom = float(rotation), float(translate), float(zoom)
        self.shear, self.flip_probability = float(shear), float(flip_probability)
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def geometric(self) -> bool:
        return bool(self.rotation or self.translate or self.zoom or self.shear or self.flip_probability)

    def draw(self, batch_size, seed=None):
        """(batch, 9) draws: the 7 ``AffineParams`` columns, then brightness delta and contrast factor."""
        import tensorflow as tf

        if seed is None:
            pair = self.seed_generator.next()
        else:  # the call's seed and the layer's own, so two layers fed the same stream still differ
            pair = tf.stack([tf.cast(seed, tf.int64), tf.constant(int(self.seed or 0), tf.int64)])
        u = tf.random.stateless_uniform((batch_size, 9), seed=tf.cast(pair, tf.int64), minval=-1.0, maxval=1.0)
        flip = tf.cast(0.5 * (u[:, 0] + 1.0) < self.flip_probability, tf.float32)
        return tf.stack([
            flip, u[:, 1] * self.rotation, u[:, 2] * self.translate, u[:, 3] * self.translate,
            u[:, 4] * self.shear, 1.0 + u[:, 5] * self.zoom, 1.0 + u[:, 6] * self.zoom,
            u[:, 7] * self.brightness, 1.0 + u[:, 8] * self.contrast,
        ], axis=1)

    def call(self, images, training=True, seed=None):
        import tensorflow as tf

        if not training:
            return images
        batched = len(images.shape) == 4
        x = tf.convert_to_tensor(images, tf.float32)
        x = x if batched else x[None]
        shape = tf.shape(x)
        params = self.draw(shape[0], seed)
        if self.geometric:
            x = tf.raw_ops.ImageProjectiveTransformV3(
                images=x, transforms=affine_transforms(params[:, :7], shape[1], shape[2]), output_shape=shape[1:3],
                fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT",
            )
        if self.brightness:  # RandomBrightness on value_range (0, 1)
            x = tf.clip_by_value(x + params[:, 7, None, None, None], 0.0, 1.0)
        if self.contrast:  # RandomContrast: about each image's (and channel's) mean
            mean = tf.reduce_mean(x, axis=(1, 2), keepdims=True)
            x = tf.clip_by_value((x - mean) * params[:, 8, None, None, None] + mean, 0.0, 1.0)
        return x if batched else x[0]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "translate": self.translate, "zoom": self.zoom,
                "shear": self.shear, "flip_probability": self.flip_probability, "brightness": self.brightness,
                "contrast": self.contrast, "seed": self.seed}


def online_augmentation(cfg: OnlineAugmentConfig, seed: int) -> RadiographAugmentation | None:
    """The recipe's online augmentation as one Keras layer, or None when it is off or empty.

    Apply it to float32 batches in [0, 1]: ``layer(images, training=True)``, or with
    ``seed=<int64 tensor>`` for stateless, order-independent draws (``pipeline.labelled_dataset``).
    """
    if not cfg.enabled:
        return None
    layer = RadiographAugmentation(
        rotation=cfg.rotation, translate=cfg.translate, zoom=cfg.zoom, shear=cfg.shear,
        flip_probability=FLIP_PROBABILITY if cfg.flip else 0.0, brightness=cfg.brightness, contrast=cfg.contrast,
        seed=int(seed) % 2**31, name="online_augmentation",
    )
    return layer if (layer.geometric or layer.brightness or layer.contrast) else None
