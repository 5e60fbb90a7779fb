"""PNG, JPEG and TIFF at their full bit depth."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tfxray.images import ImageReadError, read_image


def ramp16(height=48, width=64) -> np.ndarray:
    return (np.arange(height * width).reshape(height, width) * 20 + 7).astype(np.uint16)


def write_png16(path, samples: np.ndarray, paeth: bool = True):
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour), with Paeth-filtered rows."""
    height, width = samples.shape[:2]
    channels = 1 if samples.ndim == 2 else samples.shape[2]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    bpp = 2 * channels
    raw = samples.astype(">u2").reshape(height, width * bpp // 2).view(np.uint8).reshape(height, width * bpp)
    raw = raw.astype(int)
    rows = []
    for y in range(height):
        if not paeth:
            rows.append(b"\x00" + bytes(raw[y].astype(np.uint8)))
            continue
        out = bytearray()
        for i in range(width * bpp):
            a = raw[y, i - bpp] if i >= bpp else 0
            b = raw[y - 1, i] if y else 0
            c = raw[y - 1, i - bpp] if (y and i >= bpp) else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out.append((raw[y, i] - predictor) % 256)
        rows.append(b"\x04" + bytes(out))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
                     + chunk(b"IEND", b""))


def test_png_16bit_gray_round_trip(tmp_path):
    values = ramp16()
    Image.fromarray(values).save(tmp_path / "x.png")
    image = read_image(tmp_path / "x.png")
    assert image.pixels.dtype == np.float32
    restored = np.rint(image.pixels * 65535).astype(np.uint16)
    np.testing.assert_array_equal(restored, values)  # every one of the 16 bits kept
    assert values.max() > 255 and len(np.unique(restored)) == values.size
    assert image.meta["bits_stored"] == 16 and image.meta["kind"] == "png"


def test_png_8bit(tmp_path):
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(values).save(tmp_path / "x.png")
    image = read_image(tmp_path / "x.png")
    np.testing.assert_allclose(image.pixels, values / 255, atol=1e-7)
    assert image.meta["bits_stored"] == 8


