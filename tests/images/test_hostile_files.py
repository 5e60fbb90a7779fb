"""Hostile and broken files: every one refused with a one-line reason, before any large allocation.

Built from pydicom's test files and small synthetic DICOM/PNG/JPEG/TIFF files. Each block is one
problem found in the reader (truncation, decompression bombs, trusted NumberOfFrames, MemoryError,
pipes and devices, corrupt rescale or window, header text in reasons).
"""

from __future__ import annotations

import io
import os
import signal
import socket
import stat
import struct
import tempfile
import time
import tracemalloc
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom import config
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import DeflatedExplicitVRLittleEndian

from tfxray.errors import UserError
from tfxray.images import ImageReadError, NotAnImageError, read_image, sniff
from tfxray.images import dicom as dicom_reader
from tfxray.images import raster
from tfxray.images.base import DEFAULT_MAX_PIXELS, check_pixel_budget, pixel_limit
from tfxray.images.sniff import NotARegularFileError, signature

from . import fuzz_mutations
from .conftest import make_dicom, pydicom_file

RAMP = (np.arange(64 * 64, dtype=np.uint16) % 4000).reshape(64, 64)


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom and Pillow warn about every hostile header
        yield


def refused(path, error=ImageReadError, **kwargs) -> ImageReadError:
    """The one-line refusal of ``path`` (not a NotAnImageError unless asked)."""
    with pytest.raises(error) as caught:
        read_image(path, **kwargs)
    exc = caught.value
    assert str(exc) == f"{path}: {exc.reason}" and "\n" not in str(exc) and exc.reason
    if error is ImageReadError:
        assert not isinstance(exc, NotAnImageError), exc.reason
    return exc


def edit(source: Path, target: Path, **changes) -> Path:
    """``source`` rewritten by pydicom with ``changes`` (keyword=value, None deletes; (VR, value) sets the VR)."""
    with config.disable_value_validation():
        ds = pydicom.dcmread(source, force=True)
        for keyword, value in changes.items():
            if value is None:
                delattr(ds, keyword)
            elif isinstance(value, tuple):
                ds.add_new(keyword, *value)
            else:
                setattr(ds, keyword, value)
        ds.save_as(target, enforce_file_format=False)
    return target


