"""The one input contract: how an image becomes a model input, for every consumer.

Training, ``evaluate RUN_DIR --data``, ``score`` and ``gradcam`` all ask an input builder:

- ``ImageInput``: a file (one frame of it) decoded by ``read_image`` and resized to the
  geometry (``load_input``). Its source is the path.
- ``SliceStackInput`` (the CT protocol): the region of interest around a slice's box, with the
  slice and its two neighbours as channels (``ct.load_ct_input``). Its source is the previous
  path, the path, the next path and the box, looked up in the rows ``ct.ct_rows`` built from
  the manifest.

``input_builder`` decides between them once (from a recipe's data fields, or a bundle's saved
metadata through ``models.inference``). A builder may carry a ``profile`` (``data.profile``: what
the model was trained on); inference builders do, training ones never. ``decode_with_status`` is
the one place where a file that cannot be read, or lies outside that profile, becomes a status
and a one-line reason instead of an exception; ``input_map``
(training) and ``status_dataset`` (inference: one element per image, or per frame of
multi-frame files) run a builder inside tf.data's parallel map.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import UserError
from ..images import ImageReadError, NotAnImageError, read_image
from .geometry import ImageGeometry, resize_array
from .profile import ProfileCheck

OK, ERROR, SKIPPED = 0, 1, 2
OUTSIDE = 3  # an image outside the model's training profile: skipped, with the profile's reason


def load_input(path: str, geometry: ImageGeometry, frame: int = 0) -> tuple[np.ndarray, dict]:
    """One frame of a file -> the model's input (size, size, channels) float32 in [0, 1], and its metadata.

    The file is downscaled at decode time (``geometry.decode_max_size``), then resized with the
    antialiased ``resize_array``; a gray image is replicated to three channels after resizing
    (a third of the work).
    """
    image = read_image(path, frame=frame, max_size=geometry.decode_max_size)
    pixels = image.pixels[..., None]  # (H, W): read_image(gray=True) reduces colour to luminance
    resized = resize_array(np.ascontiguousarray(pixels, dtype=np.float32), geometry)
    if geometry.channels == 3:
        resized = np.repeat(resized, 3, axis=-1)
    return resized, image.meta


class ImageInput:
    """A file, one frame of it, resized to the geometry."""

    multi_frame = True  # scoring gives every frame of a multi-frame file its own row
    columns = ("path",)

    def __init__(self, geometry: ImageGeometry, profile: ProfileCheck | None = None):
        self.geometry = geometry
        self.profile = profile

    def source_of(self, path: str) -> tuple:
        return (str(path),)

    def sources(self, paths: Sequence[str]) -> tuple[np.ndarray, ...]:
        return (np.asarray([str(p) for p in paths], dtype=str),)

    def load(self, path: str, frame: int = 0) -> tuple[np.ndarray, dict]:
        return load_input(path, self.geometry, frame)

    def load_path(self, path: str) -> tuple[np.ndarray, dict]:
        return self.load(*self.source_of(path))


class SliceStackInput:
    """The CT protocol's input: the box's square region of a slice and its two neighbours (``data.ct``).

    ``rows``: ``ct.ROW_COLUMNS`` (``ct.ct_rows`` for a manifest; offline-amplified rows, already
    cropped, carry their three files and no box).
    """

    multi_frame = False  # one slice is one image
    columns = ("prev_path", "path", "next_path", "box")

    def __init__(self, geometry: ImageGeometry, rows: pd.DataFrame, profile: ProfileCheck | None = None):
        from .ct import ROW_COLUMNS

        missing = [c for c in ROW_COLUMNS if c not in rows.columns]
        if missing:
            raise UserError(f"CT input rows need column(s) {', '.join(missing)}")
        self.geometry = geometry
        self.profile = profile
        self.rows = rows.drop_duplicates("path").set_index("path", drop=False)

    def source_of(self, path: str) -> tuple:
        from .manifest import BOX_COLUMNS

        path = str(path)
        if path not in self.rows.index:
            raise UserError(f"{path}: not in the manifest (a CT model's input needs the slice's row: box and series)")
        row = self.rows.loc[path]
        return row["prev_path"], path, row["next_path"], row[list(BOX_COLUMNS)].to_numpy(np.float32)

    def sources(self, paths: Sequence[str]) -> tuple[np.ndarray, ...]:
        table = [self.source_of(p) for p in paths]
        return (np.asarray([t[0] for t in table], dtype=str), np.asarray([t[1] for t in table], dtype=str),
                np.asarray([t[2] for t in table], dtype=str), np.asarray([t[3] for t in table], np.float32).reshape(-1, 4))

    def load(self, prev: str, path: str, after: str, box, frame: int = 0) -> tuple[np.ndarray, dict]:
        from .ct import load_ct_input

        if frame:
            raise ImageReadError(path, f"frame {frame}: a CT input is one slice (frame 0)")
        return load_ct_input((prev, path, after), box, self.geometry, with_meta=True)

    def load_path(self, path: str) -> tuple[np.ndarray, dict]:
        return self.load(*self.source_of(path))


InputBuilder = ImageInput | SliceStackInput


def input_builder(geometry: ImageGeometry, *, roi: bool = False, neighbours: bool = False,
                  images: pd.DataFrame | None = None, boxes: pd.DataFrame | None = None,
                  profile: ProfileCheck | None = None) -> InputBuilder:
    """The builder for a model's inputs, decided once: a plain image, or the CT region and neighbours.

    CT inputs need the manifest's image table (series and slice order) and box table; pass the
    whole manifest so every slice finds its neighbours. ``profile``: inputs outside it are
    ``OUTSIDE`` (``decode_with_status``).
    """
    if not (roi or neighbours):
        return ImageInput(geometry, profile)
    if images is None:
        raise UserError("this model reads a region of interest and neighbouring slices: it needs a manifest with "
                        "boxes and series (e.g. tfxray evaluate RUN_DIR --data MANIFEST)")
    from .ct import ct_rows

    empty = pd.DataFrame(columns=["path", "x1", "y1", "x2", "y2"])
    return SliceStackInput(geometry, ct_rows(images, boxes if boxes is not None else empty, roi=roi,
                                             neighbours=neighbours), profile)


def decode_with_status(builder: InputBuilder, source: tuple, frame: int = 0):
    """(image, status, reason, metadata, frames) for one source; never raises for a bad file.

    A file that holds no image is ``SKIPPED``, one that cannot be read an ``ERROR`` (a blank
    image), each with a one-line reason; a CT input whose neighbour failed names that file. With
    the builder's ``profile``, an image outside it is ``OUTSIDE`` (a blank image, its metadata,
    the profile's reason, one frame: the others are not read).
    """
    g = builder.geometry
    blank = np.zeros((g.size, g.size, g.channels), np.float32)
    own_path = source[builder.columns.index("path")]
    try:
        image, meta = builder.load(*source, frame=frame)
    except ImageReadError as exc:
        reason = exc.reason if exc.path == str(own_path) else f"{exc.path}: {exc.reason}"
        return blank, SKIPPED if isinstance(exc, NotAnImageError) else ERROR, reason, {}, 1
    except MemoryError:
        return blank, ERROR, "MemoryError: the image does not fit in memory", {}, 1
    except Exception as exc:  # noqa: BLE001  a broken file becomes a row, never a crash
        return blank, ERROR, (f"{type(exc).__name__}: {exc}".splitlines() or [""])[0][:300], {}, 1
    if builder.profile is not None:  # every builder has one; training builders leave it None
        reason = builder.profile.reason(meta)
        if reason:
            return blank, OUTSIDE, reason, meta, 1
    frames = max(int(meta.get("frames") or 1), 1) if builder.multi_frame else 1
    return image, OK, "", meta, frames


def _plain(value):
    """A tf.numpy_function argument as Python code reads it (strings arrive as bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def input_map(builder: InputBuilder):
    """A tf.data map function for training: the builder's source columns -> the model input.

    A file that fails here stops training with its reason (a manifest's images were checked when
    it was loaded).
    """
    import tensorflow as tf

    g = builder.geometry

    def decode(*columns):
        return builder.load(*(_plain(c) for c in columns))[0]

    def fn(*columns):
        image = tf.numpy_function(decode, list(columns), tf.float32, stateful=False)
        image.set_shape((g.size, g.size, g.channels))
        return image

    return fn


DEFAULT_MAX_PIXELS = 60_000_000  # the readers' per-read pixel limit when images.base has none to tell
BYTES_PER_PIXEL = 8  # one decode's peak per pixel: the decoder's buffer (2-4 B) + its float32 copy (4 B)
MEMORY_ENV = "TFXRAY_DECODE_MEMORY"  # bytes (or 512M, 4G) that parallel decodes may hold together
MEMORY_SHARE = 0.25  # without it: a quarter of the memory available when the stream starts


def _pixel_limit() -> int:
    """The most pixels one read may decode: ``images.base.pixel_limit()`` when the readers have it, else
    the same rule read here (TFXRAY_MAX_PIXELS, default 60,000,000)."""
    try:
        from ..images.base import pixel_limit
    except ImportError:
        pixel_limit = None
    if pixel_limit is not None:
        return int(pixel_limit())
    try:
        return max(int(os.environ.get("TFXRAY_MAX_PIXELS", DEFAULT_MAX_PIXELS)), 1)
    except ValueError:
        return DEFAULT_MAX_PIXELS


def _parse_bytes(text: str) -> int:
    text = text.strip().upper().removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise UserError(f"{MEMORY_ENV}={text!r}: expected a number of bytes, e.g. 4G or 512M") from None
    if value <= 0:
        raise UserError(f"{MEMORY_ENV}={text!r}: must be more than 0")
    return value


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def decode_parallelism(cores: int | None = None) -> int:
    """How many files may decode at once: as many as there are cores, but no more than fit in memory
    at their worst (each at the readers' pixel limit).

    Worst case per decode: the pixel limit (60,000,000 by default: a 7,746 px square, beyond any
    radiograph detector) x 8 bytes = 480 MB. Budget: TFXRAY_DECODE_MEMORY, else a quarter of the
    memory available (``os.sysconf``): with 16 GB free, 4 GB / 480 MB = 8 decodes at once; with
    2 GB free, 1; never fewer than 1. Typical files are far smaller, so this only bites where a
    pathological file would otherwise take the machine down with its neighbours.
    """
    cores = cores or os.cpu_count() or 1
    given = os.environ.get(MEMORY_ENV, "").strip()
    if given:
        budget = _parse_bytes(given)
    else:
        available = _available_memory()
        if available is None:
            return cores
        budget = int(available * MEMORY_SHARE)
    return max(1, min(cores, budget // (_pixel_limit() * BYTES_PER_PIXEL)))


def status_dataset(builder: InputBuilder, paths: Sequence[str], batch_size: int, *, all_frames: bool = False,
                   parallel=None):
    """Batches of (index, frame, frames, status, reason, metadata JSON, image) for ``paths``, in order.

    ``index`` is the path's position in ``paths``. Every per-file step (sniff, read, crop,
    resize) runs in tf.data's parallel decode workers, so the main thread only predicts and
    writes. With ``all_frames`` a multi-frame file (DICOM cine, multi-page TIFF) gives one
    element per frame: frame 0 is decoded by the parallel map, which also learns the number of
    frames; the other frames follow right after it, each read on its own, so memory holds one
    frame at a time. Without, only frame 0 is read. The paths stay a Python list (numpy strings
    would pad every path to the longest) and each element's source is looked up when decoded.
    ``parallel``: decodes at once; by default ``decode_parallelism()`` (cores, bounded by memory).
    """
    import tensorflow as tf

    g = builder.geometry
    shape = (g.size, g.size, g.channels)
    table = list(paths)
    parallel = decode_parallelism() if parallel is None else parallel

    def decode(index, frame):
        def run(i, k):
            image, status, reason, meta, frames = decode_with_status(builder, builder.source_of(table[int(i)]), int(k))
            return (image, np.int32(status), reason.encode(), json.dumps(meta, default=str).encode(),
                    np.int64(frames if all_frames else 1))

        image, status, reason, meta, frames = tf.numpy_function(
            run, [index, frame], (tf.float32, tf.int32, tf.string, tf.string, tf.int64), stateful=False)
        image.set_shape(shape)
        for tensor in (status, reason, meta, frames):
            tensor.set_shape(())
        return index, frame, frames, status, reason, meta, image

    ds = tf.data.Dataset.range(len(table)).map(
        lambda i: decode(i, tf.constant(0, tf.int64)), num_parallel_calls=parallel, deterministic=True)
    if all_frames and builder.multi_frame:
        def with_later_frames(index, frame, frames, status, reason, meta, image):
            head = tf.data.Dataset.from_tensors((index, frame, frames, status, reason, meta, image))
            rest = tf.data.Dataset.range(1, frames).map(lambda k: decode(index, k))  # empty for one frame
            return head.concatenate(rest)

        ds = ds.flat_map(with_later_frames)
    return ds.batch(batch_size).prefetch(2 if all_frames else tf.data.AUTOTUNE)
