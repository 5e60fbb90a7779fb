"""Preprocessing that travels inside the saved model.

The model takes display-ready pixels in [0, 1] (bone bright), as ``read_image`` returns
them, resized to its input size; everything after that (gray to three channels or, with
``gray_input: sum-first-conv``, to the backbone's gray first convolution, the backbone's
ImageNet normalization, a data set's mean/std, per-image z-score) is this layer, saved with
the weights. ``score`` and ``gradcam`` therefore never ask about it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

MODES = ("unit", "x255", "tf", "torch", "caffe", "dataset", "per_image")
PER_CHANNEL_MODES = ("torch", "caffe")  # normalise each RGB channel differently
GRAY_INPUTS = ("replicate", "sum-first-conv")


def replicated_affine(mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) per output channel c: a gray pixel g replicated to RGB leaves the layer as
    ``scale[c] * g + offset[c]`` (torch and caffe; caffe's channel order is BGR after the flip)."""
    if mode == "torch":
        std = np.asarray(IMAGENET_STD_RGB, np.float64)
        return 1.0 / std, -np.asarray(IMAGENET_MEAN_RGB, np.float64) / std
    if mode == "caffe":
        return np.full(3, 255.0), -np.asarray(CAFFE_MEAN_BGR, np.float64)
    raise ValueError(f"{mode!r} treats every channel alike; replicated_affine is for {PER_CHANNEL_MODES}")


@keras.saving.register_keras_serializable(package="tfxray")
class RadiographPreprocessing(keras.layers.Layer):
    """[0, 1] gray (or 3-channel) pixels -> what the backbone expects.

    mode: unit (identity) | x255 (0-255, for backbones that normalise inside) | tf ([-1, 1]) | torch (ImageNet mean/std) | caffe (BGR, mean
    subtracted, 0-255) | dataset (mean/std of the training split) | per_image (z-score).

    gray_input (one input channel only): ``replicate`` gives the backbone three equal channels;
    ``sum-first-conv`` gives it the gray channel alone, normalised as each replicated channel
    would be (every mode but torch and caffe treats the channels alike), and the first
    convolution's kernel is summed over RGB (``models.weights.gray_first_conv_kernel``). For
    torch and caffe, which normalise each channel differently, it gives the raw gray channel
    plus an image-support channel of ones, and the normalisation is folded into the first
    convolution (``fold_first_conv_kernel``): its scale into the gray kernel, its per-channel
    offsets into the support kernel. The support channel is what keeps the fold exact at the
    borders, where the convolution's zero padding sits after normalisation (an offset folded
    into a bias would also act on the padding).
    """

    def __init__(self, mode: str = "unit", mean: float = 0.0, std: float = 1.0, to_rgb: bool = True,
                 gray_input: str = "replicate", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        if gray_input not in GRAY_INPUTS:
            raise ValueError(f"unknown gray_input {gray_input!r}")
        self.mode, self.mean, self.std, self.to_rgb = mode, float(mean), float(std), bool(to_rgb)
        self.gray_input = gray_input

    def _single(self, channels) -> bool:
        return self.gray_input == "sum-first-conv" and channels == 1

    def call(self, x):
        x = ops.cast(x, "float32")
        if self._single(x.shape[-1]):
            if self.mode in PER_CHANNEL_MODES:  # normalisation folded into the first convolution
                return ops.concatenate([x, ops.ones_like(x)], axis=-1)
        elif self.to_rgb and x.shape[-1] == 1:
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
        if self._single(input_shape[-1]):
            channels = 2 if self.mode in PER_CHANNEL_MODES else 1
        else:
            channels = 3 if self.to_rgb and input_shape[-1] == 1 else input_shape[-1]
        return (*input_shape[:-1], channels)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "mean": self.mean, "std": self.std, "to_rgb": self.to_rgb,
                "gray_input": self.gray_input}