def replace_bytes(path: Path, old: bytes, new: bytes) -> Path:
    """Plant ``new`` wherever ``old`` was (same length): values pydicom would refuse to write."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new))
    return path


# ---------------------------------------------------------------- 1. truncated pixel data is an error, not a skip

@pytest.mark.parametrize("cut", [-1, 0, 2, 4, 6, 9, 12, 13, 500])
def test_dicom_cut_at_or_inside_its_pixel_data(tmp_path, cut):
    data = make_dicom(tmp_path / "full", RAMP).read_bytes()
    tag = data.index(b"\xe0\x7f\x10\x00")
    (tmp_path / "cut").write_bytes(data[:tag + cut])
    assert refused(tmp_path / "cut").reason.startswith("pixel data truncated")


def test_dicom_truncated_reason_counts_the_bytes(tmp_path):
    data = make_dicom(tmp_path / "full", RAMP).read_bytes()
    (tmp_path / "cut").write_bytes(data[:-1000])
    assert refused(tmp_path / "cut").reason == "pixel data truncated: 7,192 bytes of 8,192"


def test_compressed_dicom_cut_inside_a_fragment(tmp_path):
    data = pydicom_file("SC_rgb_jpeg_dcmtk.dcm").read_bytes()
    (tmp_path / "cut").write_bytes(data[:-500])  # no sequence delimiter: pydicom drops the element
    assert refused(tmp_path / "cut").reason.startswith("pixel data truncated")

    ds = pydicom.dcmread(pydicom_file("SC_rgb_jpeg_dcmtk.dcm"))
    ds.PixelData = ds.PixelData[:-300]  # the fragment's length says 300 bytes more than there are
    ds.save_as(tmp_path / "short-fragment")
    assert refused(tmp_path / "short-fragment").reason.startswith("pixel data truncated: compressed fragment 1 holds")


def test_image_object_cut_before_its_image_module(tmp_path):
    data = make_dicom(tmp_path / "full", RAMP).read_bytes()
    (tmp_path / "cut").write_bytes(data[:data.index(b"\x28\x00\x02\x00")])  # before SamplesPerPixel (0028,0002)
    reason = refused(tmp_path / "cut").reason
    assert reason == ("pixel data missing: no PixelData (7FE0,0010) in this Digital X-Ray Image Storage - For "
                      "Presentation object (a truncated file?)")


def test_objects_without_pixel_data_are_still_skipped():
    assert "without pixel data (RT Plan Storage)" in refused(pydicom_file("rtplan.dcm"), NotAnImageError).reason
    assert "without pixel data" in refused(pydicom_file("rtplan_truncated.dcm"), NotAnImageError).reason


# ---------------------------------------------------------------- 2. decompression bombs, refused by declared size

def test_pixel_limit_default_argument_and_environment(monkeypatch):
    monkeypatch.delenv("TFXRAY_MAX_PIXELS", raising=False)
    assert pixel_limit() == DEFAULT_MAX_PIXELS == 60_000_000
    assert pixel_limit(1000) == 1000
    monkeypatch.setenv("TFXRAY_MAX_PIXELS", "5000")
    assert pixel_limit() == 5000 and pixel_limit(7) == 7  # the argument wins
    monkeypatch.setenv("TFXRAY_MAX_PIXELS", "many")
    with pytest.raises(UserError, match="TFXRAY_MAX_PIXELS must be a positive whole number"):
        pixel_limit()
    with pytest.raises(ValueError, match="max_pixels"):
        pixel_limit(0)


def test_check_pixel_budget_reason():
    check_pixel_budget("x", 7000, 8000, 1, 1, 60_000_000)
    with pytest.raises(ImageReadError) as caught:
        check_pixel_budget("x", 60000, 60000, 1000, 1, 60_000_000)
    assert caught.value.reason == ("declares 60000 x 60000 x 1000 frames = 3,600,000,000,000 pixels, "
                                   "over the limit of 60,000,000 (TFXRAY_MAX_PIXELS)")


def test_dicom_declaring_60000_squared(tmp_path):
    path = edit(make_dicom(tmp_path / "small", RAMP), tmp_path / "huge", Rows=60000, Columns=60000)
    assert refused(path).reason == ("declares 60000 x 60000 = 3,600,000,000 pixels, over the limit of 60,000,000 "
                                    "(TFXRAY_MAX_PIXELS)")


def test_compressed_dicom_declaring_60000_squared_is_refused_not_a_memory_error(tmp_path):
    path = edit(pydicom_file("SC_rgb_jpeg_dcmtk.dcm"), tmp_path / "huge", Rows=60000, Columns=60000)
    assert refused(path).reason.startswith("declares 60000 x 60000 x 3 samples = 10,800,000,000 pixels")


def test_pixel_limit_counts_the_frames_read(tmp_path, monkeypatch):
    path = make_dicom(tmp_path / "stack", np.stack([RAMP[:8, :8]] * 10))
    assert read_image(path, max_pixels=100).shape == (8, 8)  # one frame: 64 pixels
    assert refused(path, frame=None, max_pixels=100).reason == (
        "declares 8 x 8 x 10 frames = 640 pixels, over the limit of 100 (TFXRAY_MAX_PIXELS)")
    monkeypatch.setenv("TFXRAY_MAX_PIXELS", "50")
    assert "over the limit of 50" in refused(path).reason


def jpeg_sof_at(data: bytes) -> int:
    return min(i for i in (data.find(b"\xff\xc0"), data.find(b"\xff\xc1")) if i > 0)


@pytest.mark.parametrize("size, fragment", [
    ((200, 200), "a compressed frame declares 200 x 200 pixels, more than Rows x Columns (100 x 100)"),
    ((0, 100), "a compressed frame declares 0 x 100 pixels (a height set later by a DNL marker is not supported)"),
    ((9000, 9000), "declares 9000 x 9000 x 3 samples = 243,000,000 pixels"),
])
def test_compressed_stream_declaring_another_size(tmp_path, size, fragment):
    data = bytearray(pydicom_file("SC_rgb_jpeg_dcmtk.dcm").read_bytes())
    sof = jpeg_sof_at(bytes(data))
    data[sof + 5:sof + 9] = struct.pack(">HH", *size)
    (tmp_path / "x.dcm").write_bytes(bytes(data))
    assert refused(tmp_path / "x.dcm").reason.startswith(fragment)


def png_bytes(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def with_ihdr(data: bytes, width: int, height: int) -> bytes:
    body = struct.pack(">II", width, height) + data[24:29]
    return data[:8] + struct.pack(">I", 13) + b"IHDR" + body + struct.pack(">I", zlib.crc32(b"IHDR" + body)) + data[33:]


def test_png_bombs(tmp_path, monkeypatch):
    small = png_bytes(np.zeros((8, 8), np.uint8))
    (tmp_path / "a.png").write_bytes(with_ihdr(small, 9000, 9000))
    assert refused(tmp_path / "a.png").reason == ("declares 9000 x 9000 = 81,000,000 pixels, over the limit of "
                                                  "60,000,000 (TFXRAY_MAX_PIXELS)")
    (tmp_path / "b.png").write_bytes(with_ihdr(small, 100000, 100000))  # Pillow's own DecompressionBombError
    assert "over Pillow's limit (PIL.Image.MAX_IMAGE_PIXELS)" in refused(tmp_path / "b.png").reason
    (tmp_path / "c.png").write_bytes(png_bytes(np.zeros((40, 40), np.uint8)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: Pillow only warns
    assert refused(tmp_path / "c.png").reason == ("declares 40 x 40 = 1,600 pixels, over Pillow's limit of 1,000 "
                                                  "(PIL.Image.MAX_IMAGE_PIXELS)")


def test_jpeg_bomb(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = jpeg_sof_at(bytes(data))
    data[sof + 5:sof + 9] = struct.pack(">HH", 9000, 9000)
    (tmp_path / "x.jpg").write_bytes(bytes(data))
    assert refused(tmp_path / "x.jpg").reason.startswith("declares 9000 x 9000 = 81,000,000 pixels, over the limit")


def test_tiff_bomb_refused_before_tifffile_decodes(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16))
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(60000)
        tif.pages[0].tags["ImageLength"].overwrite(60000)
    assert refused(path).reason.startswith("declares 60000 x 60000 = 3,600,000,000 pixels, over the limit")


def test_deflated_dicom_inflating_past_the_limit(tmp_path, monkeypatch):
    path = make_dicom(tmp_path / "deflated", RAMP, syntax=DeflatedExplicitVRLittleEndian)
    assert read_image(path).shape == (64, 64)
    monkeypatch.setattr(dicom_reader, "_INFLATE_HEADER_ALLOWANCE", 0)
    assert refused(path, max_pixels=100).reason.startswith("the deflated data set inflates to more than 800 bytes")


# ---------------------------------------------------------------- 3. NumberOfFrames, Rows, Columns, BitsAllocated checked

def test_jpeg_dicom_claiming_two_billion_frames_is_refused_at_once(tmp_path):
    path = edit(pydicom_file("SC_rgb_jpeg_dcmtk.dcm"), tmp_path / "x", NumberOfFrames=2 ** 31 - 1)
    start = time.perf_counter()
    reason = refused(path).reason
    assert time.perf_counter() - start < 5
    assert reason == ("the Basic Offset Table of PixelData (7FE0,0010) lists 1 frame but NumberOfFrames (0028,0008) "
                      "declares 2147483647")
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate(list(generate_frames(ds.PixelData, number_of_frames=1)), has_bot=False)
    ds.save_as(tmp_path / "no-offset-table")
    assert refused(tmp_path / "no-offset-table").reason == (
        "NumberOfFrames (0028,0008) declares 2147483647 frames but the compressed PixelData (7FE0,0010) holds 1 fragment")


def test_uncompressed_frame_count_against_the_bytes(tmp_path):
    path = edit(make_dicom(tmp_path / "one", RAMP), tmp_path / "many", NumberOfFrames=5000)
    assert refused(path).reason == ("NumberOfFrames (0028,0008) declares 5000 frames but PixelData (7FE0,0010) "
                                    "holds 1 (8,192 bytes of 40,960,000)")
    three = edit(make_dicom(tmp_path / "one", RAMP), tmp_path / "three", PixelData=RAMP.tobytes() * 3)
    assert refused(three).reason == ("PixelData (7FE0,0010) holds 3 frames of 64 x 64 but NumberOfFrames "
                                     "(0028,0008) declares 1")


def test_offset_table_against_the_frame_count(tmp_path):
    ds = pydicom.dcmread(pydicom_file("SC_rgb_rle_2frame.dcm"))
    frames = list(generate_frames(ds.PixelData, number_of_frames=2))
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds.NumberOfFrames = 3
    ds.save_as(tmp_path / "x")
    assert refused(tmp_path / "x").reason == ("the Basic Offset Table of PixelData (7FE0,0010) lists 2 frames but "
                                              "NumberOfFrames (0028,0008) declares 3")


@pytest.mark.parametrize("changes, reason", [
    ({"Rows": 0}, "Rows (0028,0010) = 0 is out of range (1 to 65535)"),
    ({"Columns": ("SL", -5)}, "Columns (0028,0011) = -5 is out of range (1 to 65535)"),
    ({"Rows": ("UL", 70000)}, "Rows (0028,0010) = 70000 is out of range (1 to 65535)"),
    ({"BitsAllocated": 0}, "BitsAllocated (0028,0100) = 0 is out of range (1 to 64)"),
    ({"BitsAllocated": 4096}, "BitsAllocated (0028,0100) = 4096 is out of range (1 to 64)"),
    ({"BitsAllocated": 12}, "BitsAllocated (0028,0100) = 12 is not 1 or a multiple of 8"),
    ({"NumberOfFrames": -3}, "NumberOfFrames (0028,0008) = -3 is negative"),
    ({"SamplesPerPixel": 300}, "SamplesPerPixel (0028,0002) = 300 is out of range (1 to 4)"),
    ({"Rows": None}, "Rows (0028,0010) is missing"),
])
def test_image_pixel_module_values_out_of_range(tmp_path, changes, reason):
    path = edit(make_dicom(tmp_path / "ok", RAMP), tmp_path / "bad", **changes)
    assert refused(path).reason == reason


# ---------------------------------------------------------------- 4. no MemoryError (nor any other exception) escapes

def test_corrupt_element_length_reserves_no_memory(tmp_path):
    data = bytearray(make_dicom(tmp_path / "ok", RAMP).read_bytes())
    name = data.index(b"\x10\x00\x10\x00PN")  # PatientName (0010,0010), explicit VR, 2-byte length
    data[name + 4:name + 8] = b"OB\x00\x00"  # now a 4-byte length follows
    data[name + 8:name + 12] = b"\xf0\xff\xff\xff"
    (tmp_path / "flipped").write_bytes(bytes(data))
    tracemalloc.start()
    try:
        refused(tmp_path / "flipped")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20  # CPython's read(n) would have reserved 4 GB


class FakePanic(BaseException):
    """What pyo3 raises for a Rust decoder's panic (pylibjpeg-rle): not an Exception."""


