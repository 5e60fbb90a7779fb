"""The detector's input pipeline: images with their boxes, padded to a fixed count, and augmentation that moves both.

Elements are ``(images, {"boxes": boxes, "classes": classes})``:

- ``images``: float32 [B, size, size, channels] in [0, 1], decoded as the classifier's are
  (``inputs.load_input`` with the geometry; detection recipes use ``resize: pad``).
- ``boxes``: float32 [B, M, 4], (x1, y1, x2, y2) in model-input pixels (``geometry.boxes_to_input``
  with the original image's rows and columns, read from the file's header), continuous coordinates
  as in ``boxes.py``; rows past an image's boxes are ``PAD`` (-1) in all four coordinates.
- ``classes``: float32 [B, M], the index of the image's label among the positive classes
  (``classes[1:]``: for [normal, fracture] every box is class 0); ``PAD`` for padding rows. A
  negative image (no box) is all padding.

``M`` is ``max_boxes``, or the most boxes any image has (at least 1). Kept boxes come first.

The pipeline is ``training_dataset``'s: decode in parallel -> cache (within a memory budget) ->
shuffle -> batch -> augment -> prefetch, seeded. The augmentation is the paper's (Mu et al. 2021):
a horizontal flip with probability ``flip`` and a rotation uniform in ``[-rotation, rotation]``
degrees, drawn per image from a per-batch seed of a seeded stream (so batches are augmented in
parallel and reproducibly), applied to image and boxes together with ``boxes.py``'s conventions:
flip first, then rotate about the input's centre, counter-clockwise for positive angles; a box
becomes the axis-aligned box enclosing its rotated corners, clipped to the input, and a box left
narrower or shorter than ``MIN_BOX_SIZE`` pixels is dropped to padding. Images are transformed by
TensorFlow's projective transform (bilinear, black outside): the same numbers as
``boxes.transform_image`` (a test holds them to 1e-5) in native, parallel code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import UserError
from .geometry import ImageGeometry, boxes_to_input
from .inputs import decode_parallelism
from .manifest import BOX_COLUMNS
from .pipeline import CACHE_BUDGET_BYTES, _cache_file, cache_plan, decoded_bytes

PAD = -1.0  # the coordinates and class of a padding row
MIN_BOX_SIZE = 1.0  # px: a box narrower or shorter than this after augmentation is dropped (boxes.transform_boxes)
AUGMENT_KEYS = ("flip", "rotation")


def _parts(manifest) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """A ``Manifest`` or an ``(images, boxes, classes)`` tuple -> its three parts."""
    if isinstance(manifest, tuple):
        if len(manifest) != 3:
            raise TypeError("detection data: a Manifest or an (images, boxes, classes) tuple expected")
        images, boxes, classes = manifest
    else:
        images, boxes, classes = manifest.images, manifest.boxes, manifest.classes
    return images, boxes, list(classes)


def augment_parameters(augment: dict | None) -> tuple[float, float] | None:
    """``{flip: probability, rotation: max degrees}`` -> (flip, rotation), checked; None: no augmentation."""
    if augment is None:
        return None
    unknown = sorted(set(augment) - set(AUGMENT_KEYS))
    if unknown:
        raise UserError(f"detection augment: unknown key(s) {', '.join(unknown)} (known: {', '.join(AUGMENT_KEYS)})")
    flip, rotation = float(augment.get("flip", 0.0)), float(augment.get("rotation", 0.0))
    if not 0.0 <= flip <= 1.0:
        raise UserError(f"detection augment.flip: a probability in [0, 1] expected, got {flip:g}")
    if not 0.0 <= rotation <= 180.0:
        raise UserError(f"detection augment.rotation: maximum degrees in [0, 180] expected, got {rotation:g}")
    return flip, rotation


def box_augment(cfg) -> dict | None:
    """A recipe's ``augment.boxes`` section (enabled, flip, rotation) -> ``detection_dataset``'s ``augment``."""
    if not getattr(cfg, "enabled", False):
        return None
    return {"flip": float(cfg.flip), "rotation": float(cfg.rotation)}


def image_size(path: str) -> tuple[int, int]:
    """(rows, cols) of the file's first frame in original pixels, from its header (a full decode when
    the header reader cannot tell); the size the manifest's box coordinates refer to."""
    from .profile import header_meta

    try:
        meta = header_meta(path)
        if meta.get("rows") and meta.get("cols"):
            return int(meta["rows"]), int(meta["cols"])
    except Exception:  # noqa: BLE001  a header this reader refuses: the image reader decides below
        pass
    from ..images import ImageReadError, read_image

    try:
        meta = read_image(path, frame=0, max_size=64).meta
    except ImageReadError as exc:
        raise UserError(str(exc)) from None
    if not (meta.get("rows") and meta.get("cols")):
        raise UserError(f"{path}: the image's size is not in its header (its boxes cannot be placed)")
    return int(meta["rows"]), int(meta["cols"])


