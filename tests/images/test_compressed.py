"""Compressed transfer syntaxes: pydicom's test files and files compressed here, against references."""

from __future__ import annotations

import numpy as np
import pytest

from tfxray.images import read_image

from .conftest import make_dicom, pydicom_file
from .test_dicom_pipeline import linear_window


def reference_display(path) -> np.ndarray:
    """The display pipeline written out by hand from pydicom's decoded stored values.

    Rescale by slope/intercept, the first LINEAR window (PS3.3 C.11.2.1.2.1) or min-max over the
    non-padding pixels, MONOCHROME1 inverted, padding to 0; colour to BT.601 luminance.
    """
    from pydicom import dcmread

    ds = dcmread(path)
    stored = ds.pixel_array
    if ds.SamplesPerPixel == 3:
        rgb = stored.astype(float) / (2 ** ds.BitsStored - 1)
        return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    assert "ModalityLUTSequence" not in ds and "VOILUTSequence" not in ds
    values = stored * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    valid = np.ones(stored.shape, bool)
    if "PixelPaddingValue" in ds:
        valid = stored != ds.PixelPaddingValue
    if "WindowCenter" in ds:
        center = ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter
        width = ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth
        out = linear_window(values, float(center), float(width))
    else:
        low, high = values[valid].min(), values[valid].max()
        out = (values - low) / (high - low)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 1 - out
    return np.where(valid, out, 0)


LOSSLESS_PAIRS = [
    ("MR_small_RLE.dcm", "MR_small.dcm"),                 # RLE lossless
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),        # JPEG 2000 lossless
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),    # JPEG-LS lossless
    ("MR_small_bigendian.dcm", "MR_small.dcm"),           # explicit VR big endian
    ("MR_small_implicit.dcm", "MR_small.dcm"),            # implicit VR little endian
    ("rtdose_rle.dcm", "rtdose.dcm"),                     # RLE, 32-bit, multi-frame
    ("liver_expb_1frame.dcm", "liver_1frame.dcm"),
    ("SC_rgb_small_odd_big_endian.dcm", "SC_rgb_small_odd.dcm"),
]


@pytest.mark.parametrize("compressed, reference", LOSSLESS_PAIRS)
def test_lossless_syntax_equals_uncompressed_reference(compressed, reference):
    a = read_image(pydicom_file(compressed), frame=None)
    b = read_image(pydicom_file(reference), frame=None)
    assert a.pixels.shape == b.pixels.shape
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert a.meta["transfer_syntax"] != b.meta["transfer_syntax"]


@pytest.mark.parametrize("name", [
    "JPGExtended.dcm",                 # JPEG extended (process 2 and 4), 12-bit
    "SC_rgb_jpeg_dcmtk.dcm",           # JPEG baseline, YBR_FULL
    "SC_rgb_jpeg_gdcm.dcm",            # JPEG lossless, RGB
    "JPEG2000.dcm",                    # JPEG 2000
    "693_J2KI.dcm",                    # JPEG 2000 (irreversible), signed, padding, window
    "JPEGLSNearLossless_16.dcm",       # JPEG-LS near-lossless
    "image_dfl.dcm",                   # deflated explicit VR little endian
    "MR_small.dcm",
    "CT_small.dcm",
    "dicomdirtests/77654033/CR1/6154",  # CR, MONOCHROME1, window
])
def test_matches_hand_written_pipeline(name):
    path = pydicom_file(name)
    image = read_image(path)
    expected = reference_display(path)
    assert image.pixels.shape == expected.shape
    np.testing.assert_allclose(image.pixels, expected, atol=1e-5)


def test_jpeg_baseline_close_to_uncompressed_source():
    lossy = read_image(pydicom_file("SC_rgb_small_odd_jpeg.dcm"), gray=False).pixels
    source = read_image(pydicom_file("SC_rgb_small_odd.dcm"), gray=False).pixels
    assert lossy.shape == source.shape == (3, 3, 3)
    assert np.abs(lossy - source).max() < 0.05  # lossy, but the same picture


def _synthetic(tmp_path, name):
    y, x = np.mgrid[0:48, 0:40]
    stored = ((x * 37 + y * 53) % 4096).astype(np.uint16)
    return make_dicom(tmp_path / name, stored, bits_stored=12, RescaleSlope=1, RescaleIntercept=-1024,
                      WindowCenter=900, WindowWidth=2500, photometric="MONOCHROME1")


@pytest.mark.parametrize("syntax_name", ["RLELossless", "JPEG2000Lossless", "DeflatedExplicitVRLittleEndian"])
def test_compressed_here_reads_like_uncompressed(tmp_path, syntax_name):
    import pydicom
    from pydicom import uid

    syntax = getattr(uid, syntax_name)
    reference = _synthetic(tmp_path, "plain")
    ds = pydicom.dcmread(reference)
    target = tmp_path / "compressed"
    if syntax.is_compressed:
        from pydicom.pixels import get_encoder

        if not get_encoder(syntax).is_available:
            pytest.skip(f"no {syntax.name} encoder installed")
        ds.compress(syntax)
        ds.save_as(target)
    else:
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(target, enforce_file_format=True)
    image = read_image(target)
    assert image.meta["transfer_syntax"] == syntax.name
    np.testing.assert_array_equal(image.pixels, read_image(reference).pixels)


def test_missing_transfer_syntax_with_compressed_pixel_data_is_recovered(tmp_path):
    import pydicom
    from pydicom.uid import RLELossless

    ds = pydicom.dcmread(_synthetic(tmp_path, "plain"))
    ds.compress(RLELossless)
    del ds.file_meta.TransferSyntaxUID
    target = tmp_path / "no-syntax"
    ds.save_as(target, implicit_vr=False, little_endian=True)
    image = read_image(target)
    assert "inferred RLE Lossless" in image.meta["recovered"]
    np.testing.assert_array_equal(image.pixels, read_image(tmp_path / "plain").pixels)
