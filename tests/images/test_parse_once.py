"""A DICOM header is parsed once per read: the signature check reads bytes, the DICOM reader parses."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from tfxray.images import NotAnImageError, read_image

from .conftest import make_dicom, pydicom_file


@pytest.fixture()
def parses(monkeypatch):
    """Every pydicom parse (full data set or file meta only), by path (a file object's name)."""
    seen = []
    dcmread, meta_info = pydicom.dcmread, pydicom.filereader.read_file_meta_info

    def counting_dcmread(path, *args, **kwargs):
        seen.append(("dcmread", str(getattr(path, "name", path))))
        return dcmread(path, *args, **kwargs)

    def counting_meta(path, *args, **kwargs):
        seen.append(("meta", str(getattr(path, "name", path))))
        return meta_info(path, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting_dcmread)
    monkeypatch.setattr(pydicom.filereader, "read_file_meta_info", counting_meta)
    return seen


def test_dicom_with_and_without_preamble_is_parsed_once(tmp_path, parses):
    pixels = (np.arange(64, dtype=np.uint16) * 50).reshape(8, 8)
    make_dicom(tmp_path / "IM0001", pixels)
    make_dicom(tmp_path / "bare", pixels, preamble=False)
    for name in ("IM0001", "bare"):
        parses.clear()
        image = read_image(tmp_path / name)
        assert image.pixels.shape == (8, 8) and image.meta["kind"] == "dicom"
        assert parses == [("dcmread", str(tmp_path / name))]


def test_dicomdir_is_refused_from_the_one_parse(parses):
    path = pydicom_file("dicomdirtests/DICOMDIR")
    with pytest.raises(NotAnImageError, match="DICOMDIR"):
        read_image(path)
    assert parses == [("dcmread", str(path))]


def test_bare_bytes_that_are_not_dicom_are_not_an_image(tmp_path, parses):
    (tmp_path / "zeros").write_bytes(b"\x08\x00" + b"\xff" * 300)  # looks like group 0008, is not DICOM
    with pytest.raises(NotAnImageError, match="not an image file"):
        read_image(tmp_path / "zeros")