@pytest.mark.parametrize("raised, reason", [
    (MemoryError(), "cannot decode pixel data (Explicit VR Little Endian): out of memory"),
    (OverflowError("int too large"), "cannot decode pixel data (Explicit VR Little Endian): OverflowError: int too large"),
    (FakePanic("index out of bounds"), "cannot decode pixel data (Explicit VR Little Endian): FakePanic: index out of bounds"),
])
def test_decoder_failures_become_read_errors(tmp_path, monkeypatch, raised, reason):
    from pydicom.pixels.decoders.base import Decoder

    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(Decoder, "as_array", fail)
    assert refused(make_dicom(tmp_path / "x", RAMP)).reason == reason


def test_keyboard_interrupt_is_not_swallowed(tmp_path, monkeypatch):
    from pydicom.pixels.decoders.base import Decoder

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Decoder, "as_array", interrupt)
    with pytest.raises(KeyboardInterrupt):
        read_image(make_dicom(tmp_path / "x", RAMP))


def test_raster_memory_error(tmp_path, monkeypatch):
    (tmp_path / "x.png").write_bytes(png_bytes(np.zeros((8, 8), np.uint8)))

    def fail(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(raster, "_pillow_pixels", fail)
    assert refused(tmp_path / "x.png").reason == "cannot decode PNG: out of memory"


def test_last_resort_names_the_line_not_the_message(tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        raise TypeError("DOE^JOHN")

    (tmp_path / "x.png").write_bytes(png_bytes(np.zeros((8, 8), np.uint8)))
    monkeypatch.setattr(raster, "read_raster", bug)
    reason = refused(tmp_path / "x.png").reason
    assert reason.startswith("unexpected TypeError at test_hostile_files.py:") and "DOE" not in reason


# ---------------------------------------------------------------- 5. pipes, sockets, devices: never opened

@contextmanager
def deadline(seconds: int):
    def hang(*_):
        raise TimeoutError("read_image blocked")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    with deadline(5):
        assert refused(fifo, NotAnImageError).reason == "not a regular file (a named pipe)"
        assert sniff(fifo) is None
        with pytest.raises(NotARegularFileError):
            signature(fifo)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets here")
def test_socket_and_device_are_refused():
    folder = tempfile.mkdtemp(prefix="s", dir="/tmp")  # a socket path must be short
    path = Path(folder) / "s"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        with deadline(5):
            assert refused(path, NotAnImageError).reason == "not a regular file (a socket)"
    finally:
        server.close()
        path.unlink(missing_ok=True)
        os.rmdir(folder)
    if os.path.exists("/dev/null"):
        assert refused("/dev/null", NotAnImageError).reason == "not a regular file (a character device)"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_audit_of_a_folder_with_a_pipe_finishes(tmp_path):
    from tfxray.images.audit import audit_folder

    make_dicom(tmp_path / "IM1", RAMP)
    os.mkfifo(tmp_path / "pipe")
    with deadline(20):
        table = audit_folder(tmp_path).set_index("path")
    assert table.loc["IM1", "status"] == "ok"
    assert table.loc["pipe", "status"] == "skipped" and table.loc["pipe", "reason"] == "not a regular file (a named pipe)"


# ---------------------------------------------------------------- 6. corrupt rescale or window, all padding: no black image

@pytest.mark.parametrize("elements, reason", [
    ({"RescaleSlope": "NaN", "RescaleIntercept": "0"}, "RescaleSlope (0028,1053) is not a finite number"),
    ({"RescaleSlope": "1", "RescaleIntercept": "inf"}, "RescaleIntercept (0028,1052) is not a finite number"),
    ({"RescaleSlope": "1e308", "RescaleIntercept": "1e308"},
     "RescaleSlope (0028,1053) and RescaleIntercept (0028,1052) give non-finite values"),
    ({"RescaleSlope": "0", "RescaleIntercept": "5"}, "RescaleSlope (0028,1053) maps every pixel to one value"),
    ({"WindowCenter": "NaN", "WindowWidth": "100"}, "WindowCenter (0028,1050) is not a finite number"),
    ({"WindowCenter": "100", "WindowWidth": "inf"}, "WindowWidth (0028,1051) is not a finite number"),
])
def test_non_finite_or_collapsing_display_values(tmp_path, elements, reason):
    with config.disable_value_validation():
        path = make_dicom(tmp_path / "x", RAMP, **elements)
    assert refused(path).reason == reason


def test_per_frame_rescale_is_checked_too(tmp_path):
    from pydicom.dataset import Dataset

    def group(slope):
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = slope, "0", "US"
        item = Dataset()
        item.PixelValueTransformationSequence = [transform]
        return item

    with config.disable_value_validation():
        path = make_dicom(tmp_path / "x", np.stack([RAMP, RAMP]), PerFrameFunctionalGroupsSequence=[group("1"), group("NaN")])
    assert read_image(path, frame=0).shape == (64, 64)
    assert refused(path, frame=1).reason == "RescaleSlope (0028,1053) is not a finite number"


def test_every_pixel_padding(tmp_path):
    path = make_dicom(tmp_path / "x", np.full((8, 8), 7, np.uint16), PixelPaddingValue=7)
    assert refused(path).reason == "every pixel is padding (PixelPaddingValue (0028,0120))"


def test_float_pixel_data_with_nan(tmp_path):
    path = make_dicom(tmp_path / "x", RAMP)
    ds = pydicom.dcmread(path)
    values = RAMP.astype(np.float32)
    values[3, 3] = np.nan
    del ds.PixelData
    ds.FloatPixelData = values.tobytes()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
    for keyword in ("PixelRepresentation",):
        delattr(ds, keyword)
    ds.save_as(path)
    assert refused(path).reason == "FloatPixelData (7FE0,0008) holds non-finite values"


def test_window_that_maps_everything_to_one_value_falls_back_to_the_range(tmp_path):
    path = make_dicom(tmp_path / "x", RAMP, WindowCenter=100000, WindowWidth=10)
    image = read_image(path)
    assert image.meta["voi"] == "minmax" and "the window maps every pixel to one value" in image.meta["recovered"]
    assert image.pixels.min() == 0 and image.pixels.max() == 1


def test_blank_image_is_still_read(tmp_path):
    assert read_image(make_dicom(tmp_path / "x", np.zeros((8, 8), np.uint16))).pixels.max() == 0


# ---------------------------------------------------------------- 7. reasons never quote text from the file

NAME = b"DOE^JOHN"


def no_name(text) -> None:
    assert "DOE" not in str(text).upper() and "JOHN" not in str(text).upper(), text


def planted(tmp_path, name: str, placeholder: bytes, **make) -> Path:
    return replace_bytes(make_dicom(tmp_path / name, RAMP, **make), placeholder, NAME)


def test_planted_name_never_reaches_a_reason(tmp_path):
    with config.disable_value_validation():
        files = [
            planted(tmp_path, "photometric", b"PLACEHLD", photometric="PLACEHLD"),
            planted(tmp_path, "frames", b"12345678", NumberOfFrames="12345678"),
            planted(tmp_path, "slope", b"12345678", RescaleSlope="12345678", RescaleIntercept="0"),
            planted(tmp_path, "window", b"12345678", WindowCenter="12345678", WindowWidth="100"),
            planted(tmp_path, "image-type", b"PLACEHLD", ImageType=["ORIGINAL", "PLACEHLD"], Rows=0),
        ]
    # a Transfer Syntax UID that is no UID (same length as Explicit VR Little Endian's, padded)
    syntax = make_dicom(tmp_path / "syntax", RAMP)
    files.append(replace_bytes(syntax, b"1.2.840.10008.1.2.1\x00", b"DOE^JOHN            "))
    # a SOP class that is no UID, on an object without pixel data
    plan = tmp_path / "plan"
    plan.write_bytes(pydicom_file("rtplan.dcm").read_bytes())
    uid = b"1.2.840.10008.5.1.4.1.1.481.5"
    replace_bytes(plan, uid, NAME + b"." * (len(uid) - len(NAME)))
    files.append(plan)

    reasons = {}
    for path in files:
        with pytest.raises(ImageReadError) as caught:
            read_image(path)
        reasons[path.name] = caught.value.reason
    for reason in reasons.values():
        no_name(reason)
    assert reasons["photometric"] == "PhotometricInterpretation (0028,0004) is not a defined term"
    assert reasons["frames"] == "NumberOfFrames (0028,0008) is not a whole number"
    assert reasons["slope"] == "RescaleSlope (0028,1053) is not a number"
    assert reasons["window"] == "WindowCenter (0028,1050) is not a number"
    assert reasons["syntax"] == "transfer syntax not supported: an unregistered transfer syntax (TransferSyntaxUID (0002,0010))"
    assert reasons["plan"] == "DICOM without pixel data (an unregistered SOP class)"


def test_library_messages_are_scrubbed_of_header_text(tmp_path):
    from pydicom.dataset import Dataset

    ds = pydicom.dcmread(make_dicom(tmp_path / "x", RAMP, ImageType=["ORIGINAL", "PRIMARY"]))
    item = Dataset()
    item.CodeMeaning = "DOE^JOHN"
    ds.ProcedureCodeSequence = [item]
    ds.ImageType = ["ORIGINAL", "SMITH^JANE"]
    message = dicom_reader._scrubbed(ValueError("value 'DOE^JOHN' and SMITH^JANE in (0028,0010) of 64 rows"), ds)
    no_name(message)
    assert "SMITH" not in message and message == ("ValueError: value '(a header value)' and (a header value) in "
                                                  "(0028,0010) of 64 rows")


def test_readable_file_metadata_keeps_no_free_text(tmp_path):
    with config.disable_value_validation():
        path = make_dicom(tmp_path / "x", RAMP, Modality="PLACEHLD", ViewPosition="PLACEHLE")
    replace_bytes(replace_bytes(path, b"PLACEHLD", NAME), b"PLACEHLE", NAME)
    image = read_image(path)
    no_name(image.meta)
    assert image.meta["modality"] is None and image.meta["view_position"] is None


# ---------------------------------------------------------------- found by benchmarks/fuzz_reader.py

def test_values_that_do_not_fit_their_vr(tmp_path):
    """pydicom converts lazily: a value that does not fit its VR raised from any later access."""
    path = make_dicom(tmp_path / "x", RAMP)
    data = path.read_bytes()
    sop_class = data.index(b"\x02\x00\x02\x00UI")  # MediaStorageSOPClassUID as UL: 26 bytes, not a multiple of 4
    syntax = data.index(b"\x02\x00\x10\x00UI")  # TransferSyntaxUID as LO: a str, not a UID
    data = data[:sop_class + 4] + b"UL" + data[sop_class + 6:syntax + 4] + b"LO" + data[syntax + 6:]
    path.write_bytes(data)
    assert read_image(path).shape == (64, 64)
    representation = data.index(b"\x28\x00\x03\x01US")  # PixelRepresentation as UL: 2 bytes
    path.write_bytes(data[:representation + 4] + b"UL" + data[representation + 6:])
    assert refused(path).reason.startswith("cannot decode pixel data (Explicit VR Little Endian)")


@pytest.mark.parametrize("kind, seed, index, reason", [
    ("dicom", 1, 107, None),  # (0002,0002) with VR UL: BytesLengthException at the first look at the file meta
    ("dicom", 1, 361, "pixel data truncated"),  # an unknown VR: NotImplementedError from pydicom's conversion
    ("dicom", 1, 341, "NumberOfFrames (0028,0008) declares 15 frames"),  # TransferSyntaxUID with VR DS
    ("dicom", 1, 1259, "pixel data truncated: 14 bytes of 54"),  # setting an element re-read a broken one
    ("tiff", 1, 1100, "the pages differ in size or samples"),  # np.stack of pages of two sizes
])
def test_files_the_fuzzer_found(tmp_path, kind, seed, index, reason):
    """Rebuilt from (format, seed, index): the mutations are deterministic."""
    data, _ = fuzz_mutations.hostile_file(kind, seed, index)
    (tmp_path / "x").write_bytes(data)
    outcome, detail = fuzz_mutations.read_outcome(tmp_path / "x", None if index % 5 == 0 else 0)
    assert outcome == ("ok" if reason is None else "error"), detail
    assert reason is None or detail.startswith(reason), detail


def test_a_wrong_vr_in_the_file_meta_is_a_row_not_a_crash_of_inspect(tmp_path):
    """Found by benchmarks/fuzz_folder.py: MediaStorageSOPClassUID with VR 'Ui' made ``sniff`` (and so
    ``tfxray inspect``) raise from pydicom's lazy value conversion."""
    from pydicom.data import get_testdata_file

    from tfxray.images import sniff
    from tfxray.images.audit import audit_folder

    data = bytearray(open(get_testdata_file("CT_small.dcm"), "rb").read())
    at = data.index(b"\x02\x00\x02\x00UI")
    data[at + 5:at + 6] = b"i"
    path = tmp_path / "IM0001"
    path.write_bytes(bytes(data))
    assert sniff(path) == "dicom"
    audit = audit_folder(tmp_path)
    assert list(audit.path) == ["IM0001"] and audit.status.iloc[0] in ("ok", "error")


def test_corrupt_identifiers_never_reach_a_table_cell():
    """Found by benchmarks/fuzz_folder.py: a bit-flipped SOPInstanceUID holding a carriage return and a
    NUL went verbatim into inspect's CSV and split its row. UIDs are digits and dots or nothing;
    PatientID keeps no control characters."""
    from pydicom.dataset import Dataset

    from tfxray.images.dicom import dicom_meta

    ds = Dataset()
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498\r5\x011"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2." + "3" * 70
    ds.PatientID = "P0001\r\nDOE^JOHN"
    meta = dicom_meta(ds)
    assert meta["sop_uid"] is None and meta["series_uid"] is None and meta["patient_id"] is None
    assert meta["study_uid"] == "1.2.3.4"
    ds.PatientID = "P-0001 A"
    assert dicom_meta(ds)["patient_id"] == "P-0001 A"
