"""Hostile files for the reader's fuzz tests and ``benchmarks/fuzz_reader.py``: seeds and mutations.

Seeds are pydicom's own test files (uncompressed, big endian, deflated, multi-frame, JPEG, JPEG-LS,
JPEG 2000, RLE) and small PNG, JPEG and TIFF files made here. A mutation takes the seed's bytes and
a ``random.Random`` and returns new bytes; ``mutate`` picks a seed and one to three mutations.
Every choice comes from the ``Random`` it is given, so a (seed, index) pair rebuilds a file.

Self-contained (no imports from the test package) so the benchmark can import it by path.
"""

from __future__ import annotations

import io
import os
import random
import struct
import warnings
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

FORMATS = ("dicom", "png", "jpeg", "tiff")

# Values that break arithmetic: zero, one, sign and width boundaries, huge.
INTERESTING_INTS = (0, 1, 2, 3, 7, 8, 12, 15, 16, 17, 31, 32, 63, 64, 255, 256, 4095, 32767, 32768, 65535, 65536,
                    60000, 2 ** 24, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, -1, -2, -32768, -(2 ** 31))
INTERESTING_LENGTHS = (0, 1, 2, 3, 4, 7, 8, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFF0, 0xFFFFFFFE, 0xFFFFFFFF)

DICOM_SEEDS = (
    "CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "MR_small_padded.dcm", "JPEG2000.dcm",
    "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_small_odd.dcm", "rtdose.dcm", "image_dfl.dcm",
    "JPGExtended.dcm", "JPEGLSNearLossless_08.dcm", "examples_palette.dcm", "SC_ybr_full_422_uncompressed.dcm",
    "liver_1frame.dcm", "examples_ybr_color.dcm",
)


# ---------------------------------------------------------------- seeds

def pydicom_test_files() -> Path:
    import pydicom

    return Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"


@lru_cache(maxsize=None)
def seeds(kind: str) -> tuple[tuple[str, bytes], ...]:
    """(name, bytes) of the valid files mutations start from."""
    if kind == "dicom":
        folder = pydicom_test_files()
        return tuple((name, (folder / name).read_bytes()) for name in DICOM_SEEDS if (folder / name).is_file())
    return tuple(_raster_seeds(kind))


def _raster_seeds(kind: str):
    from PIL import Image

    rng = np.random.default_rng(0)
    gray8 = (np.add.outer(np.arange(24), np.arange(32)) * 5 % 256).astype(np.uint8)
    gray16 = (gray8.astype(np.uint16) * 257)
    rgb = np.stack([gray8, gray8[::-1], 255 - gray8], axis=-1)

    def pillow(image, **kwargs) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, **kwargs)
        return buffer.getvalue()

    if kind == "png":
        yield "gray8", pillow(Image.fromarray(gray8), format="PNG")
        yield "gray16", pillow(Image.fromarray(gray16), format="PNG")
        yield "rgb", pillow(Image.fromarray(rgb), format="PNG")
        yield "palette", pillow(Image.fromarray(rgb).convert("P"), format="PNG")
        yield "rgba", pillow(Image.fromarray(np.dstack([rgb, gray8])), format="PNG")
        yield "apng", pillow(Image.fromarray(gray8), format="PNG", save_all=True,
                             append_images=[Image.fromarray(255 - gray8)])
    elif kind == "jpeg":
        yield "gray", pillow(Image.fromarray(gray8), format="JPEG", quality=90)
        yield "rgb", pillow(Image.fromarray(rgb), format="JPEG", quality=90)
        yield "progressive", pillow(Image.fromarray(rgb), format="JPEG", progressive=True)
        yield "subsampled", pillow(Image.fromarray(rgb), format="JPEG", subsampling=2)
    elif kind == "tiff":
        import tifffile

        def tiff(array, **kwargs) -> bytes:
            buffer = io.BytesIO()
            tifffile.imwrite(buffer, array, **kwargs)
            return buffer.getvalue()

        yield "gray16", tiff(gray16)
        yield "rgb", tiff(rgb, photometric="rgb")
        yield "float", tiff(rng.random((24, 32), dtype=np.float32))
        yield "pages", tiff(np.stack([gray16, gray16[::-1]]))
        yield "deflate", tiff(gray16, compression="zlib")
        yield "miniswhite", tiff(gray8, photometric="miniswhite")
        yield "bigtiff", tiff(gray16, bigtiff=True)
        yield "lzw-pillow", pillow(Image.fromarray(gray8), format="TIFF", compression="tiff_lzw")
    else:
        raise ValueError(f"unknown format {kind!r}")


