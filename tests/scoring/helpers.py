"""What the scoring tests share: pydicom's test files, and model inputs computed without the scoring code."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def pydicom_test_files() -> Path:
    import pydicom

    return Path(pydicom.__file__).parent / "data" / "test_files"


def reference_input(path, size: int, frame: int = 0) -> np.ndarray:
    """The model input for one frame, by read_image and TensorFlow's own antialiased resize.

    Independent of the scoring stream (which resizes with Pillow); the two agree within 1e-4
    (tests/data holds them to it).
    """
    import tensorflow as tf

    from tfxray.images import read_image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixels = read_image(path, frame=frame, max_size=2 * size).pixels
    return tf.image.resize(pixels[..., None], (size, size), antialias=True).numpy()


def pydicom_frames(path) -> int | None:
    """Number of frames pydicom decodes from ``path``; None when pydicom cannot decode it."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = pydicom.dcmread(path, force=True).pixel_array
            frames = int(pydicom.dcmread(path, force=True, stop_before_pixels=True).get("NumberOfFrames") or 1)
    except Exception:  # noqa: BLE001  pydicom cannot decode it
        return None
    return frames if array.ndim >= 3 and frames > 1 else 1