@pytest.mark.parametrize("channels", [3, 4, 2])
def test_png_16bit_colour_keeps_depth(tmp_path, channels):
    gray = ramp16(12, 10)
    planes = [gray, gray // 2 + 300, gray // 3 + 1, np.full_like(gray, 65535)][:channels]
    if channels == 2:
        planes = [gray, np.full_like(gray, 40000)]
    samples = np.stack(planes, -1)
    write_png16(tmp_path / "c.png", samples)
    colour = read_image(tmp_path / "c.png", gray=False).pixels
    if channels == 2:  # gray + alpha: the gray plane, alpha dropped
        np.testing.assert_array_equal(np.rint(colour * 65535).astype(np.uint16), gray)
        return
    np.testing.assert_array_equal(np.rint(colour * 65535).astype(np.uint16), samples[..., :3])
    rgb = samples[..., :3] / 65535
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(read_image(tmp_path / "c.png").pixels, expected, atol=1e-6)


def test_rgb_png_to_gray_luminance(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_allclose(read_image(tmp_path / "c.png").pixels, [[0.299, 0.587], [0.114, 1]], atol=1e-6)
    Image.fromarray(np.dstack([rgb, np.full((2, 2), 128, np.uint8)])).save(tmp_path / "a.png")  # RGBA
    np.testing.assert_allclose(read_image(tmp_path / "a.png").pixels, [[0.299, 0.587], [0.114, 1]], atol=1e-6)
    assert read_image(tmp_path / "a.png", gray=False).pixels.shape == (2, 2, 3)


def test_tiff_16bit_tifffile_and_lzw(tmp_path):
    import tifffile

    values = ramp16()
    tifffile.imwrite(tmp_path / "plain.tif", values)
    Image.fromarray(values).save(tmp_path / "lzw.tif", compression="tiff_lzw")  # tifffile needs imagecodecs
    for name in ("plain.tif", "lzw.tif"):
        image = read_image(tmp_path / name)
        np.testing.assert_array_equal(np.rint(image.pixels * 65535).astype(np.uint16), values)
        assert image.meta["kind"] == "tiff" and image.meta["bits_stored"] == 16


def test_tiff_multipage_and_min_is_white(tmp_path):
    import tifffile

    pages = np.stack([np.full((4, 5), v, np.uint8) for v in (0, 100, 255)])
    tifffile.imwrite(tmp_path / "stack.tif", pages, photometric="minisblack")  # 3 pages, not planar RGB
    stack = read_image(tmp_path / "stack.tif", frame=None)
    assert stack.pixels.shape == (3, 4, 5)
    np.testing.assert_allclose(stack.pixels[:, 0, 0], [0, 100 / 255, 1])
    assert read_image(tmp_path / "stack.tif", frame=2).pixels.shape == (4, 5)
    with pytest.raises(ImageReadError, match="frame 3 out of range"):
        read_image(tmp_path / "stack.tif", frame=3)
    tifffile.imwrite(tmp_path / "white.tif", np.array([[0, 255]], np.uint8), photometric="miniswhite")
    np.testing.assert_allclose(read_image(tmp_path / "white.tif").pixels, [[1, 0]])


def test_tiff_float(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "f.tif", np.array([[-2.0, 0.0, 2.0]], np.float32))
    np.testing.assert_allclose(read_image(tmp_path / "f.tif").pixels, [[0, 0.5, 1]])


def test_jpeg(tmp_path):
    y, x = np.mgrid[0:64, 0:64]
    values = (x * 4).astype(np.uint8)
    Image.fromarray(values).save(tmp_path / "x.jpg", quality=95)
    image = read_image(tmp_path / "x.jpg")
    assert image.pixels.shape == (64, 64) and image.meta["kind"] == "jpeg"
    assert np.abs(image.pixels - values / 255).max() < 0.03
    rgb = np.dstack([values, values, values])
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    assert read_image(tmp_path / "c.jpg").pixels.shape == (64, 64)


def test_max_size_png_and_jpeg(tmp_path):
    values = ramp16(600, 1000)
    Image.fromarray(values).save(tmp_path / "big.png")
    small = read_image(tmp_path / "big.png", max_size=224)
    assert small.pixels.shape == (120, 200)
    expected = (values.astype(float) / 65535).reshape(120, 5, 200, 5).mean(axis=(1, 3))
    np.testing.assert_allclose(small.pixels, expected, atol=1e-6)
    Image.fromarray((values // 257).astype(np.uint8)).save(tmp_path / "big.jpg")
    jpeg = read_image(tmp_path / "big.jpg", max_size=224)
    assert max(jpeg.pixels.shape) <= 224 and jpeg.meta["rows"] == 600


def test_no_suffix_needed(tmp_path):
    Image.fromarray(ramp16()).save(tmp_path / "x.png")
    (tmp_path / "x.png").rename(tmp_path / "scan")
    assert read_image(tmp_path / "scan").meta["kind"] == "png"


def test_tiff_planar_rgb_and_palette_png(tmp_path):
    import tifffile

    rgb = np.zeros((4, 5, 3), np.uint16)
    rgb[..., 0] = 65535
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_allclose(read_image(tmp_path / "planar.tif").pixels, np.full((4, 5), 0.299), atol=1e-6)
    assert read_image(tmp_path / "planar.tif", gray=False).pixels.shape == (4, 5, 3)

    palette = Image.new("P", (2, 1))
    palette.putdata([0, 1])
    palette.putpalette([0, 0, 255, 255, 255, 255] + [0] * 762)
    palette.save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    np.testing.assert_allclose(image.pixels, [[0.114, 1.0]], atol=1e-6)
    assert image.meta["photometric"] == "PALETTE COLOR"