# ---------------------------------------------------------------- generic byte mutations

def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(0, max(1, len(data)))]


def truncate_tail(data: bytes, rng: random.Random) -> bytes:
    """Cut near the end: inside the pixel data of most files."""
    return data[:max(0, len(data) - rng.randint(1, max(1, min(len(data), 4096))))]


def bit_flips(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(len(out)) if out else 0
        if out:
            out[position] ^= 1 << rng.randrange(8)
    return bytes(out)


def byte_overwrites(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            break
        position = rng.randrange(len(out))
        width = rng.choice((1, 2, 4))
        value = rng.choice(INTERESTING_LENGTHS)
        out[position:position + width] = value.to_bytes(8, "little")[:width]
    return bytes(out)


def chunk_shuffle(data: bytes, rng: random.Random) -> bytes:
    """Delete, duplicate or insert a run of bytes."""
    if len(data) < 4:
        return data + bytes(rng.randrange(256) for _ in range(4))
    start = rng.randrange(len(data))
    length = rng.randint(1, min(512, len(data) - start))
    action = rng.randrange(3)
    if action == 0:
        return data[:start] + data[start + length:]
    if action == 1:
        return data[:start] + data[start:start + length] * rng.randint(2, 4) + data[start + length:]
    return data[:start] + bytes(rng.randrange(256) for _ in range(length)) + data[start:]


GENERIC = (truncate, truncate_tail, bit_flips, byte_overwrites, chunk_shuffle)


# ---------------------------------------------------------------- DICOM

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_ALL_VRS = (b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
            b"OL", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US",
            b"UT", b"XX", b"\x00\x00")


def dicom_elements(data: bytes) -> list[tuple[int, int, int, int, bool]]:
    """Top-level elements of a little-endian file: (tag offset, length offset, length size, length, explicit).

    Walked here, not with pydicom, because mutations need the byte positions of lengths and VRs.
    Stops at an undefined length (sequences and encapsulated pixel data are not skipped).
    """
    position = 132 if data[128:132] == b"DICM" else 0
    found = []
    while position + 8 <= len(data):
        vr = data[position + 4:position + 6]
        explicit = vr.isalpha() and vr.isupper() and (data[position:position + 2] == b"\x02\x00" or _explicit_body(data))
        if explicit and vr in _LONG_VRS:
            length_at, size = position + 8, 4
        elif explicit:
            length_at, size = position + 6, 2
        else:
            length_at, size = position + 4, 4
        if length_at + size > len(data):
            break
        length = int.from_bytes(data[length_at:length_at + size], "little")
        found.append((position, length_at, size, length, explicit))
        if length == 0xFFFFFFFF:
            break
        position = length_at + size + length
    return found


def _explicit_body(data: bytes) -> bool:
    return b"1.2.840.10008.1.2\x00" not in data[:1024]  # implicit VR little endian names itself in the file meta


def element_length(data: bytes, rng: random.Random) -> bytes:
    """Overwrite one element's length: zero, odd, off by a few, undefined, 4 GB."""
    elements = dicom_elements(data)
    if not elements:
        return bit_flips(data, rng)
    _, length_at, size, length, _ = rng.choice(elements)
    value = rng.choice(INTERESTING_LENGTHS + (length + 1, length - 1, length * 2, length + rng.randint(2, 4096)))
    value &= (1 << (8 * size)) - 1
    return data[:length_at] + value.to_bytes(size, "little") + data[length_at + size:]


def undefined_length(data: bytes, rng: random.Random) -> bytes:
    elements = [e for e in dicom_elements(data) if e[2] == 4]
    if not elements:
        return element_length(data, rng)
    _, length_at, _, _, _ = rng.choice(elements)
    return data[:length_at] + b"\xff\xff\xff\xff" + data[length_at + 4:]


def wrong_vr(data: bytes, rng: random.Random) -> bytes:
    elements = [e for e in dicom_elements(data) if e[4]]
    if not elements:
        return bit_flips(data, rng)
    position = rng.choice(elements)[0]
    return data[:position + 4] + rng.choice(_ALL_VRS) + data[position + 6:]


# Header values a hostile or broken writer puts in the Image Pixel module.
_HOSTILE_VALUES = {
    "Rows": (0, 1, 2, 65535, 60000, -1, 2 ** 31 - 1),
    "Columns": (0, 1, 3, 65535, 60000, -1, 2 ** 31 - 1),
    "NumberOfFrames": (0, -1, 2, 3, 1000, 2 ** 31 - 1, "1A", "", "2.5", "NaN"),
    "BitsAllocated": (0, 1, 4, 12, 24, 32, 64, 65, 4096, 65535, -8),
    "BitsStored": (0, 1, 7, 17, 33, 65535),
    "HighBit": (0, 31, 65535),
    "SamplesPerPixel": (0, 2, 3, 4, 255, 65535),
    "PixelRepresentation": (1, 2, 65535),
    "PlanarConfiguration": (1, 2),
    "PhotometricInterpretation": ("MONOCHROME1", "RGB", "YBR_FULL_422", "PALETTE COLOR", "CMYK", "", "DOE^JOHN"),
    "RescaleSlope": ("NaN", "inf", "-inf", "0", "1e308", "-1e308", "abc"),
    "RescaleIntercept": ("NaN", "inf", "1e308"),
    "WindowCenter": ("NaN", "inf", "1e308", "-1e308"),
    "WindowWidth": ("NaN", "0", "-5", "inf", "1e-300"),
    "PixelPaddingValue": (0, 1, 65535),
    "VOILUTFunction": ("SIGMOID", "LINEAR_EXACT", "WEIRD"),
}
_INTEGER_KEYWORDS = {"Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "SamplesPerPixel",
                     "PixelRepresentation", "PlanarConfiguration", "PixelPaddingValue"}


def _with_dataset(data: bytes, rng: random.Random, change) -> bytes:
    """Parse ``data`` with pydicom, apply ``change(ds)``, write it back with value validation off."""
    import pydicom
    from pydicom import config

    try:
        with warnings.catch_warnings(), config.disable_value_validation():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            change(ds)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=False)
            return buffer.getvalue()
    except Exception:  # noqa: BLE001  a value this writer refuses: fall back to a byte mutation
        return bit_flips(data, rng)


def hostile_header_value(data: bytes, rng: random.Random) -> bytes:
    """Rows, Columns, NumberOfFrames, BitsAllocated… set to zero, negative, huge or text, written by pydicom."""
    keyword = rng.choice(sorted(_HOSTILE_VALUES))
    value = rng.choice(_HOSTILE_VALUES[keyword])

    def change(ds):
        if keyword in _INTEGER_KEYWORDS and isinstance(value, int) and not 0 <= value <= 65535:
            ds.add_new(keyword, "SL", value)  # does not fit US: a wrong VR carries it
        elif keyword in _INTEGER_KEYWORDS:
            ds.add_new(keyword, "US", value)
        elif keyword == "NumberOfFrames":
            ds.add_new(keyword, "IS", str(value))
        elif keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
            ds.add_new(keyword, "DS", value)
        else:
            ds.add_new(keyword, "CS", value)

    return _with_dataset(data, rng, change)


def pixel_data_length(data: bytes, rng: random.Random) -> bytes:
    """Pixel data shorter or longer than the header declares (bytes cut or added, frames claimed)."""
    def change(ds):
        if "PixelData" not in ds:
            return
        pixels = ds.PixelData
        choice = rng.randrange(4)
        if choice == 0:
            ds.PixelData = pixels[:rng.randrange(max(1, len(pixels)))]
        elif choice == 1:
            ds.PixelData = pixels + bytes(rng.choice((1, 2, len(pixels), 3 * len(pixels))))
        elif choice == 2:
            ds.add_new("NumberOfFrames", "IS", str(rng.choice((2, 3, 100, 2 ** 31 - 1))))
        else:
            ds.PixelData = pixels[:len(pixels) // 2]
            ds.add_new("NumberOfFrames", "IS", "2")

    return _with_dataset(data, rng, change)


def fragments_cut(data: bytes, rng: random.Random) -> bytes:
    """Encapsulated pixel data: a fragment cut short (lengths left as they were, or fixed), items dropped,
    an offset table that lies."""
    from pydicom.encaps import encapsulate, generate_frames
    from pydicom.pixels.utils import get_nr_frames

    def change(ds):
        if "PixelData" not in ds or not ds.file_meta.TransferSyntaxUID.is_encapsulated:
            return
        value = ds.PixelData
        choice = rng.randrange(4)
        if choice == 0:  # cut inside the data, item lengths unchanged
            ds.PixelData = value[:rng.randrange(8, max(9, len(value)))]
        else:
            frames = list(generate_frames(value, number_of_frames=get_nr_frames(ds)))
            if choice == 1:  # every frame's stream cut short, re-encapsulated properly
                frames = [frame[:rng.randrange(1, max(2, len(frame)))] for frame in frames]
                ds.PixelData = encapsulate(frames, has_bot=rng.random() < 0.5)
            elif choice == 2:  # offset table for more or fewer frames than NumberOfFrames
                ds.PixelData = encapsulate(frames + frames[:1] * rng.randint(1, 3), has_bot=True)
            else:  # one frame split into many tiny fragments
                ds.PixelData = encapsulate(frames, nr_fragments=rng.randint(2, 16), has_bot=False)

    return _with_dataset(data, rng, change)


def jpeg_in_dicom_size(data: bytes, rng: random.Random) -> bytes:
    """A compressed stream inside the DICOM declaring another size than Rows x Columns."""
    return jpeg_dimensions(data, rng) if b"\xff\xd8\xff" in data else j2k_dimensions(data, rng)


def j2k_dimensions(data: bytes, rng: random.Random) -> bytes:
    position = data.find(b"\xff\x4f\xff\x51")
    if position < 0:
        return bit_flips(data, rng)
    out = bytearray(data)
    for offset in rng.sample((8, 12, 24, 28), rng.randint(1, 2)):  # Xsiz, Ysiz, XTsiz, YTsiz
        out[position + offset:position + offset + 4] = rng.choice((0, 1, 60000, 2 ** 31 - 1, 2 ** 32 - 1)).to_bytes(4, "big")
    return bytes(out)


DICOM = GENERIC + (element_length, undefined_length, wrong_vr, hostile_header_value, hostile_header_value,
                   pixel_data_length, fragments_cut, jpeg_in_dicom_size)


# ---------------------------------------------------------------- PNG

def png_chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, length) of each chunk."""
    position, chunks = 8, []
    while position + 8 <= len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        chunks.append((position, data[position + 4:position + 8], length))
        position += 12 + length
    return chunks


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bad_crc(data: bytes, rng: random.Random) -> bytes:
    chunks = png_chunks(data)
    if not chunks:
        return bit_flips(data, rng)
    position, _, length = rng.choice(chunks)
    crc_at = position + 8 + length
    out = bytearray(data)
    if crc_at + 4 <= len(out):
        out[crc_at + rng.randrange(4)] ^= 0xFF
    return bytes(out)


def png_ihdr(data: bytes, rng: random.Random) -> bytes:
    """Absurd IHDR width, height, bit depth or colour type, with a correct CRC (so Pillow believes it)."""
    if data[12:16] != b"IHDR" or len(data) < 33:
        return bit_flips(data, rng)
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    choice = rng.randrange(4)
    if choice == 0:
        width, height = rng.choice(((100000, 100000), (2 ** 31 - 1, 1), (1, 2 ** 31 - 1), (65535, 65535), (0, 10),
                                    (9000, 9000), (30000, 30000), (width * 3, height)))
    elif choice == 1:
        depth = rng.choice((0, 3, 5, 7, 9, 32, 255))
    elif choice == 2:
        colour = rng.choice((1, 5, 7, 255))
    else:
        interlace = rng.choice((1, 2, 255))
    body = struct.pack(">IIBBBBB", width, height, depth, colour, compression, filtering, interlace)
    return data[:8] + _png_chunk(b"IHDR", body) + data[33:]


def png_idat(data: bytes, rng: random.Random) -> bytes:
    """Corrupt the compressed image data but keep the CRC right, so the decoder sees it."""
    chunks = [c for c in png_chunks(data) if c[1] == b"IDAT"]
    if not chunks:
        return bit_flips(data, rng)
    position, _, length = rng.choice(chunks)
    body = bytearray(data[position + 8:position + 8 + length])
    if rng.random() < 0.5 and body:
        for _ in range(rng.randint(1, 8)):
            body[rng.randrange(len(body))] = rng.randrange(256)
    else:
        body = body[:rng.randrange(max(1, len(body)))]
    return data[:position] + _png_chunk(b"IDAT", bytes(body)) + data[position + 12 + length:]


def png_bomb(data: bytes, rng: random.Random) -> bytes:
    """A small file of compressed zeros declaring a big image (a decompression bomb)."""
    width, height = rng.choice(((9000, 9000), (20000, 20000), (60000, 2000), (8000, 8000)))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return data[:8] + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", _zero_rows(width, height)) \
        + _png_chunk(b"IEND", b"")


@lru_cache(maxsize=None)
def _zero_rows(width: int, height: int) -> bytes:
    """zlib of ``height`` (at most 2000) filter-0 rows of zeros: a few kilobytes."""
    rows = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    return b"".join(rows.compress(row) for _ in range(min(height, 2000))) + rows.flush()


def png_chunk_length(data: bytes, rng: random.Random) -> bytes:
    chunks = png_chunks(data)
    if not chunks:
        return bit_flips(data, rng)
    position = rng.choice(chunks)[0]
    value = rng.choice(INTERESTING_LENGTHS)
    return data[:position] + value.to_bytes(4, "big") + data[position + 4:]


PNG = GENERIC + (png_bad_crc, png_ihdr, png_ihdr, png_idat, png_idat, png_bomb, png_chunk_length)


# ---------------------------------------------------------------- JPEG

def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, marker, length) of the marker segments before the first scan."""
    position, found = 2, []
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        length = int.from_bytes(data[position + 2:position + 4], "big")
        found.append((position, marker, length))
        if marker == 0xDA:
            break
        position += 2 + length
    return found


def jpeg_dimensions(data: bytes, rng: random.Random) -> bytes:
    """SOF height / width / components set to absurd values."""
    start = data.find(b"\xff\xd8\xff")
    for position, marker, _ in jpeg_segments(data[start:]) if start >= 0 else []:
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xF7):
            at = start + position
            out = bytearray(data)
            height, width = rng.choice(((65535, 65535), (0, 16), (16, 0), (60000, 60000), (9000, 9000), (1, 65535)))
            out[at + 5:at + 9] = struct.pack(">HH", height, width)
            if rng.random() < 0.3:
                out[at + 9] = rng.choice((0, 2, 4, 255))
            return bytes(out)
    return bit_flips(data, rng)


