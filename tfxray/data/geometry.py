"""Input geometry: the model input's size, channels and resize mode, and where an image lands in it.

Saved with the model (``tfxray.json``), so scoring, evaluation and Grad-CAM repeat the
training's resize exactly; boxes in original-image pixels map into the input with the same
arithmetic (``boxes_to_input``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageGeometry:
    """How a file becomes a model input; saved with the model so scoring repeats it."""

    size: int
    channels: int = 1
    resize: str = "stretch"  # stretch | pad

    @property
    def decode_max_size(self) -> int:
        # Downscale big radiographs at decode time, keeping a margin for a sharp resize.
        return 2 * self.size


def image_placement(height: int, width: int, geometry: ImageGeometry) -> tuple[int, int, int, int]:
    """Where an image of ``height`` x ``width`` lands in the model input: (new_h, new_w, top, left)."""
    size = geometry.size
    if geometry.resize != "pad":
        return size, size, 0, 0
    # tf.image.resize_with_pad's arithmetic, in float64 (in float32, TensorFlow floors
    # 256 / (256 / 56) = 55.999996 to 55: a square image would gain a black line; the
    # tolerance keeps it filling the square)
    ratio = max(width / size, height / size)
    new_h, new_w = int(np.floor(height / ratio + 1e-6)), int(np.floor(width / ratio + 1e-6))
    top = max(int(np.floor((size - height / ratio) / 2 + 1e-6)), 0)
    left = max(int(np.floor((size - width / ratio) / 2 + 1e-6)), 0)
    return new_h, new_w, top, left


def boxes_to_input(boxes: np.ndarray, height: int, width: int, geometry: ImageGeometry) -> np.ndarray:
    """Boxes (x1, y1, x2, y2) in the original image's pixels -> the model input's pixels (and its heatmap's)."""
    new_h, new_w, top, left = image_placement(height, width, geometry)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scale = np.array([new_w / width, new_h / height] * 2, np.float32)
    return boxes * scale + np.array([left, top] * 2, np.float32)


def resize_array(pixels: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    """(H, W, C) float32 -> (size, size, C): ``stretch``, or ``pad`` (keep the aspect, pad with 0).

    The same numbers as ``tf.image.resize(antialias=True)`` / ``tf.image.resize_with_pad``
    (a test holds them to 1e-4), computed with Pillow's float resampling: its triangle filter
    widens when downscaling exactly as TensorFlow's antialiased bilinear does, but it is about
    four times faster and runs inside the decode worker, so the first epoch is not
    resize-bound. Thin fracture lines survive the downscale either way.
    """
    from PIL import Image

    size = geometry.size
    height, width = pixels.shape[:2]
    new_h, new_w, top, left = image_placement(height, width, geometry)
    out = np.zeros((size, size, pixels.shape[2]), np.float32)
    for c in range(pixels.shape[2]):
        channel = np.ascontiguousarray(pixels[..., c], dtype=np.float32)
        if (new_h, new_w) != (height, width):
            channel = np.asarray(Image.fromarray(channel, mode="F").resize((new_w, new_h), Image.BILINEAR))
        out[top:top + new_h, left:left + new_w, c] = channel
    return out
