"""tf.data input pipelines: decode in parallel -> resize -> (augment) -> batch -> prefetch.

Decoding goes through ``read_image`` (DICOM needs pydicom, so it runs as a numpy
function on tf.data's parallel map), followed in the same worker by an antialiased resize
(``resize_array``) so thin fracture lines survive downscaling. The result is pixels in
[0, 1], bone bright, of the model's input size: the model's own preprocessing layer does
the rest. Decoded images are cached (in memory within a budget), so later epochs cost only
shuffling, batching and the online augmentation.
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


def resize_tensor(image, geometry: ImageGeometry):
    """TensorFlow's resize with the semantics of ``resize_array`` (the reference its test uses)."""
    import tensorflow as tf

    if geometry.resize == "pad":
        return tf.image.resize_with_pad(image, geometry.size, geometry.size, antialias=True)
    return tf.image.resize(image, (geometry.size, geometry.size), antialias=True)


def load_resized(path: str, geometry: ImageGeometry, with_meta: bool = False):
    """One file -> the model's input array (size, size, channels) float32 in [0, 1].

    The one decode path: tf.data's map (training, scoring) and single files (Grad-CAM) use it.
    """
    gray = ImageGeometry(geometry.size, 1, geometry.resize)
    pixels, meta = load_pixels(path, gray if geometry.channels == 3 else geometry, with_meta=True)
    image = resize_array(pixels, geometry)
    if geometry.channels == 3 and image.shape[-1] == 1:  # replicate after resizing: a third of the work
        image = np.repeat(image, 3, axis=-1)
    return (image, meta) if with_meta else image


def decode_map(geometry: ImageGeometry, with_status: bool = False):
    """A tf.data map function: path -> resized image (``load_resized`` as a numpy function).

    With ``with_status`` (scoring): path -> (image, error message, metadata as JSON), where a
    file that cannot be read gives a blank image and its one-line reason instead of failing.
    """
    import tensorflow as tf

    shape = (geometry.size, geometry.size, geometry.channels)
    blank = np.zeros(shape, np.float32)

    def _decode(path_bytes):
        return load_resized(path_bytes.decode(), geometry)

    def _decode_with_status(path_bytes):
        path = path_bytes.decode()
        try:
            pixels, meta = load_resized(path, geometry, with_meta=True)
            return pixels, b"", json.dumps(meta, default=str).encode()
        except ImageReadError as exc:
            return blank, exc.reason.encode(), b"{}"
        except Exception as exc:  # noqa: BLE001  a broken file becomes a row, never a crash
            return blank, f"{type(exc).__name__}: {exc}".splitlines()[0].encode(), b"{}"

    def fn(path):
        if with_status:
            image, error, meta = tf.numpy_function(
                _decode_with_status, [path], (tf.float32, tf.string, tf.string), stateful=False
            )
            error.set_shape(())
            meta.set_shape(())
        else:
            image = tf.numpy_function(_decode, [path], tf.float32, stateful=False)
        image.set_shape(shape)
        return (image, error, meta) if with_status else image

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
      class's cache fills once and the minority class repeats within an epoch. Each class is
      shuffled whatever ``shuffle`` says.
    - ``repeat``: repeat the (unbalanced) data without end, for iteration budgets.
    - ``deterministic=True``: the parallel decode and augmentation maps keep element order
      (tf.data's ``deterministic``), shuffles and class draws follow ``seed``, and the
      augmentation of batch k uses the k-th draw of a seeded stream: two runs with the same seed
      give the same batches, at full parallel speed. ``False`` lets parallel work finish out of
      order (it helps when decode times vary a lot): still seeded, but which image lands in which
      batch may differ between runs.
    - ``augment``: a Keras layer applied per batch with ``training=True``, normally
      ``online.online_augmentation(...)`` (see ``_augmented``).
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
            ds = ds.shuffle(max(len(index), 1), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda *c: (decode(*c[:k]), *c[k:]), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=deterministic)
        if plan == "memory":
            ds = ds.cache()
        elif plan == "file":
            ds = ds.cache(cache_file + part)
        if (shuffle or balanced) and plan != "none":
            ds = ds.shuffle(max(min(len(index), in_buffer), 1), seed=seed, reshuffle_each_iteration=True)
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
        ds = _augmented(ds, augment, seed, deterministic)
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _augmented(ds, augment, seed: int, deterministic: bool):
    """Apply ``augment`` to each batch's images.

    A ``RadiographAugmentation`` gets one seed per batch from a seeded stream that changes every
    epoch (``Dataset.random``), so batches are augmented in parallel and reproducibly. Any other
    Keras layer draws from its own stateful generator: its map runs sequentially when
    ``deterministic``, so the generator advances in batch order.
    """
    import tensorflow as tf

    from .online import RadiographAugmentation

    if isinstance(augment, RadiographAugmentation):
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        return tf.data.Dataset.zip((ds, seeds)).map(
            lambda batch, s: (augment(batch[0], training=True, seed=s), *batch[1:]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic,
        )
    return ds.map(lambda x, *rest: (augment(x, training=True), *rest),
                  num_parallel_calls=None if deterministic else tf.data.AUTOTUNE)


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