def jpeg_segment_length(data: bytes, rng: random.Random) -> bytes:
    segments = jpeg_segments(data)
    if not segments:
        return bit_flips(data, rng)
    position = rng.choice(segments)[0]
    value = rng.choice((0, 1, 2, 3, 0xFFFF, 0x8000))
    return data[:position + 2] + value.to_bytes(2, "big") + data[position + 4:]


def jpeg_scan_noise(data: bytes, rng: random.Random) -> bytes:
    """Noise in the entropy-coded data after the scan header."""
    start = data.find(b"\xff\xda")
    if start < 0:
        return bit_flips(data, rng)
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        out[rng.randrange(start + 4, max(start + 5, len(out) - 2))] = rng.randrange(256)
    return bytes(out)


JPEG = GENERIC + (jpeg_dimensions, jpeg_dimensions, jpeg_segment_length, jpeg_scan_noise)


# ---------------------------------------------------------------- TIFF

def tiff_entries(data: bytes) -> list[tuple[int, int, int, int]]:
    """Classic TIFF: (entry offset, tag, type, count) of the first IFD's entries."""
    if data[:4] not in (b"II*\x00", b"MM\x00*") or len(data) < 8:
        return []
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        return []
    count = struct.unpack(order + "H", data[ifd:ifd + 2])[0]
    found = []
    for i in range(count):
        at = ifd + 2 + 12 * i
        if at + 12 > len(data):
            break
        tag, kind, n = struct.unpack(order + "HHI", data[at:at + 8])
        found.append((at, tag, kind, n))
    return found


