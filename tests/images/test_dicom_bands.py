"""The display pipeline runs in row bands: same pixels as in one piece, a bounded peak of memory."""

import tracemalloc

import numpy as np
import pytest

from tfxray.images import dicom, read_image


def _stored(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    values = (np.random.default_rng(seed).random((rows, cols)) * 4000).astype(np.uint16)
    values[:7] = 0  # padding rows
    return values


@pytest.mark.parametrize("elements", [
    dict(WindowCenter=1000, WindowWidth=3000),  # window
    dict(),  # no VOI: min-max over the valid pixels of the whole image
])
def test_bands_give_the_pixels_of_one_piece(dicom_file, monkeypatch, elements):
    path = dicom_file(_stored(53, 41), bits_stored=12, photometric="MONOCHROME1", RescaleSlope=2, RescaleIntercept=-1024,
                      PixelPaddingValue=0, **elements)
    whole = read_image(path).pixels
    monkeypatch.setattr(dicom, "BAND_PIXELS", 41 * 5)  # bands of 5 rows: 11 bands, the last of 3
    banded = read_image(path).pixels
    np.testing.assert_array_equal(banded, whole)
    assert (whole[:7] == 0).all() and 0 < whole[7:].mean() < 1


def test_multiframe_min_max_range_spans_frames_across_bands(dicom_file, monkeypatch):
    stack = np.stack([_stored(20, 30, 1) // 4, _stored(20, 30, 2)])  # frame 0 dimmer than frame 1
    path = dicom_file(stack, bits_stored=12)
    monkeypatch.setattr(dicom, "BAND_PIXELS", 30 * 3)
    frames = read_image(path, frame=None).pixels
    assert frames.shape == (2, 20, 30)
    assert frames.max() == pytest.approx(1.0) and frames[0].max() < 0.3  # one range for both frames


def test_full_size_radiograph_peaks_near_its_output(dicom_file):
    path = dicom_file(_stored(2000, 2000), bits_stored=12, RescaleIntercept=-1024, RescaleSlope=1,
                      WindowCenter=1000, WindowWidth=3000, PixelPaddingValue=0)
    read_image(path, max_size=64)  # imports and pydicom's first-use work outside the measurement
    tracemalloc.start()
    try:
        pixels = read_image(path).pixels
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # float32 output 16 MB, the stored values and the file's bytes 8 MB each, the padding mask:
    # the whole-image float64 pipeline peaked near 160 MB here
    assert pixels.shape == (2000, 2000)
    assert peak < 4 * pixels.nbytes, f"peak {peak / 2**20:.0f} MB for a {pixels.nbytes / 2**20:.0f} MB image"
