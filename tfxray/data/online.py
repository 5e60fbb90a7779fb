"""Online augmentation: Keras 3 preprocessing layers drawing new random transforms every batch.

``online_augmentation(cfg, seed)`` builds a ``keras.layers.Pipeline`` (a plain layer, safe inside
``tf.data``) from the recipe's ``augment.online`` section:

- ``RandomAffine`` (this module): rotation (degrees, symmetric; 180 = the full circle, as the
  femoral-neck protocol uses), translation (fraction of the size), zoom (1 +/- zoom, drawn apart
  for height and width), shear (a factor: 0.10 = tangent 0.10, the offline convention) and a
  horizontal flip with a probability, composed into ONE matrix and resampled once (bilinear,
  black fill). Keras 3.15 has each of these as its own layer (``RandomRotation``,
  ``RandomTranslation``, ``RandomZoom``, ``RandomShear``, ``RandomFlip``), but chaining them
  resamples the image four times: four bilinear interpolations blur a thin fracture line, and
  cost four passes. The composition is the one offline amplification uses
  (``augment.transform_matrix``, ImageDataGenerator's), so the two agree for the same draws.
- ``keras.layers.RandomBrightness`` and ``keras.layers.RandomContrast`` on the [0, 1] range.
  "Colour jitter" (the vertebral protocol) on a gray radiograph is brightness and contrast only:
  ``RandomColorJitter``'s saturation and hue need RGB, and with ``channels: 3`` holding a slice and
  its neighbours they would mix slices, so they are never used.

Seeds: each layer gets its own seed derived from ``seed`` (the same seed in two layers would draw
identical numbers, tying brightness to contrast). A layer keeps a ``SeedGenerator`` whose state
advances by one per batch, so two runs that build the layers with the same seed and feed batches
in the same order get the same augmented batches; ``pipeline.training_dataset(deterministic=True)``
keeps that order by running the augmentation map sequentially.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import keras

if TYPE_CHECKING:
    from ..config import OnlineAugmentConfig

DEFAULT_FLIP_PROBABILITY = 0.5
_SEED_STRIDE = 7919  # a prime: layer k is seeded seed * stride + k, so layers never share a seed


def _layer_seed(seed: int, k: int) -> int:
    return (int(seed) * _SEED_STRIDE + k) % 2**31


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
class RandomAffine(keras.layers.Layer):
    """Random flip, rotation, shift, shear and zoom as one resampling (see the module docstring).

    Behaves like Keras's own random layers: the identity when ``training=False``, random draws
    from a seeded ``SeedGenerator`` (one step per batch), usable inside tf.data (TensorFlow
    backend). Keras's ``BaseImagePreprocessingLayer`` is not public API, so this is a plain layer.
    """

    def __init__(self, rotation=0.0, translate=0.0, zoom=0.0, shear=0.0, flip_probability=0.0,
                 fill_value=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.translate, self.zoom = float(rotation), float(translate), float(zoom)
        self.shear, self.flip_probability, self.fill_value = float(shear), float(flip_probability), float(fill_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def draw(self, batch_size):
        """(batch, 7) parameters as ``augment.AffineParams`` columns, one row per image."""
        u = keras.random.uniform((batch_size, 7), minval=-1.0, maxval=1.0, seed=self.seed_generator)
        flip = keras.ops.cast(0.5 * (u[:, 0] + 1.0) < self.flip_probability, "float32")
        return keras.ops.stack([
            flip, u[:, 1] * self.rotation, u[:, 2] * self.translate, u[:, 3] * self.translate,
            u[:, 4] * self.shear, 1.0 + u[:, 5] * self.zoom, 1.0 + u[:, 6] * self.zoom,
        ], axis=1)

    def call(self, images, training=True):
        if not training:
            return images
        batched = len(images.shape) == 4
        x = images if batched else keras.ops.expand_dims(images, 0)
        shape = keras.ops.shape(x)
        transforms = affine_transforms(self.draw(shape[0]), shape[1], shape[2])
        x = keras.ops.image.affine_transform(x, transforms, interpolation="bilinear", fill_mode="constant",
                                             fill_value=self.fill_value, data_format="channels_last")
        return x if batched else x[0]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "translate": self.translate,
                "zoom": self.zoom, "shear": self.shear, "flip_probability": self.flip_probability,
                "fill_value": self.fill_value, "seed": self.seed}


def online_augmentation(cfg: OnlineAugmentConfig, seed: int):
    """The recipe's online augmentation as one Keras layer (``keras.layers.Pipeline``), or None.

    None when ``cfg.enabled`` is false or every transform is off. Apply it to float32 batches
    in [0, 1] with ``layer(images, training=True)``.
    """
    if not cfg.enabled:
        return None
    layers = keras.layers
    flip_probability = getattr(cfg, "flip_probability", DEFAULT_FLIP_PROBABILITY) if cfg.flip else 0.0
    steps = []
    if cfg.rotation or cfg.translate or cfg.zoom or cfg.shear or flip_probability:
        steps.append(RandomAffine(
            rotation=cfg.rotation, translate=cfg.translate, zoom=cfg.zoom, shear=cfg.shear,
            flip_probability=flip_probability, seed=_layer_seed(seed, 1), name="random_affine",
        ))
    if cfg.brightness:
        steps.append(layers.RandomBrightness(cfg.brightness, value_range=(0.0, 1.0), seed=_layer_seed(seed, 2),
                                             name="random_brightness"))
    if cfg.contrast:
        steps.append(layers.RandomContrast(cfg.contrast, value_range=(0.0, 1.0), seed=_layer_seed(seed, 3),
                                           name="random_contrast"))
    return layers.Pipeline(steps, name="online_augmentation") if steps else None