# ImageWidth, ImageLength, BitsPerSample, Compression, Photometric, StripOffsets, SamplesPerPixel,
# RowsPerStrip, StripByteCounts, PlanarConfiguration, SampleFormat
_TIFF_TAGS = (256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 339)


def tiff_tag_value(data: bytes, rng: random.Random) -> bytes:
    entries = [e for e in tiff_entries(data) if e[1] in _TIFF_TAGS] or tiff_entries(data)
    if not entries:
        return bit_flips(data, rng)
    at, _, kind, _ = rng.choice(entries)
    order = "<" if data[:2] == b"II" else ">"
    value = rng.choice(INTERESTING_INTS) & 0xFFFFFFFF
    out = bytearray(data)
    if rng.random() < 0.2:  # the count or the type
        out[at + 4:at + 8] = struct.pack(order + "I", rng.choice(INTERESTING_LENGTHS))
    elif kind == 3:  # SHORT
        out[at + 8:at + 10] = struct.pack(order + "H", value & 0xFFFF)
    else:
        out[at + 8:at + 12] = struct.pack(order + "I", value)
    return bytes(out)


def tiff_ifd_loop(data: bytes, rng: random.Random) -> bytes:
    """The next-IFD offset pointing back at the first IFD, into the middle of the file, or past its end."""
    entries = tiff_entries(data)
    if not entries:
        return bit_flips(data, rng)
    order = "<" if data[:2] == b"II" else ">"
    first = struct.unpack(order + "I", data[4:8])[0]
    next_at = entries[-1][0] + 12
    target = rng.choice((first, 8, len(data) + 1000, 0xFFFFFFF0, rng.randrange(len(data))))
    return data[:next_at] + struct.pack(order + "I", target) + data[next_at + 4:]


