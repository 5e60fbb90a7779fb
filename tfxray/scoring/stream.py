"""The scoring stream: files -> one element per frame, decoded in parallel, batched, prefetched.

``frame_dataset`` yields batches of (file index, frame, number of frames, status, reason,
metadata JSON, image). Every per-file step (sniff, read, resize) runs in tf.data's parallel
decode workers, so the main thread only predicts and writes. A file that holds no image is a
``skipped`` element and one that cannot be read an ``error`` element (blank image), never an
exception.

Multi-frame files (DICOM cine/tomosynthesis/RT dose, multi-page TIFF) give one element per
frame: frame 0 is decoded by the parallel map, which also learns the number of frames; the
other frames follow right after it (``flat_map``), each read on its own with
``read_image(path, frame=k)``, so memory holds one frame (and the file's bytes) at a time, never
the whole stack. Each frame is scaled for display on its own (its VOI window, or its own
min-max when the file gives none), exactly as ``read_image(path, frame=k)`` shows it.
"""

from __future__ import annotations

import json

import numpy as np

from ..data.pipeline import ImageGeometry, resize_array
from ..images import ImageReadError, NotAnImageError, read_image

OK, ERROR, SKIPPED = 0, 1, 2
STATUS_NAMES = ("ok", "error", "skipped")


def load_frame(path: str, geometry: ImageGeometry, frame: int = 0) -> tuple[np.ndarray, dict]:
    """One frame of a file -> the model's input (size, size, channels) float32 in [0, 1], and its metadata.

    ``data.pipeline.load_resized`` with a frame index (it always reads frame 0): the same
    decode-time downscale, antialiased resize and gray-to-RGB order.
    """
    image = read_image(path, frame=frame, max_size=geometry.decode_max_size)
    pixels = image.pixels[..., None]  # (H, W): read_image(gray=True) reduces colour to luminance
    resized = resize_array(np.ascontiguousarray(pixels, dtype=np.float32), geometry)
    if geometry.channels == 3 and resized.shape[-1] == 1:  # replicate after resizing: a third of the work
        resized = np.repeat(resized, 3, axis=-1)
    return resized, image.meta


def _decode(path: str, geometry: ImageGeometry, frame: int, blank: np.ndarray):
    """(image, status, reason, metadata JSON, number of frames); never raises for a bad file."""
    try:
        pixels, meta = load_frame(path, geometry, frame)
    except NotAnImageError as exc:
        return blank, SKIPPED, exc.reason, "{}", 1
    except ImageReadError as exc:
        return blank, ERROR, exc.reason, "{}", 1
    except MemoryError:
        return blank, ERROR, "MemoryError: the image does not fit in memory", "{}", 1
    except Exception as exc:  # noqa: BLE001  a broken file becomes a row, never a crash
        return blank, ERROR, (f"{type(exc).__name__}: {exc}".splitlines() or [""])[0][:300], "{}", 1
    frames = int(meta.get("frames") or 1)
    return pixels, OK, "", json.dumps(meta, default=str), max(frames, 1)


def frame_dataset(paths: list[str], geometry: ImageGeometry, batch_size: int, *, parallel=None):
    """Batches of (index, frame, frames, status, reason, meta, image) for the files ``paths``, in order.

    ``index`` is the file's position in ``paths``. Order is deterministic: file by file, the
    frames of a file one after another.
    """
    import tensorflow as tf

    shape = (geometry.size, geometry.size, geometry.channels)
    blank = np.zeros(shape, np.float32)
    table = np.asarray(paths, dtype=object)  # numpy strings would pad every path to the longest
    parallel = tf.data.AUTOTUNE if parallel is None else parallel

    def decode(index, frame):
        def run(i, k):
            pixels, status, reason, meta, frames = _decode(table[int(i)], geometry, int(k), blank)
            return pixels, np.int32(status), reason.encode(), meta.encode(), np.int64(frames)

        image, status, reason, meta, frames = tf.numpy_function(
            run, [index, frame], (tf.float32, tf.int32, tf.string, tf.string, tf.int64), stateful=False)
        image.set_shape(shape)
        for tensor in (status, reason, meta, frames):
            tensor.set_shape(())
        return index, frame, frames, status, reason, meta, image

    first = tf.data.Dataset.range(len(paths)).map(
        lambda i: decode(i, tf.constant(0, tf.int64)), num_parallel_calls=parallel, deterministic=True)

    def with_later_frames(index, frame, frames, status, reason, meta, image):
        head = tf.data.Dataset.from_tensors((index, frame, frames, status, reason, meta, image))
        rest = tf.data.Dataset.range(1, frames).map(lambda k: decode(index, k))  # empty for one frame
        return head.concatenate(rest)

    ds = first.flat_map(with_later_frames)
    return ds.batch(batch_size).prefetch(2)
