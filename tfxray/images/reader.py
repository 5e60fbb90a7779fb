"""``read_image``: one entry point for every file a PACS export holds, dispatched by signature."""

from __future__ import annotations

import os
import traceback

from .base import NOT_AN_IMAGE, ImageReadError, NotAnImageError, RadiographImage, describe, pixel_limit
from .sniff import BARE_DICOM, NotARegularFileError, signature


def read_image(path, *, frame: int | None = 0, apply_voi: bool = True, window: int = 0, gray: bool = True,
               max_size: int | None = None, max_pixels: int | None = None) -> RadiographImage:
    """Read a DICOM, PNG, JPEG or TIFF file as display-ready float32 pixels in [0, 1], bone bright.

    ``frame``: the frame (page) of a multi-frame file, 0 by default; ``None`` returns the whole
    stack as (F, H, W). ``apply_voi=False`` skips the VOI LUT / window of a DICOM file (the
    Modality LUT output is then min-max scaled over the image). ``window`` picks one of several
    VOI LUTs or windows (default the first, as most viewers do). ``gray=False`` keeps colour
    files as (H, W, 3). ``max_size`` downsamples at decode time (box average by an integer factor)
    so that the longer side is at most ``max_size`` pixels. ``max_pixels``: refuse, before
    decoding, a file that declares more pixels (rows x columns x samples x frames read; the whole
    stack for ``frame=None``); None takes $TFXRAY_MAX_PIXELS, else ``base.DEFAULT_MAX_PIXELS``.

    Raises ``NotAnImageError`` for files that hold no image (DICOMDIR, DICOM without pixel data,
    text, unknown formats, pipes and devices) and ``ImageReadError`` for images that cannot be
    read; both carry ``.path`` and a one-line ``.reason``, which never quotes text from the file.
    Nothing else escapes for a bad file (KeyboardInterrupt does). See ``tfxray.images.dicom`` for
    the display pipeline.
    """
    from .dicom import read_dicom
    from .raster import read_raster

    if window is None or int(window) < 0:
        raise ValueError(f"window must be a non-negative index, not {window!r}")
    if max_size is not None and int(max_size) < 1:
        raise ValueError(f"max_size must be a positive number of pixels, not {max_size!r}")
    limit = pixel_limit(max_pixels)
    try:
        kind = signature(path)  # the first bytes; a DICOM header is parsed once, by read_dicom
    except IsADirectoryError:
        raise NotAnImageError(path, "a folder, not a file") from None
    except NotARegularFileError as exc:
        raise NotAnImageError(path, exc.strerror) from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot open: {exc.strerror or describe(exc)}") from None
    if kind is None:
        raise NotAnImageError(path, NOT_AN_IMAGE)
    try:
        if kind in ("dicom", BARE_DICOM):
            return read_dicom(path, frame=frame, apply_voi=apply_voi, window=int(window), gray=gray,
                              max_size=max_size, bare=kind == BARE_DICOM, max_pixels=limit)
        return read_raster(path, kind, frame=frame, gray=gray, max_size=max_size, max_pixels=limit)
    except (ImageReadError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001  last resort (a codec's Rust panic is a BaseException too)
        raise ImageReadError(path, f"unexpected {_where(exc)} (a tfxray bug: please report it)") from None


def _where(exc: BaseException) -> str:
    """The exception type and the line that raised it: its message may quote the file, so it is left out."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {os.path.basename(last.filename)}:{last.lineno}"