TIFF = GENERIC + (tiff_tag_value, tiff_tag_value, tiff_tag_value, tiff_ifd_loop)

MUTATIONS = {"dicom": DICOM, "png": PNG, "jpeg": JPEG, "tiff": TIFF}


def mutate(kind: str, rng: random.Random) -> tuple[bytes, str]:
    """A hostile file of ``kind``: a seed with one to three mutations, and a label saying which."""
    name, data = rng.choice(seeds(kind))
    steps = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        mutation = rng.choice(MUTATIONS[kind])
        try:
            data = mutation(data, rng)
        except Exception:  # noqa: BLE001  a mutation that cannot apply to what earlier ones left
            mutation = bit_flips
            data = bit_flips(data, rng)
        steps.append(mutation.__name__)
    return data, f"{name}+{'+'.join(steps)}"


def hostile_file(kind: str, seed: int, index: int) -> tuple[bytes, str]:
    """File ``index`` of a run with ``seed``: the same bytes every time."""
    return mutate(kind, random.Random(f"{seed}-{kind}-{index}"))


# ---------------------------------------------------------------- reading, in a worker process

def limit_memory(gigabytes: float = 3.0) -> None:
    """For a worker process: an address-space limit (a runaway allocation fails instead of taking the
    machine), and quiet libraries (pydicom logs every decoder failure, Rust decoders print backtraces)."""
    import logging
    import resource

    limit = int(gigabytes * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.environ["RUST_BACKTRACE"] = "0"
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)


def read_outcome(path, frame=0, max_size=None) -> tuple[str, str]:
    """("ok" | "error" | "uncaught", detail) of ``read_image(path)``.

    "error": an ImageReadError with a one-line reason. "uncaught": any other exception, the
    reader's last-resort reason ("unexpected ..."), or a reason that is not one line.
    """
    import traceback

    from tfxray.images import ImageReadError, read_image

    try:
        read_image(path, frame=frame, max_size=max_size)
        return "ok", ""
    except ImageReadError as exc:
        one_line = exc.reason and "\n" not in str(exc) and str(exc) == f"{path}: {exc.reason}"
        if exc.reason.startswith("unexpected ") or not one_line:
            return "uncaught", f"ImageReadError: {exc.reason}"
        return "error", exc.reason
    except BaseException as exc:  # noqa: BLE001  what fuzzing looks for
        where = traceback.extract_tb(exc.__traceback__)[-1:]
        place = f" at {Path(where[0].filename).name}:{where[0].lineno}" if where else ""
        return "uncaught", f"{type(exc).__name__}{place}: {str(exc)[:200]}"