def detection_targets(manifest, geometry: ImageGeometry, max_boxes: int | None = None, *,
                      extra_paths: Sequence[str] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(paths, boxes [N, M, 4] float32 in model-input pixels, classes [N, M] float32), padded with ``PAD``.

    ``manifest``: a ``Manifest`` or ``(images, boxes, classes)`` (``classes`` negative first). One row
    per row of ``images`` (a path listed twice gives two rows), then one per ``extra_paths`` entry
    (each must be one of the images: hard-positive mining repeats images). Box coordinates are
    checked against the image's size (header); a box outside it, a box on an image of the negative
    class, or more boxes than ``max_boxes`` on one image is a one-line ``UserError``.
    """
    images, box_table, classes = _parts(manifest)
    paths = [str(p) for p in images["path"]]
    labels = dict(zip(paths, images["label"].astype(str)))
    extra = [str(p) for p in (extra_paths or [])]
    missing = [p for p in extra if p not in labels]
    if missing:
        raise UserError(f"extra_paths: {len(missing)} path(s) not among the images, e.g. {missing[0]}")
    paths = paths + extra
    positive = {c: i for i, c in enumerate(classes[1:])}
    unknown = sorted({labels[p] for p in paths} - set(classes))
    if unknown:
        raise UserError(f"detection data: label(s) {', '.join(map(repr, unknown))} not in the classes {classes}")

    wanted = box_table[box_table["path"].astype(str).isin(labels)]
    per_image = {str(p): g[list(BOX_COLUMNS)].to_numpy(np.float64) for p, g in wanted.groupby("path", sort=False)}
    on_negative = [p for p in per_image if labels[p] not in positive]
    if on_negative:
        raise UserError(f"detection data: {len(on_negative)} image(s) of the negative class {classes[0]!r} carry "
                        f"boxes, e.g. {on_negative[0]} (a box marks a finding of a positive class)")
    most = max((len(b) for b in per_image.values()), default=0)
    if max_boxes is not None:
        if int(max_boxes) < 1:
            raise UserError(f"max_boxes: at least 1 expected, got {max_boxes}")
        if most > max_boxes:
            crowded = next(p for p, b in per_image.items() if len(b) == most)
            raise UserError(f"max_boxes {max_boxes}: {crowded} has {most} boxes (raise max_boxes)")
    m = int(max_boxes) if max_boxes is not None else max(most, 1)

    placed = {}
    for path, found in per_image.items():
        rows, cols = image_size(path)
        outside = (found[:, 0] < 0) | (found[:, 1] < 0) | (found[:, 2] > cols) | (found[:, 3] > rows)
        malformed = ~np.isfinite(found).all(axis=1) | (found[:, 2] <= found[:, 0]) | (found[:, 3] <= found[:, 1])
        if outside.any() or malformed.any():
            k = np.flatnonzero(outside | malformed)[0]
            raise UserError(f"{path}: box ({', '.join(f'{v:g}' for v in found[k])}) "
                            f"{'is not a box' if malformed[k] else 'outside the image'} ({cols} x {rows} px; "
                            f"need 0 <= x1 < x2 <= {cols}, 0 <= y1 < y2 <= {rows})")
        placed[path] = boxes_to_input(found, rows, cols, geometry)

    boxes = np.full((len(paths), m, 4), PAD, np.float32)
    targets = np.full((len(paths), m), PAD, np.float32)
    for i, path in enumerate(paths):
        found = placed.get(path)
        if found is not None:
            boxes[i, :len(found)] = found
            targets[i, :len(found)] = positive[labels[path]]
    return paths, boxes, targets


# --------------------------------------------------------------------------- augmentation (TensorFlow)


def draw_augmentation(seed, n, flip: float, rotation: float):
    """(flips bool [n], angles float32 [n] in degrees) for ``n`` images from one stateless seed (an int or
    an int64 scalar tensor): the same seed gives the same draws."""
    import tensorflow as tf

    seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0x5EED, tf.int64)])
    u = tf.random.stateless_uniform(tf.stack([tf.cast(n, tf.int32), 2]), seed=seed, dtype=tf.float32)
    return u[:, 0] < flip, (2.0 * u[:, 1] - 1.0) * rotation


def transform_batch(images, boxes, classes, flips, angles, min_size: float = MIN_BOX_SIZE):
    """Flip (where ``flips``) then rotate by ``angles`` degrees each image and its boxes: (images, boxes, classes).

    ``images`` [B, H, W, C], ``boxes`` [B, M, 4] in the images' pixels, ``classes`` [B, M] (``PAD``
    rows stay padding). The conventions of ``boxes.transform_points``: continuous coordinates,
    rotation about (W / 2, H / 2), counter-clockwise as displayed for a positive angle. Boxes that
    end narrower or shorter than ``min_size`` become padding, moved after the kept ones.
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images, tf.float32)
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    classes = tf.convert_to_tensor(classes, tf.float32)
    pixels = tf.shape(images)[1:3]  # works for unknown static sizes too
    height, width = tf.cast(pixels[0], tf.float32), tf.cast(pixels[1], tf.float32)
    theta = tf.cast(angles, tf.float32) * (np.pi / 180.0)
    c, s = tf.cos(theta), tf.sin(theta)
    # exact multiples of 90 degrees: no 1e-8 leftovers that would blur a border pixel
    c = tf.where(tf.abs(c) < 1e-7, 0.0, c)
    s = tf.where(tf.abs(s) < 1e-7, 0.0, s)
    flipped = tf.cast(flips, tf.bool)
    sign = tf.where(flipped, -1.0, 1.0)

    # Images: the op maps each output pixel index (x, y) to the input index it samples, i.e. the inverse
    # rotation about the centre index ((W - 1) / 2, (H - 1) / 2), then the flip x -> W - 1 - x.
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    ox = cx - c * cx + s * cy
    oy = cy - s * cx - c * cy
    zero = tf.zeros_like(c)
    transforms = tf.stack([sign * c, -sign * s, tf.where(flipped, (width - 1) - ox, ox), s, c, oy, zero, zero], 1)
    moved_images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.cast(pixels, tf.int32),
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode="CONSTANT")
    moved_images.set_shape(images.shape)

    # Boxes: corners forward (flip x -> W - x, then rotate about (W / 2, H / 2)), enclosing box, clip.
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    xs = tf.stack([x1, x2, x2, x1], -1)  # [B, M, 4 corners]
    ys = tf.stack([y1, y1, y2, y2], -1)
    xs = tf.where(flipped[:, None, None], width - xs, xs)
    dx, dy = xs - width / 2.0, ys - height / 2.0
    c3, s3 = c[:, None, None], s[:, None, None]
    rx = c3 * dx + s3 * dy + width / 2.0
    ry = -s3 * dx + c3 * dy + height / 2.0
    out = tf.stack([tf.clip_by_value(tf.reduce_min(rx, -1), 0.0, width),
                    tf.clip_by_value(tf.reduce_min(ry, -1), 0.0, height),
                    tf.clip_by_value(tf.reduce_max(rx, -1), 0.0, width),
                    tf.clip_by_value(tf.reduce_max(ry, -1), 0.0, height)], -1)
    keep = (classes >= 0) & (out[..., 2] - out[..., 0] >= min_size) & (out[..., 3] - out[..., 1] >= min_size)
    out = tf.where(keep[..., None], out, PAD)
    kept_classes = tf.where(keep, classes, PAD)
    order = tf.argsort(tf.cast(tf.logical_not(keep), tf.int32), axis=1, stable=True)  # kept rows first
    return moved_images, tf.gather(out, order, batch_dims=1), tf.gather(kept_classes, order, batch_dims=1)


