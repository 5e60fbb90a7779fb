"""Preprocessing that travels inside the saved model.

The model takes display-ready pixels in [0, 1] (bone bright), as ``read_image`` returns
them, resized to its input size; everything after that (gray to three channels, the
backbone's ImageNet normalization, a data set's mean/std, per-image z-score) is this
layer, saved with the weights. ``score`` and ``gradcam`` therefore never ask about it.
"""

from __future__ import annotations

import keras
from keras import ops

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

MODES = ("unit", "x255", "tf", "torch", "caffe", "dataset", "per_image")


@keras.saving.register_keras_serializable(package="tfxray")
class RadiographPreprocessing(keras.layers.Layer):
    """[0, 1] gray (or 3-channel) pixels -> what the backbone expects.

    mode: unit (identity) | x255 (0-255, for backbones that normalise inside) | tf ([-1, 1]) | torch (ImageNet mean/std) | caffe (BGR, mean
    subtracted, 0-255) | dataset (mean/std of the training split) | per_image (z-score).
    """

    def __init__(self, mode: str = "unit", mean: float = 0.0, std: float = 1.0, to_rgb: bool = True, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        self.mode, self.mean, self.std, self.to_rgb = mode, float(mean), float(std), bool(to_rgb)

    def call(self, x):
        x = ops.cast(x, "float32")
        if self.to_rgb and x.shape[-1] == 1:
            x = ops.concatenate([x, x, x], axis=-1)
        if self.mode == "tf":
            return x * 2.0 - 1.0
        if self.mode == "x255":
            return x * 255.0
        if self.mode == "torch":
            return (x - ops.convert_to_tensor(IMAGENET_MEAN_RGB)) / ops.convert_to_tensor(IMAGENET_STD_RGB)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) * 255.0 - ops.convert_to_tensor(CAFFE_MEAN_BGR)
        if self.mode == "dataset":
            return (x - self.mean) / self.std
        if self.mode == "per_image":
            mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
            std = ops.std(x, axis=(1, 2, 3), keepdims=True)
            return (x - mean) / ops.maximum(std, 1e-6)
        return x

    def compute_output_shape(self, input_shape):
        channels = 3 if self.to_rgb and input_shape[-1] == 1 else input_shape[-1]
        return (*input_shape[:-1], channels)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "mean": self.mean, "std": self.std, "to_rgb": self.to_rgb}
