"""What every reader shares: the result type, the errors, the metadata keys, area downsampling."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError

IMAGE_KINDS = ("dicom", "png", "jpeg", "tiff")

# The only metadata a reader may report. Identifiers and acquisition facts, never names,
# dates of birth, descriptions, institutions or other free text from the file.
META_KEYS = (
    "kind", "patient_id", "study_uid", "series_uid", "sop_uid", "instance_number", "slice_position",
    "view_position", "laterality", "modality", "photometric", "bits_stored", "rows", "cols", "frames",
    "transfer_syntax", "pixel_padding_masked",
    # How the reader got there (its own words, never text from the file):
    "frame",      # the frame returned; None for a whole stack
    "voi",        # how the display range was chosen: "voi_lut", "window", "minmax" or None (colour, raster)
    "recovered",  # what the reader repaired to read a broken file (e.g. an inferred transfer syntax), or None
)


def empty_meta(kind: str) -> dict:
    meta = dict.fromkeys(META_KEYS)
    meta["kind"] = kind
    meta["pixel_padding_masked"] = False
    return meta


# Decompression bombs: a read refuses, before decoding, a file that declares more pixels than this
# (rows x columns x samples x frames read). 60 million is a 7,700 x 7,700 gray image, three times
# the largest radiograph detectors; a whole stack read counts every frame.
DEFAULT_MAX_PIXELS = 60_000_000
MAX_PIXELS_ENV = "TFXRAY_MAX_PIXELS"


def pixel_limit(max_pixels: int | None = None) -> int:
    """The pixel budget of one read: ``max_pixels``, else $TFXRAY_MAX_PIXELS, else ``DEFAULT_MAX_PIXELS``."""
    if max_pixels is not None:
        if isinstance(max_pixels, bool) or int(max_pixels) < 1:
            raise ValueError(f"max_pixels must be a positive number of pixels, not {max_pixels!r}")
        return int(max_pixels)
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"{MAX_PIXELS_ENV} must be a positive whole number of pixels, not {text!r}")
    return value


def check_pixel_budget(path, rows: int, cols: int, frames: int = 1, samples: int = 1, limit: int | None = None) -> None:
    """Refuse (``ImageReadError``) an image that declares more pixels than ``limit`` (default ``pixel_limit()``)."""
    limit = pixel_limit() if limit is None else limit
    total = int(rows) * int(cols) * int(frames) * int(samples)
    if total <= limit:
        return
    shape = f"{int(rows)} x {int(cols)}" + (f" x {int(samples)} samples" if samples != 1 else "") \
        + (f" x {int(frames)} frames" if frames != 1 else "")
    raise ImageReadError(path, f"declares {shape} = {total:,} pixels, over the limit of {limit:,} ({MAX_PIXELS_ENV})")


NOT_AN_IMAGE = "not an image file (no DICOM, PNG, JPEG or TIFF signature)"


class ImageReadError(UserError, ValueError):
    """A file that cannot be read as an image; ``str(e)`` is ``"{path}: {reason}"`` on one line.

    A ``UserError`` too, so a CLI command that reads one file reports it as one line (exit 2).
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = one_line(reason)
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # keep the two-argument constructor picklable (multiprocessing)
        return (type(self), (self.path, self.reason))


class NotAnImageError(ImageReadError):
    """A file that holds no image: DICOMDIR, DICOM without pixel data (SR, RT plan, waveform), text…

    Callers skip these and report the reason.
    """


@dataclass
class RadiographImage:
    """Display-ready pixels in [0, 1] (bone bright), safe metadata and the valid-pixel mask.

    ``pixels`` is float32: (H, W) for one frame, (F, H, W) for a stack (``frame=None`` on a
    multi-frame file), (H, W, 3) when ``gray=False`` on a colour file ((F, H, W, 3) for a colour stack).
    ``valid_mask`` is False where pixel padding was masked, None when nothing was masked.
    """

    pixels: np.ndarray
    meta: dict = field(default_factory=dict)
    valid_mask: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.pixels.shape)