def augment_batch(images, boxes, classes, seed, flip: float, rotation: float):
    """One batch's augmentation from one seed: ``draw_augmentation`` then ``transform_batch``."""
    import tensorflow as tf

    flips, angles = draw_augmentation(seed, tf.shape(images)[0], flip, rotation)
    return transform_batch(images, boxes, classes, flips, angles)


# --------------------------------------------------------------------------- the dataset


def detection_dataset(
    manifest,
    geometry: ImageGeometry,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    augment: dict | None = None,
    max_boxes: int | None = None,
    repeat: bool = False,
    cache: bool = True,
    deterministic: bool = True,
    extra_paths: list[str] | None = None,
    cache_dir: str | Path | None = None,
    cache_budget_bytes: int = CACHE_BUDGET_BYTES,
):
    """Batches of ``(images, {"boxes", "classes"})`` for a detector (see the module docstring).

    ``manifest``: a ``Manifest`` or ``(images, boxes, classes)``; its image rows in order, then
    ``extra_paths`` (repeated images: each is its own element, decoded and cached on its own).
    ``augment``: ``{"flip": probability, "rotation": max degrees}``, None for none. ``cache``,
    ``repeat``, ``deterministic``, ``cache_dir`` and ``cache_budget_bytes`` as in
    ``pipeline.labelled_dataset``: with the same seed, two datasets give the same batches.
    """
    import tensorflow as tf

    from .inputs import load_input

    params = augment_parameters(augment)
    paths, boxes, classes = detection_targets(manifest, geometry, max_boxes, extra_paths=extra_paths)
    n = len(paths)
    if n == 0:
        raise UserError("detection data: no images")
    image_bytes = decoded_bytes(1, geometry)
    plan = cache_plan(n * image_bytes, budget_bytes=cache_budget_bytes, cache_dir=cache_dir) if cache else "none"
    shape = (geometry.size, geometry.size, geometry.channels)

    def decode(path):
        def run(p):
            return load_input(p.decode() if isinstance(p, bytes) else str(p), geometry)[0]

        image = tf.numpy_function(run, [path], tf.float32, stateful=False)
        image.set_shape(shape)
        return image

    # decodes at once bounded by memory at the readers' pixel limit (inputs.decode_parallelism)
    parallel = dict(num_parallel_calls=decode_parallelism(), deterministic=deterministic)
    rows = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), boxes, classes))
    if plan == "none":  # shuffle the cheap rows, decode every epoch: memory holds only the batches in flight
        if shuffle:
            rows = rows.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = rows.map(lambda p, b, c: (decode(p), b, c), **parallel)
    else:  # cache the decoded images alone: the targets stay plain tensors beside them
        pixels = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string)).map(decode, **parallel)
        if plan == "memory":
            pixels = pixels.cache()
        else:
            pixels = pixels.cache(_cache_file(cache_dir, (np.asarray(paths, dtype=object), [repr(geometry)]),
                                              image_bytes) + "-detection")
        targets = tf.data.Dataset.from_tensor_slices((boxes, classes))
        ds = tf.data.Dataset.zip((pixels, targets)).map(lambda image, t: (image, t[0], t[1]))
        if shuffle:
            in_buffer = n if plan == "memory" else max(batch_size, min(n, cache_budget_bytes // image_bytes))
            ds = ds.shuffle(max(in_buffer, 1), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)
    if params is not None:
        flip, rotation = params
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda batch, s: augment_batch(*batch, s, flip, rotation), **parallel)
    ds = ds.map(lambda images, b, c: (images, {"boxes": b, "classes": c}))
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
