"""tf.data training pipelines: decode in parallel -> (cache) -> shuffle -> batch -> (augment) -> prefetch.

Decoding goes through an input builder (``inputs.py``: ``read_image`` and an antialiased resize,
or the CT region and neighbours) as a numpy function on tf.data's parallel map, so thin
fracture lines survive downscaling. The result is pixels in
[0, 1], bone bright, of the model's input size: the model's own preprocessing layer does
the rest. Decoded images are cached (in memory within a budget), so later epochs cost only
shuffling, batching and the online augmentation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import UserError
from .geometry import ImageGeometry
from .inputs import ImageInput, InputBuilder, decode_parallelism, input_map


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
    inputs: ImageGeometry | InputBuilder,
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

    ``inputs``: the input builder (``inputs.input_builder``), or a geometry for plain image files.
    See ``labelled_dataset`` for the options.
    """
    builder = ImageInput(inputs) if isinstance(inputs, ImageGeometry) else inputs
    g = builder.geometry
    return labelled_dataset(
        builder.sources(paths), labels, input_map(builder),
        image_bytes=decoded_bytes(1, g), batch_size=batch_size, shuffle=shuffle, seed=seed,
        augment=augment, sample_weights=sample_weights, cache=cache, repeat=repeat, balanced=balanced,
        deterministic=deterministic, cache_dir=cache_dir, cache_budget_bytes=cache_budget_bytes,
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
        ds = ds.map(lambda *c: (decode(*c[:k]), *c[k:]), num_parallel_calls=decode_parallelism(),
                    deterministic=deterministic)  # bounded by memory at the readers' pixel limit
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
