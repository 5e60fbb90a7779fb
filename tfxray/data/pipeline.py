"""tf.data input pipelines: decode in parallel -> resize -> (augment) -> batch -> prefetch.

Decoding goes through ``read_image`` (DICOM needs pydicom, so it runs as a numpy
function on tf.data's parallel map); resizing runs in the graph with antialiasing so
thin fracture lines survive downscaling. The result is pixels in [0, 1], bone bright,
of the model's input size: the model's own preprocessing layer does the rest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
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


CACHE_BUDGET_BYTES = 2 * 1024**3  # decoded images kept in memory up to this size (float32)


def decoded_bytes(n_images: int, geometry: ImageGeometry) -> int:
    """Memory that ``n_images`` decoded, resized float32 images take."""
    return int(n_images) * geometry.size * geometry.size * geometry.channels * 4


def cache_plan(total_bytes: int, *, budget_bytes: int = CACHE_BUDGET_BYTES, cache_dir=None) -> str:
    """Where decoded images are cached: ``memory`` if they fit the budget, else ``file`` (under
    ``cache_dir``, when given), else ``none`` (decode every epoch; memory stays bounded)."""
    if total_bytes <= budget_bytes:
        return "memory"
    return "file" if cache_dir is not None else "none"


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
    balanced: bool = False,
    deterministic: bool = True,
    cache_dir: str | Path | None = None,
    cache_budget_bytes: int = CACHE_BUDGET_BYTES,
):
    """(image, label[, weight]) batches: decode in parallel -> cache -> shuffle -> batch -> augment -> prefetch.

    See ``labelled_dataset`` for the options; decoding goes through ``decode_map(geometry)``.
    """
    return labelled_dataset(
        (np.asarray(paths, dtype=str),), labels, decode_map(geometry),
        image_bytes=decoded_bytes(1, geometry), batch_size=batch_size, shuffle=shuffle, seed=seed, augment=augment,
        sample_weights=sample_weights, cache=cache, repeat=repeat, balanced=balanced, deterministic=deterministic,
        cache_dir=cache_dir, cache_budget_bytes=cache_budget_bytes,
    )


def labelled_dataset(
    sources: tuple[np.ndarray, ...],
    labels: np.ndarray,
    decode,
    *,
    image_bytes: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    augment=None,
    sample_weights: np.ndarray | None = None,
    cache: bool = True,
    repeat: bool = False,
    balanced: bool = False,
    deterministic: bool = True,
    cache_dir: str | Path | None = None,
    cache_budget_bytes: int = CACHE_BUDGET_BYTES,
):
    """The training pipeline over any decodable sources (paths; a CT slice, its neighbours and box).

    ``sources``: equal-length arrays, one element per image; ``decode(*columns)`` turns one
    element's columns into a float32 image tensor inside tf.data.

    - ``cache``: keep decoded images after the first pass, in memory when they fit
      ``cache_budget_bytes`` (``cache_plan``), else in a file under ``cache_dir``, else not at
      all. Without a cache the cheap source rows are shuffled before decoding, so memory holds
      only the batches in flight.
    - ``balanced``: draw the classes equally (``class_balance: balanced``). Each class is
      shuffled and repeated on its own and ``sample_from_datasets`` picks a class per element
      with equal weights, seeded. The stream is infinite: pass ``steps_per_epoch =
      ceil(n / batch_size)`` to ``fit``, which then keeps one iterator across epochs, so every
      class's cache fills once and the minority class repeats within an epoch.
    - ``repeat``: repeat the (unbalanced) data without end, for iteration budgets.
    - ``deterministic=True``: parallel decoding keeps element order (tf.data's ``deterministic``),
      shuffles draw from ``seed``, and the augmentation map runs sequentially so its seed
      generator advances in batch order: two runs with the same seed give the same batches.
      ``False`` lets parallel work finish out of order and augment batches in parallel: faster,
      still seeded, but which image lands in which batch may differ between runs.
    - ``augment``: a Keras layer applied per batch with ``training=True`` (``online.online_augmentation``).
    """
    import tensorflow as tf

    labels = np.asarray(labels, dtype=np.float32)
    n = len(labels)
    weights = None if sample_weights is None else np.asarray(sample_weights, dtype=np.float32)
    plan = cache_plan(n * image_bytes, budget_bytes=cache_budget_bytes, cache_dir=cache_dir) if cache else "none"
    cache_file = _cache_file(cache_dir, sources, image_bytes) if plan == "file" else None
    # In memory, shuffled elements share the cache's buffers: shuffle everything. From a file cache,
    # the shuffle buffer holds copies: keep it within the budget.
    in_buffer = n if plan == "memory" else max(batch_size, min(n, cache_budget_bytes // max(image_bytes, 1)))
    k = len(sources)

    def stream(index: np.ndarray, part: str):
        columns = tuple(s[index] for s in sources) + (labels[index],) + (() if weights is None else (weights[index],))
        ds = tf.data.Dataset.from_tensor_slices(columns)
        if (shuffle or balanced) and plan == "none":
            ds = ds.shuffle(len(index), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda *c: (decode(*c[:k]), *c[k:]), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=deterministic)
        if plan == "memory":
            ds = ds.cache()
        elif plan == "file":
            ds = ds.cache(cache_file + part)
        if (shuffle or balanced) and plan != "none":
            ds = ds.shuffle(min(len(index), in_buffer), seed=seed, reshuffle_each_iteration=True)
        return ds

    if balanced:
        classes = np.unique(labels)
        if len(classes) < 2:
            raise UserError("class_balance: balanced sampling needs at least two classes in the training data")
        per_class = [stream(np.flatnonzero(labels == c), f"-class{i}").repeat() for i, c in enumerate(classes)]
        ds = tf.data.Dataset.sample_from_datasets(per_class, weights=[1.0 / len(classes)] * len(classes), seed=seed)
    else:
        ds = stream(np.arange(n), "")
        if repeat:
            ds = ds.repeat()
    ds = ds.batch(batch_size)
    if augment is not None:
        # Sequential when deterministic: the layers' seed generators then advance in batch order.
        ds = ds.map(lambda x, *rest: (augment(x, training=True), *rest),
                    num_parallel_calls=None if deterministic else tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _cache_file(cache_dir, sources: tuple[np.ndarray, ...], image_bytes: int) -> str:
    """A cache file prefix named after the data, so a resumed run reuses a finished cache."""
    digest = hashlib.sha1(str(image_bytes).encode())
    for column in sources:
        for value in column:
            digest.update(str(value).encode() + b"\0")
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / f"decoded-{digest.hexdigest()[:16]}"
    for stale in folder.glob(f"{prefix.name}*.lockfile"):  # left by a run that was killed mid-epoch
        stale.unlink(missing_ok=True)
    return str(prefix)


def inference_dataset(paths: list[str], geometry: ImageGeometry, batch_size: int):
    """(image, error message, metadata JSON) batches in the order of ``paths``; a broken file gives a blank and its reason."""
    import tensorflow as tf

    decode = decode_map(geometry, with_status=True)
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(paths, dtype=str))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