def frame_index(path, frame: int | None, n_frames: int) -> int | None:
    """The frame to read (negative counts from the end), None for the whole stack."""
    if frame is None:
        return None
    frame = int(frame)
    if not -n_frames <= frame < n_frames:
        raise ImageReadError(path, f"frame {frame} out of range (the file has {n_frames})")
    return frame % n_frames


def one_line(text) -> str:
    """Collapse a (possibly multi-line) message to one line of reasonable length."""
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."


def describe(exc: BaseException) -> str:
    message = one_line(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def luminance(rgb: np.ndarray) -> np.ndarray:
    """RGB (last axis) -> gray with the ITU-R BT.601 weights (Pillow's "L", the Y of DICOM YBR_FULL)."""
    rgb = rgb[..., :3]
    return (rgb[..., 0] * np.float32(0.299) + rgb[..., 1] * np.float32(0.587)
            + rgb[..., 2] * np.float32(0.114)).astype(np.float32)


def downsample_factor(height: int, width: int, max_size: int | None) -> int:
    """The smallest integer factor that brings the longer side to ``max_size`` or below."""
    if max_size is None:
        return 1
    if int(max_size) < 1:
        raise ValueError(f"max_size must be a positive number of pixels, not {max_size}")
    return max(1, math.ceil(max(height, width) / int(max_size)))


def area_downsample(arr: np.ndarray, max_size: int | None, *, channels_last: bool = False,
                    valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Shrink the two image axes by an integer factor with a (masked) box average.

    Image axes are the last two, or the two before a channel axis when ``channels_last``.
    Where ``valid`` is given (same image shape, broadcast over leading axes), invalid pixels
    (padding) take no part in the average, so a padding value never bleeds into the tissue;
    an output pixel is valid when any pixel of its block was. Returns float32 values and the
    reduced mask (or None). Written here because neither pydicom nor numpy offers an area
    resize, and Pillow's ``reduce`` refuses 16-bit images.
    """
    axis = arr.ndim - (3 if channels_last else 2)
    height, width = arr.shape[axis], arr.shape[axis + 1]
    k = downsample_factor(height, width, max_size)
    if k == 1:
        return arr, valid
    out_h, out_w = -(-height // k), -(-width // k)
    pad_h, pad_w = out_h * k - height, out_w * k - width
    # Leading axes (frames) and a trailing channel axis broadcast against (H, W)-shaped weights.
    spatial = (slice(None),) * 2 + ((None,) if channels_last else ())

    if valid is not None:
        valid = np.broadcast_to(valid, arr.shape[:axis + 2])
        values = np.where(valid[(...,) + spatial[2:]], arr, 0)  # padding takes no part in the sums
    else:
        values = arr  # summed as it is, in float64: no full-size float copy
    if pad_h or pad_w:  # pad with pixels that count for nothing: edge blocks average only real pixels
        pad = [(0, 0)] * arr.ndim
        pad[axis], pad[axis + 1] = (0, pad_h), (0, pad_w)
        values = np.pad(values, pad)
        if valid is not None:
            valid = np.pad(valid, pad[:axis + 2])
    lead, tail = values.shape[:axis], values.shape[axis + 2:]
    total = values.reshape(lead + (out_h, k, out_w, k) + tail).sum(axis=(axis + 1, axis + 3), dtype=np.float64)
    if valid is not None:
        count = valid.reshape(valid.shape[:axis] + (out_h, k, out_w, k)).sum(axis=(axis + 1, axis + 3))
        count = count[(...,) + spatial[2:]].astype(np.float64)
    else:  # block sizes: k x k, smaller along the bottom and right edges
        rows = np.minimum(k, height - np.arange(out_h) * k)
        cols = np.minimum(k, width - np.arange(out_w) * k)
        count = np.outer(rows, cols).astype(np.float64)[spatial]
    reduced = np.divide(total, count, out=np.zeros(total.shape), where=count > 0).astype(np.float32)
    reduced_valid = None
    if valid is not None:
        reduced_valid = (count > 0)[..., 0] if channels_last else count > 0
    return reduced, reduced_valid


def scale_by_range(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear map [low, high] -> [0, 1], clipped; a flat range gives zeros."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(high - low) or high <= low:
        return np.zeros(values.shape, np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)

