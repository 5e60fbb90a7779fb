"""Every file pydicom ships as test material: read, or refused with a one-line reason, nothing else."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tfxray.images import ImageReadError, NotAnImageError, read_image

from .conftest import TEST_FILES

ALL_FILES = sorted(p for p in TEST_FILES.rglob("*") if p.is_file()) if TEST_FILES.is_dir() else []


def pydicom_decodes(path):
    """pydicom's own verdict: the pixel array when ``dcmread(force=True).pixel_array`` works, else None."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path, force=True).pixel_array
    except Exception:  # noqa: BLE001  pydicom cannot decode it either
        return None


def expected_shape(array: np.ndarray, frames: int) -> tuple:
    shape = array.shape
    if array.ndim == (4 if frames > 1 else 3):  # samples axis: gray=True drops it
        shape = shape[:-1]
    return shape


@pytest.mark.skipif(not ALL_FILES, reason="pydicom test files not installed")
def test_every_pydicom_test_file():
    read, refused, decodable_by_pydicom = {}, {}, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in ALL_FILES:
            name = path.relative_to(TEST_FILES).as_posix()
            reference = pydicom_decodes(path)
            if reference is not None:
                decodable_by_pydicom.append(name)
            try:
                image = read_image(path, frame=None)
            except (NotAnImageError, ImageReadError) as exc:
                assert "\n" not in str(exc) and exc.reason, name
                assert str(exc) == f"{path}: {exc.reason}"
                refused[name] = exc.reason
                continue
            pixels = image.pixels
            assert pixels.dtype == np.float32, name
            assert np.isfinite(pixels).all(), name
            assert pixels.min() >= 0 and pixels.max() <= 1, name
            if reference is not None:
                assert pixels.shape == expected_shape(reference, image.meta["frames"]), name
            read[name] = pixels.shape

    not_read = sorted(set(decodable_by_pydicom) - set(read))
    assert not not_read, f"pydicom decodes these but read_image does not: {[(n, refused[n]) for n in not_read]}"
    assert len(decodable_by_pydicom) >= 60  # the corpus is really there
    # the broken files give reasons, not crashes
    for name, fragment in [("MR_truncated.dcm", "pixel data truncated: 8,130 bytes of 8,192"),
                           ("rtplan.dcm", "without pixel data"), ("dicomdirtests/DICOMDIR", "DICOMDIR"),
                           ("README.txt", "not an image file"),
                           ("badVR.dcm", "NumberOfFrames (0028,0008) is not a whole number")]:  # never the '1A' itself
        if name in refused or (TEST_FILES / name).is_file():
            assert fragment in refused.get(name, ""), (name, refused.get(name))
