"""File types by signature, and every refusal as one line naming the file and the reason."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tfxray.errors import UserError
from tfxray.images import ImageReadError, NotAnImageError, list_files, read_image, sniff

from .conftest import make_dicom, pydicom_file


def test_sniff_by_signature_not_suffix(tmp_path):
    make_dicom(tmp_path / "IM0001", np.zeros((2, 2), np.uint16))
    make_dicom(tmp_path / "bare.png", np.zeros((2, 2), np.uint16), preamble=False)  # misleading suffix
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "a.dcm", format="PNG")
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "b", format="JPEG")
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "c.png", format="TIFF")
    (tmp_path / "notes.dcm").write_text("Patient was seen on Monday.\n")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "zeros").write_bytes(b"\x08\x00" + b"\xff" * 300)
    assert sniff(tmp_path / "IM0001") == "dicom"
    assert sniff(tmp_path / "bare.png") == "dicom"
    assert sniff(tmp_path / "a.dcm") == "png"
    assert sniff(tmp_path / "b") == "jpeg"
    assert sniff(tmp_path / "c.png") == "tiff"
    assert sniff(tmp_path / "notes.dcm") is None
    assert sniff(tmp_path / "empty") is None
    assert sniff(tmp_path / "zeros") is None


def test_sniff_dicomdir():
    assert sniff(pydicom_file("dicomdirtests/DICOMDIR")) == "dicomdir"
    assert sniff(pydicom_file("rtplan.dcm")) == "dicom"  # DICOM, but no image: read_image says so


def test_list_files_recursive_sorted_without_hidden(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "z").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    for name in ("b/1", "a/z/2", "a/3.txt", "0", ".hidden", ".git/x", "a/.DS_Store"):
        (tmp_path / name).write_text("x")
    assert list_files(tmp_path) == ["0", "a/3.txt", "a/z/2", "b/1"]


def assert_one_line(exc: ImageReadError, path) -> None:
    assert exc.path == str(path)
    assert str(exc) == f"{path}: {exc.reason}"
    assert "\n" not in str(exc) and exc.reason
    assert isinstance(exc, ValueError) and isinstance(exc, UserError)


def test_truncated_dicom(tmp_path):
    path = make_dicom(tmp_path / "full", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    data = path.read_bytes()
    (tmp_path / "cut").write_bytes(data[: len(data) - 1000])
    with pytest.raises(ImageReadError) as caught:
        read_image(tmp_path / "cut")
    assert not isinstance(caught.value, NotAnImageError)
    assert caught.value.reason == "pixel data truncated: 7,192 bytes of 8,192"
    assert_one_line(caught.value, tmp_path / "cut")
    (tmp_path / "header-only").write_bytes(data[:200])  # cut inside the header
    with pytest.raises(ImageReadError) as caught:
        read_image(tmp_path / "header-only")
    assert_one_line(caught.value, tmp_path / "header-only")


def test_truncated_png(tmp_path):
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)).save(tmp_path / "x.png")
    data = (tmp_path / "x.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as caught:
        read_image(tmp_path / "cut.png")
    assert "cannot decode PNG" in caught.value.reason
    assert_one_line(caught.value, tmp_path / "cut.png")


def test_dicomdir_is_not_an_image():
    path = pydicom_file("dicomdirtests/DICOMDIR")
    with pytest.raises(NotAnImageError) as caught:
        read_image(path)
    assert "DICOMDIR" in caught.value.reason
    assert_one_line(caught.value, path)


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "report.dcm"
    path.write_text("Impression: no fracture.\n")
    with pytest.raises(NotAnImageError) as caught:
        read_image(path)
    assert "not an image file" in caught.value.reason
    assert_one_line(caught.value, path)


@pytest.mark.parametrize("name, kind", [("rtplan.dcm", "RT Plan Storage"), ("test-SR.dcm", "SR"),
                                        ("waveform_ecg.dcm", "Waveform")])
def test_dicom_without_pixel_data(name, kind):
    path = pydicom_file(name)
    with pytest.raises(NotAnImageError) as caught:
        read_image(path)
    assert "DICOM without pixel data" in caught.value.reason and kind in caught.value.reason
    assert_one_line(caught.value, path)


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_invalid_header_value():
    path = pydicom_file("badVR.dcm")
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert caught.value.reason == "NumberOfFrames (0028,0008) is not a whole number"  # names it, never quotes '1A'
    assert_one_line(caught.value, path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match="cannot open"):
        read_image(tmp_path / "nope")
    with pytest.raises(NotAnImageError, match="a folder"):
        read_image(tmp_path)


def test_errors_pickle():
    import pickle

    exc = pickle.loads(pickle.dumps(NotAnImageError("/x/y", "DICOMDIR")))
    assert isinstance(exc, NotAnImageError) and str(exc) == "/x/y: DICOMDIR"
