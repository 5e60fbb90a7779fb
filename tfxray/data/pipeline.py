"""tf.data input pipelines: decode in parallel -> resize -> (augment) -> batch -> prefetch.

Decoding goes through ``read_image`` (DICOM needs pydicom, so it runs as a numpy
function on tf.data's parallel map); resizing runs in the graph with antialiasing so
thin fracture lines survive downscaling. The result is pixels in [0, 1], bone bright,
of the model's input size: the model's own preprocessing layer does the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..images import ImageReadError, read_image


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


def load_pixels(path: str, geometry: ImageGeometry, with_meta: bool = False):
    """One file -> float32 (H, W, channels) in [0, 1] at decode resolution (not yet resized)."""
    image = read_image(path, max_size=geometry.decode_max_size)
    pixels = image.pixels
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if geometry.channels == 3 and pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    return (pixels, image.meta) if with_meta else pixels


def resize_tensor(image, geometry: ImageGeometry):
    import tensorflow as tf

    if geometry.resize == "pad":
        return tf.image.resize_with_pad(image, geometry.size, geometry.size, antialias=True)
    return tf.image.resize(image, (geometry.size, geometry.size), antialias=True)


def load_resized(path: str, geometry: ImageGeometry) -> np.ndarray:
    """One file -> the model's input array, outside tf.data (Grad-CAM panels, single files)."""
    return resize_tensor(load_pixels(path, geometry), geometry).numpy()


def decode_map(geometry: ImageGeometry, with_status: bool = False):
    """A tf.data map function: path -> resized image.

    With ``with_status`` (scoring): path -> (image, error message, metadata as JSON), where a
    file that cannot be read gives a blank image and its one-line reason instead of failing.
    """
    import tensorflow as tf

    blank = np.zeros((geometry.size, geometry.size, geometry.channels), np.float32)

    def _decode(path_bytes):
        return load_pixels(path_bytes.decode(), geometry)

    def _decode_with_status(path_bytes):
        path = path_bytes.decode()
        try:
            pixels, meta = load_pixels(path, geometry, with_meta=True)
            return pixels, b"", json.dumps(meta, default=str).encode()
        except ImageReadError as exc:
            return blank, exc.reason.encode(), b"{}"
        except Exception as exc:  # noqa: BLE001  a broken file becomes a row, never a crash
            return blank, f"{type(exc).__name__}: {exc}".splitlines()[0].encode(), b"{}"

    def fn(path):
        if with_status:
            pixels, error, meta = tf.numpy_function(
                _decode_with_status, [path], (tf.float32, tf.string, tf.string), stateful=False
            )
        else:
            pixels = tf.numpy_function(_decode, [path], tf.float32, stateful=False)
        pixels.set_shape((None, None, geometry.channels))
        image = resize_tensor(pixels, geometry)
        image.set_shape((geometry.size, geometry.size, geometry.channels))
        if with_status:
            error.set_shape(())
            meta.set_shape(())
            return image, error, meta
        return image

    return fn


def training_dataset(
    paths: list[str],
    labels: np.ndarray,
    geometry: ImageGeometry,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    augment=None,
    sample_weights: np.ndarray | None = None,
    cache: bool = True,
    repeat: bool = False,
):
    """(image, label[, weight]) batches; decoded images are cached in memory after the first epoch."""
    import tensorflow as tf

    decode = decode_map(geometry)
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(paths, dtype=str), labels.astype(np.float32)))
    ds = ds.map(lambda p, y: (decode(p), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
    if sample_weights is not None:
        weights = tf.data.Dataset.from_tensor_slices(sample_weights.astype(np.float32))
        ds = tf.data.Dataset.zip((ds, weights)).map(lambda xy, w: (xy[0], xy[1], w))
    if shuffle:
        ds = ds.shuffle(min(len(paths), 4096), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(lambda x, *rest: (augment(x, training=True), *rest), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def inference_dataset(paths: list[str], geometry: ImageGeometry, batch_size: int):
    """(image, error message, metadata JSON) batches in the order of ``paths``; a broken file gives a blank and its reason."""
    import tensorflow as tf

    decode = decode_map(geometry, with_status=True)
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(paths, dtype=str))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
