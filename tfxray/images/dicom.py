"""DICOM -> display-ready float32 pixels in [0, 1], bone bright, the way a viewer shows them.

Decoding is pydicom's (pydicom.pixels with the pylibjpeg plugins: JPEG baseline/extended/
lossless, JPEG-LS, JPEG 2000, RLE; deflate is read by pydicom itself). The display pipeline uses
pydicom's own functions, in the order of DICOM PS3.4 N.2:

1. Decode the stored values of the frame asked for (only that frame is decompressed).
   YBR_FULL / YBR_FULL_422 come back as RGB (pydicom's ``raw=False``), JPEG 2000 YBR_ICT/RCT as
   RGB from the decoder.
2. Pixel padding (PixelPaddingValue, optionally to PixelPaddingRangeLimit) is found on the
   stored values and kept out of every statistic; after display scaling it is set to 0
   (the minimum, black) and reported as False in ``valid_mask``.
3. Modality LUT: ``apply_modality_lut`` (Rescale Slope/Intercept or a Modality LUT Sequence).
   Enhanced multi-frame objects keep these per frame in functional groups; they are copied to
   the top level for the frame first, so pydicom's functions see them.
4. VOI: a VOI LUT Sequence (``apply_voi``) is preferred over Window Center/Width
   (``apply_windowing``, which follows VOI LUT Function: LINEAR, LINEAR_EXACT, SIGMOID), as
   pydicom's ``apply_voi_lut`` does. When several LUTs or windows are given, ``window`` picks one
   (default 0, the first: what most viewers show first). The result is scaled to [0, 1] by the
   output range of that LUT or window. With no VOI in the file, an unusable one (e.g. width < 1)
   or ``apply_voi=False``, the Modality LUT output is min-max scaled over the image's own valid
   (non-padding) pixels - the whole stack when a stack is read, so frames stay comparable.
   We chose the image's range over the stored bit range because many files declare 16 bits
   stored and use 12, which would leave the image nearly black.
5. MONOCHROME1 is inverted (1 - x) so bone is bright. Presentation LUT Shape is deliberately
   ignored: it is a display preference (INVERSE draws bone black) and a model wants one convention.

Colour (RGB, YBR_*, PALETTE COLOR via ``apply_color_lut``) is scaled by its bit depth and, with
``gray=True``, reduced to luminance (BT.601). Colour images have no Modality or VOI LUT.

Broken files a viewer would still open are recovered and say so in ``meta['recovered']``:
a missing (0002,0010) Transfer Syntax UID is inferred from how pydicom managed to read the
data set (implicit/explicit VR, byte order), or, for encapsulated pixel data, from the
signature of the first fragment (JPEG SOF marker, JPEG 2000 codestream, RLE header).

Hostile and broken files are refused with one line, before anything is decoded, when the header
and the pixel data disagree: Rows, Columns, BitsAllocated, SamplesPerPixel out of range; more
pixels than the pixel limit (``base.pixel_limit``: the header's and each compressed stream's own
size); NumberOfFrames against the bytes or compressed fragments actually present; a deflated data
set that would inflate past the limit. Non-finite rescale or window values, an image that is all
padding, or a pipeline that maps varying stored values to one value are refused too. Reasons name
the element (keyword and tag) and never quote text from the file: a header value may be a name.
"""

from __future__ import annotations

import math
import re
import zlib

import numpy as np

from .base import (NOT_AN_IMAGE, ImageReadError, NotAnImageError, RadiographImage, area_downsample, check_pixel_budget,
                   describe, empty_meta, frame_index, luminance, pixel_limit, scale_by_range)
from .sniff import DICOMDIR_SOP_CLASS, NotARegularFileError, RegularFile, open_regular, reads_as_bare_dicom

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
# PS3.3 C.7.6.3.1.2: the values a reason or the metadata may name; anything else is file text.
_PHOTOMETRIC_TERMS = ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422",
                      "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "HSV", "ARGB", "CMYK", "XYB")
# Elements the display pipeline reads; copied into a small per-frame data set.
_DISPLAY_KEYWORDS = (
    "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "SamplesPerPixel", "RescaleSlope", "RescaleIntercept", "ModalityLUTSequence", "VOILUTSequence",
    "WindowCenter", "WindowWidth", "VOILUTFunction", "PixelPaddingValue", "PixelPaddingRangeLimit",
)


def read_dicom(path, *, frame: int | None = 0, apply_voi: bool = True, window: int = 0, gray: bool = True,
               max_size: int | None = None, bare: bool = False, max_pixels: int | None = None) -> RadiographImage:
    """Read one DICOM file through the display pipeline (see the module docstring).

    ``bare``: the file has no preamble (``sniff.BARE_DICOM``); whether it is DICOM at all is
    decided here, from the one parse of its header. ``max_pixels``: see ``base.pixel_limit``.
    """
    limit = pixel_limit(max_pixels)
    ds = _load(path, bare, limit)
    _require_image(path, ds)
    recovered = _ensure_transfer_syntax(path, ds)
    meta = dicom_meta(ds)
    meta["recovered"] = recovered

    decoder = _decoder(path, ds)
    n_frames = _number_of_frames(path, ds)
    index = frame_index(path, frame, n_frames)
    meta["frames"], meta["frame"] = n_frames, index
    meta["slice_position"] = _slice_position(ds, index or 0)
    _check_pixel_data(path, ds, n_frames, index, limit)

    arr, photometric = _decode(path, ds, decoder, index)
    stack = arr[None] if (index is not None or n_frames == 1) else arr  # always (F, H, W[, S]) here
    frame_numbers = [index] if index is not None else list(range(len(stack)))

    try:
        if photometric in _MONOCHROME and stack.ndim == 3:
            pixels, valid, voi, notes = _display_monochrome(path, ds, stack, frame_numbers, photometric,
                                                            apply_voi=apply_voi, window=window, max_size=max_size)
            meta["voi"] = voi
            meta["recovered"] = "; ".join(filter(None, [recovered, *notes])) or None
        else:
            pixels, valid = _display_colour(path, ds, stack, photometric, gray=gray, max_size=max_size), None
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001  a value the display pipeline cannot use; MemoryError too
        raise ImageReadError(path, f"cannot apply the display pipeline: {_scrubbed(exc, ds)}") from None

    if index is not None or n_frames == 1:
        pixels = pixels[0]
        valid = None if valid is None else valid[0]
    meta["pixel_padding_masked"] = valid is not None and not bool(valid.all())
    if valid is not None and valid.all():
        valid = None
    if not np.isfinite(pixels).all():
        raise ImageReadError(path, "the display pipeline gave non-finite pixel values")
    return RadiographImage(np.ascontiguousarray(pixels, dtype=np.float32), meta, valid)


# ---------------------------------------------------------------- reading and checks

_DEFLATED_UID = b"1.2.840.10008.1.2.1.99"
_INFLATE_HEADER_ALLOWANCE = 64 << 20  # bytes of a deflated data set that are not pixels


class _InflatesTooFar(Exception):
    pass


class _DicomFile(RegularFile):
    """A DICOM file for pydicom, guarded against deflate bombs.

    pydicom inflates a deflated data set with one unbounded ``zlib.decompress`` of a single
    ``read()``; when ``inflate_limit`` is set, that read first inflates the data in 16 MB steps,
    keeping nothing, and refuses it past the limit.
    """

    inflate_limit: int | None = None

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if self.inflate_limit is not None and (size is None or size < 0):
            inflater, pending, total = zlib.decompressobj(-zlib.MAX_WBITS), data, 0
            try:
                while pending:
                    total += len(inflater.decompress(pending, 1 << 24))
                    if total > self.inflate_limit:
                        raise _InflatesTooFar(f"the deflated data set inflates to more than {self.inflate_limit:,} "
                                              "bytes, over what the pixel limit allows (TFXRAY_MAX_PIXELS)")
                    pending = inflater.unconsumed_tail
            except zlib.error:
                pass  # not deflate data after all: pydicom reports it
        return data


def _load(path, bare: bool = False, limit: int | None = None):
    import pydicom

    limit = pixel_limit(limit)
    try:
        with open_regular(path, reader=_DicomFile) as handle:
            if _DEFLATED_UID in handle.read(1 << 16):  # the file meta names the deflated syntax
                handle.inflate_limit = 8 * limit + _INFLATE_HEADER_ALLOWANCE  # 8 bytes: the widest sample
            handle.seek(0)
            # force: also read data sets without preamble/file meta (their first bytes look DICOM-shaped)
            ds = pydicom.dcmread(handle, force=True)
    except NotARegularFileError as exc:
        raise NotAnImageError(path, exc.strerror) from None
    except _InflatesTooFar as exc:
        raise ImageReadError(path, str(exc)) from None
    except Exception as exc:  # noqa: BLE001  truncated headers, bad lengths, MemoryError…
        if bare and not reads_as_bare_dicom(path):  # not DICOM after all (a second parse, on failure only)
            raise NotAnImageError(path, NOT_AN_IMAGE) from None
        truncated = _truncated_pixel_data(path)
        if truncated:
            raise ImageReadError(path, truncated) from None
        # No data set to scrub against: drop whatever pydicom quotes (a value, raw bytes)
        reason = "out of memory (a corrupt element length?)" if isinstance(exc, MemoryError) \
            else re.sub(r"b?'[^']*'|b?\"[^\"]*\"", "(a value)", describe(exc))
        raise ImageReadError(path, f"not readable as DICOM: {reason}") from None
    if bare and not reads_as_bare_dicom(path, ds):
        raise NotAnImageError(path, NOT_AN_IMAGE)
    _convert_elements(ds)
    return ds


def _convert_elements(ds) -> None:
    """Convert every top-level element now; one whose value does not fit its VR is kept as OB (raw bytes).

    pydicom converts lazily, at first access, so such a value would raise anywhere later (any
    ``ds.get``), with a message that quotes it. OB, not UN: pydicom would convert UN again by
    the dictionary's VR."""
    from pydicom.dataelem import DataElement

    for dataset in (getattr(ds, "file_meta", None), ds):
        for tag in list((dataset or {}).keys()):
            try:
                dataset[tag]
            except Exception:  # noqa: BLE001  BytesLengthException, an unknown VR, a broken sequence…
                raw = dataset.get_item(tag, keep_deferred=True)
                value = getattr(raw, "value", None)
                dataset[tag] = DataElement(tag, "OB", value if isinstance(value, bytes) else b"")


# The PixelData tag in either byte order, and the explicit VRs it is written with.
_PIXEL_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")
_PIXEL_VRS = (b"OB", b"OW", b"UN")


def _truncated_pixel_data(path) -> str | None:
    """Why a file is cut inside its PixelData element (its header or its value), from the raw bytes.

    pydicom drops an element the file ends inside (or fails on its header), so a file cut in
    its pixel data would otherwise read as DICOM without pixel data. Looks for the last
    PixelData tag with an explicit pixel VR, or one in the last 12 bytes (cut in its header).
    """
    try:
        with open_regular(path) as handle:
            data = handle.read()
    except OSError:
        return None
    for tag in _PIXEL_TAGS:
        position = data.rfind(tag)
        if position < 0:
            continue
        little = tag == _PIXEL_TAGS[0]
        header = data[position:position + 12]
        if len(header) < 12 and len(data) - position <= 12:
            return "pixel data truncated: the file ends inside the header of PixelData (7FE0,0010)"
        if header[4:6] not in _PIXEL_VRS or header[6:8] != b"\x00\x00":
            continue
        length = int.from_bytes(header[8:12], "little" if little else "big")
        available = len(data) - position - 12
        if length == 0xFFFFFFFF:
            return "pixel data truncated: the compressed PixelData (7FE0,0010) has no end (no sequence delimiter)"
        if available < length:
            return f"pixel data truncated: {available:,} bytes of {length:,}"
    return None


def _require_image(path, ds) -> None:
    file_meta = getattr(ds, "file_meta", None) or {}
    sop_class = str(file_meta.get("MediaStorageSOPClassUID", "") or "")
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        raise NotAnImageError(path, "DICOMDIR (the index of a DICOM media set, not an image)")
    if any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        return
    truncated = _truncated_pixel_data(path)
    if truncated:
        raise ImageReadError(path, truncated)
    # The Image Pixel module requires pixel data unless a JPIP provider holds it (PS3.3 C.7.6.3)
    if all(keyword in ds for keyword in ("Rows", "Columns", "BitsAllocated")) and "PixelDataProviderURL" not in ds:
        raise ImageReadError(path, "pixel data truncated: Rows (0028,0010) and Columns (0028,0011) declare an image "
                                   "but the file ends before PixelData (7FE0,0010)")
    name = _sop_class_name(ds, sop_class)
    if "Image Storage" in name:  # an image object (CT, DX, Secondary Capture…) cut before its pixels
        raise ImageReadError(path, f"pixel data missing: no PixelData (7FE0,0010) in this {name} object "
                                   "(a truncated file?)")
    raise NotAnImageError(path, f"DICOM without pixel data ({name})")


def _sop_class_name(ds, fallback: str) -> str:
    """The standard's name of the object type ("RT Plan Storage"), never text from the file."""
    try:
        value = ds.get("SOPClassUID", "") or fallback
    except Exception:  # noqa: BLE001  an unreadable value
        value = fallback
    return _registered_name(value, "SOP class") if str(value).strip(" \0") else "no SOP class"


def _registered_name(value, kind: str) -> str:
    """The UID dictionary's name of a registered UID; anything else may be text from the file."""
    from pydicom.uid import UID_dictionary

    uid = str(value).strip(" \0")
    return UID_dictionary[uid][0] if uid in UID_dictionary else f"an unregistered {kind}"


def _label(keyword: str) -> str:
    """``"Rows (0028,0010)"``: how a reason names an element."""
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    return keyword if tag is None else f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _ensure_transfer_syntax(path, ds) -> str | None:
    """Give a data set whose file meta lacks (0002,0010) the transfer syntax a viewer would infer."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    from pydicom.uid import UID

    file_meta = getattr(ds, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if syntax and not isinstance(syntax, UID):  # written with a wrong VR: text or bytes, not a UID
        text = syntax.decode("latin-1") if isinstance(syntax, bytes) else str(syntax)
        del file_meta.TransferSyntaxUID
        syntax = file_meta.TransferSyntaxUID = UID(text.strip(" \0"))
    if syntax:
        return None
    if file_meta is None:
        file_meta = FileMetaDataset()
    element = ds["PixelData"] if "PixelData" in ds else None
    value = element.value if element is not None else None
    if isinstance(value, (bytes, bytearray)) and (element.is_undefined_length or value[:4] == b"\xfe\xff\x00\xe0"):
        uid = _codec_of_encapsulated(value)
        if uid is None:
            raise ImageReadError(path, "no Transfer Syntax UID and compressed pixel data of an unknown kind")
    else:
        implicit, little = ds.original_encoding
        if implicit is None or little is None:
            raise ImageReadError(path, "no Transfer Syntax UID and the encoding could not be inferred")
        uid = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    file_meta.TransferSyntaxUID = uid
    ds.file_meta = file_meta
    return f"no Transfer Syntax UID: inferred {uid.name}"


def _codec_of_encapsulated(value: bytes):
    """The transfer syntax of encapsulated pixel data from its first fragment's signature."""
    from pydicom import uid as uids

    # Items are (FFFE,E000) + 4-byte length; the first is the Basic Offset Table. Walked by hand
    # because pydicom's fragment generators expect to start after the offset table.
    position, items = 0, []
    while position + 8 <= len(value) and len(items) < 2:
        if value[position:position + 4] != b"\xfe\xff\x00\xe0":
            break
        length = int.from_bytes(value[position + 4:position + 8], "little")
        items.append(value[position + 8:position + 8 + length])
        position += 8 + length
    if len(items) < 2:
        return None
    fragment = items[1]
    if fragment[:4] == b"\xff\x4f\xff\x51" or fragment[4:8] == b"jP  ":
        return uids.JPEG2000
    if fragment[:2] == b"\xff\xd8":
        sof = _jpeg_sof(fragment)
        return {0xC0: uids.JPEGBaseline8Bit, 0xC1: uids.JPEGExtended12Bit, 0xC3: uids.JPEGLosslessSV1,
                0xF7: uids.JPEGLSNearLossless}.get(sof)
    if len(fragment) >= 64 and 1 <= int.from_bytes(fragment[:4], "little") <= 15 \
            and int.from_bytes(fragment[4:8], "little") == 64:
        return uids.RLELossless  # RLE header: number of segments, then the first offset (64)
    return None


def _jpeg_sof(data: bytes) -> int | None:
    """The first start-of-frame marker of a JPEG / JPEG-LS stream."""
    position = _jpeg_sof_position(data)
    return None if position is None else data[position + 1]


# Start-of-frame markers: C0-CF but DHT (C4), JPG (C8) and DAC (CC); F7 is JPEG-LS
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}


def _jpeg_sof_position(data: bytes) -> int | None:
    """Where the first start-of-frame segment of a JPEG / JPEG-LS stream begins (walks the marker segments)."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        if data[position + 1] in _SOF_MARKERS:
            return position
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    return None


def _number_of_frames(path, ds) -> int:
    """NumberOfFrames, 1 when absent or 0 (as pydicom reads a common writer slip); refuses other values."""
    try:
        value = ds.get("NumberOfFrames")
        number = None if value is None or value == "" else int(value)
    except Exception:  # noqa: BLE001  '1A', '2.5', several values…
        raise ImageReadError(path, f"{_label('NumberOfFrames')} is not a whole number") from None
    if number is not None and number < 0:
        raise ImageReadError(path, f"{_label('NumberOfFrames')} = {number} is negative")
    return max(1, number or 1)


def _header_number(path, ds, keyword: str, low: int, high: int, default: int | None = None) -> int:
    """A whole number of the Image Pixel module within [low, high]; refuses a missing or odd one."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            if default is not None:
                return default
            raise ImageReadError(path, f"{_label(keyword)} is missing")
        number = int(value)
    except ImageReadError:
        raise
    except Exception:  # noqa: BLE001  text, several values, a wrong VR…
        raise ImageReadError(path, f"{_label(keyword)} is not a whole number") from None
    if not low <= number <= high:
        raise ImageReadError(path, f"{_label(keyword)} = {number} is out of range ({low} to {high})")
    return number


def _check_pixel_data(path, ds, n_frames: int, index: int | None, limit: int) -> None:
    """Refuse, before decoding, an image whose header is out of range, over the pixel limit, or
    whose pixel data cannot hold the frames it declares (see the module docstring)."""
    rows = _header_number(path, ds, "Rows", 1, 65535)
    cols = _header_number(path, ds, "Columns", 1, 65535)
    samples = _header_number(path, ds, "SamplesPerPixel", 1, 4, default=1)
    bits = _header_number(path, ds, "BitsAllocated", 1, 64)
    if bits != 1 and bits % 8:
        raise ImageReadError(path, f"{_label('BitsAllocated')} = {bits} is not 1 or a multiple of 8")
    check_pixel_budget(path, rows, cols, n_frames if index is None else 1, samples, limit)
    photometric = ds.get("PhotometricInterpretation")
    if photometric and _photometric_term(photometric) not in _PHOTOMETRIC_TERMS:
        raise ImageReadError(path, f"{_label('PhotometricInterpretation')} is not a defined term")

    keyword = next(k for k in _PIXEL_KEYWORDS if k in ds)
    try:
        value = ds[keyword].value
    except Exception:  # noqa: BLE001
        value = None
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ImageReadError(path, f"{_label(keyword)} does not hold bytes (a wrong VR?)")
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        _check_fragments(path, ds, value, rows, cols, samples, n_frames, limit)
        return
    frame_bits = rows * cols * samples * bits
    if str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
        frame_bits = frame_bits // 3 * 2  # PS3.5 8.2.1: two luminance samples share one Cb, Cr pair
    expected, available = math.ceil(frame_bits * n_frames / 8), len(value)
    whole_frames = available * 8 // frame_bits
    if available < expected:
        if n_frames > 1 and whole_frames:
            raise ImageReadError(path, f"{_label('NumberOfFrames')} declares {n_frames} frames but "
                                       f"{_label(keyword)} holds {whole_frames} ({available:,} bytes of {expected:,})")
        raise ImageReadError(path, f"pixel data truncated: {available:,} bytes of {expected:,}")
    if whole_frames > n_frames:  # a frame's worth or more to spare: a wrong Rows, Columns or frame count
        raise ImageReadError(path, f"{_label(keyword)} holds {whole_frames} frames of {rows} x {cols} but "
                                   f"{_label('NumberOfFrames')} declares {n_frames}")


_ITEM = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0"


def _check_fragments(path, ds, value: bytes, rows: int, cols: int, samples: int, n_frames: int, limit: int) -> None:
    """Encapsulated pixel data: every item whole, offset tables and fragments enough for the frames,
    and no compressed stream declaring more pixels than the limit. Walked here, not with
    ``pydicom.encaps.parse_fragments``: that one seeks past an item cut short without noticing."""
    name = _label("PixelData")
    size = len(value)
    if size < 8 or value[:4] != _ITEM:
        raise ImageReadError(path, f"the compressed {name} does not start with an item (its Basic Offset Table)")
    table_length = int.from_bytes(value[4:8], "little")
    if table_length % 4 or 8 + table_length > size:
        raise ImageReadError(path, f"the Basic Offset Table of {name} is cut short or misaligned")
    offsets = np.frombuffer(value, "<u4", table_length // 4, 8)
    first, position, starts = 8 + table_length, 8 + table_length, []
    while position + 8 <= size and value[position:position + 4] != _SEQUENCE_DELIMITER:
        if value[position:position + 4] != _ITEM:
            raise ImageReadError(path, f"the compressed {name} is corrupt: no item tag at byte {position:,}")
        length = int.from_bytes(value[position + 4:position + 8], "little")
        if position + 8 + length > size:
            raise ImageReadError(path, f"pixel data truncated: compressed fragment {len(starts) + 1} holds "
                                       f"{size - position - 8:,} bytes of {length:,}")
        starts.append(position)
        position += 8 + length
    if not starts:
        raise ImageReadError(path, f"the compressed {name} holds no fragments")
    if "ExtendedOffsetTable" in ds:
        entries = len(ds.ExtendedOffsetTable or b"") // 8
        if entries != n_frames:
            raise ImageReadError(path, f"{_label('ExtendedOffsetTable')} lists {_count(entries, 'frame')} but "
                                       f"{_label('NumberOfFrames')} declares {n_frames}")
    elif len(offsets):
        if len(offsets) != n_frames:
            raise ImageReadError(path, f"the Basic Offset Table of {name} lists {_count(len(offsets), 'frame')} but "
                                       f"{_label('NumberOfFrames')} declares {n_frames}")
        item_offsets = {start - first for start in starts}
        if any(int(offset) not in item_offsets for offset in offsets) or np.any(np.diff(offsets.astype(np.int64)) <= 0):
            raise ImageReadError(path, f"the Basic Offset Table of {name} points between fragments")
    if len(starts) < n_frames:
        raise ImageReadError(path, f"{_label('NumberOfFrames')} declares {n_frames} frames but the compressed "
                                   f"{name} holds {_count(len(starts), 'fragment')}")
    view = memoryview(value)
    for start in starts:  # a stream's own size, before a codec reserves memory for it
        declared = _stream_size(view[start + 8:start + 8 + min(1 << 16, size - start - 8)])
        if declared is None:
            continue
        stream_rows, stream_cols, components = declared
        if not stream_rows or not stream_cols:  # libjpeg grows its buffer line by line, without bound
            raise ImageReadError(path, f"a compressed frame declares {stream_rows} x {stream_cols} pixels "
                                       "(a height set later by a DNL marker is not supported)")
        check_pixel_budget(path, stream_rows, stream_cols, 1, components, limit)
        if stream_rows * stream_cols > rows * cols:  # pydicom would decode it, then fail to fit it
            raise ImageReadError(path, f"a compressed frame declares {stream_rows} x {stream_cols} pixels, more "
                                       f"than Rows x Columns ({rows} x {cols})")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def _stream_size(fragment) -> tuple[int, int, int] | None:
    """(rows, columns, components) a JPEG / JPEG-LS (SOF) or JPEG 2000 (SIZ) stream declares, or None.
    ``fragment``: bytes or a memoryview of its first bytes (the headers come first)."""
    if fragment[:4] == b"\xff\x4f\xff\x51" and len(fragment) >= 42:  # J2K: SOC, then SIZ
        x, y, x0, y0 = (int.from_bytes(fragment[i:i + 4], "big") for i in (8, 12, 16, 20))
        components = int.from_bytes(fragment[40:42], "big")
        return max(0, y - y0), max(0, x - x0), max(1, components)
    if fragment[:2] == b"\xff\xd8":
        position = _jpeg_sof_position(fragment)
        if position is not None and position + 10 <= len(fragment):
            height = int.from_bytes(fragment[position + 5:position + 7], "big")
            width = int.from_bytes(fragment[position + 7:position + 9], "big")
            return height, width, max(1, fragment[position + 9])
    return None


def _decoder(path, ds):
    """pydicom's decoder for the data set's transfer syntax; refuses one it cannot decode."""
    from pydicom.pixels import get_decoder

    syntax = ds.file_meta.TransferSyntaxUID
    try:
        return get_decoder(syntax)
    except Exception:  # noqa: BLE001  NotImplementedError, or a UID that is no transfer syntax at all
        name = _registered_name(syntax, "transfer syntax")
        raise ImageReadError(path, f"transfer syntax not supported: {name} ({_label('TransferSyntaxUID')})") from None


def _decode(path, ds, decoder, index: int | None):
    """Stored values of one frame (or all) and the photometric interpretation they are now in."""
    from pydicom.pixels.utils import as_pixel_options

    syntax = ds.file_meta.TransferSyntaxUID
    try:
        # What pydicom.pixels.pixel_array(ds, index=…) does, keeping the properties it returns:
        # they say whether the colour space was converted (YBR -> RGB) while decoding.
        arr, properties = decoder.as_array(ds, index=index, validate=True, raw=False, **as_pixel_options(ds))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001  missing elements, codec errors, MemoryError, OverflowError, and
        # pylibjpeg-rle's Rust panics (pyo3's PanicException is a BaseException)
        name = _registered_name(syntax, "transfer syntax")
        raise ImageReadError(path, f"cannot decode pixel data ({name}): {_scrubbed(exc, ds)}") from None
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        keyword = next(k for k in _PIXEL_KEYWORDS if k in ds)
        raise ImageReadError(path, f"{_label(keyword)} holds non-finite values")
    photometric = str(properties.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))
    return arr, photometric.strip().upper()


# Value representations that hold text; a library's error message may quote any of them.
_TEXT_VRS = frozenset(("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR",
                       "UT"))


def _scrubbed(exc: BaseException, ds) -> str:
    """``describe(exc)`` with every text value of the data set blanked out.

    pydicom's messages quote header values ("invalid literal for int(): 'DOE^JOHN'"); a value
    holding a letter may be a name, so it never reaches a reason."""
    if isinstance(exc, MemoryError):
        return "out of memory"
    message = describe(exc)
    values: set[str] = set()
    try:
        _text_values(ds, values)
        _text_values(getattr(ds, "file_meta", None) or {}, values)
    except Exception:  # noqa: BLE001  cannot list the values: keep the exception type only
        return type(exc).__name__
    for value in sorted(values, key=len, reverse=True):
        message = re.sub(rf"(?<![\w.]){re.escape(value)}(?![\w.])", "(a header value)", message)
    return message


def _text_values(ds, found: set[str]) -> None:
    """Every text value in ``ds`` and its sequences that holds a letter, raw bytes of those pydicom cannot convert."""
    from pydicom.datadict import dictionary_VR

    for tag in list(ds.keys()):
        try:
            element = ds[tag]
            vr, value = element.VR, element.value
        except Exception:  # noqa: BLE001  its conversion failed, and the message may quote the raw bytes
            raw = ds.get_item(tag)
            try:
                vr = raw.VR or dictionary_VR(tag)
            except KeyError:
                continue
            value = raw.value.decode("latin-1").split("\\") if isinstance(raw.value, bytes) else raw.value
        if vr == "SQ":
            for item in value or []:
                _text_values(item, found)
            continue
        if vr in ("UN", "OB") and isinstance(value, bytes):  # a value pydicom could not convert: text by the dictionary?
            try:
                vr, value = dictionary_VR(tag), value.decode("latin-1").split("\\")
            except KeyError:
                continue
        if vr not in _TEXT_VRS or value is None:
            continue
        for item in ([value] if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else value):
            text = (item.decode("latin-1") if isinstance(item, bytes) else str(item)).strip(" \0")
            if len(text) >= 2 and any(c.isalpha() for c in text):
                found.add(text)


# ---------------------------------------------------------------- display pipeline

def _display_monochrome(path, ds, stack: np.ndarray, frame_numbers: list[int], photometric: str, *,
                        apply_voi: bool, window: int, max_size: int | None):
    """(F, H, W) stored values -> (F, H, W) float32 in [0, 1], valid mask or None, VOI used, notes."""
    per_frame = "PerFrameFunctionalGroupsSequence" in ds
    attributes = [_frame_attributes(ds, number) for number in (frame_numbers if per_frame else frame_numbers[:1])]
    for frame_attributes in attributes:
        _check_rescale(path, frame_attributes)
    valid = _padding_valid(attributes[0], stack)  # padding attributes are not per frame
    if valid is not None and not valid.any():
        raise ImageReadError(path, f"every pixel is padding ({_label('PixelPaddingValue')})")
    decoded = stack
    if max_size is not None:
        integer = np.issubdtype(stack.dtype, np.integer)
        reduced, valid = area_downsample(stack, max_size, valid=valid)
        # Back to the stored integer type: pydicom's LUT functions index with the values.
        stack = np.rint(reduced).astype(stack.dtype) if integer and reduced is not stack else reduced

    # Row bands keep pydicom's float64 temporaries small: a 3000 x 3000 radiograph peaks near its
    # float32 output, not at many full-size float64 copies.
    out = np.zeros(stack.shape, np.float32)
    bands = _row_bands(stack.shape[1], stack.shape[2])
    needs_minmax, vois, notes = [], set(), set()
    for i in range(len(stack)):
        frame_attributes = attributes[i] if per_frame else attributes[0]
        voi, note = "minmax", None
        for band in bands:
            values = _apply_modality(path, frame_attributes, stack[i, band])
            scaled, voi, note = _apply_voi(path, frame_attributes, values, window) if apply_voi else (None, "minmax", None)
            if scaled is None:  # no usable VOI: it depends on the attributes only, so the same for every band
                break
            out[i, band] = scaled
        vois.add(voi)
        notes.add(note)
        if voi == "minmax":
            needs_minmax.append(i)
    if needs_minmax:  # one range over every such frame's valid pixels, then scale band by band
        def modality_bands():
            for i in needs_minmax:
                for band in bands:
                    values = _apply_modality(path, attributes[i] if per_frame else attributes[0], stack[i, band])
                    yield i, band, values

        ranges = [_valid_range(values, None if valid is None else valid[i, band]) for i, band, values in modality_bands()]
        ranges = [r for r in ranges if r is not None]
        low, high = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else (0.0, 0.0)
        for i, band, values in modality_bands():
            out[i, band] = scale_by_range(values, low, high)
    voi = vois.pop() if len(vois) == 1 else "mixed"
    flattened_by = _flattened_by(path, attributes[0], stack, out, valid, voi)
    if flattened_by == "voi":  # e.g. a brain window on a bone slice: all white in a viewer, useless to a model
        out, valid, _, _ = _display_monochrome(path, ds, decoded, frame_numbers, photometric, apply_voi=False,
                                               window=window, max_size=max_size)
        return out, valid, "minmax", ["the window maps every pixel to one value: scaled by the image's range"]
    if flattened_by:
        raise ImageReadError(path, f"{flattened_by} maps every pixel to one value")
    if photometric == "MONOCHROME1":
        np.subtract(np.float32(1.0), out, out=out)
    if valid is not None:
        out[~valid] = 0.0
    return out, valid, voi, sorted(filter(None, notes))


def _frame_attributes(ds, frame_number: int):
    """A small data set with the display elements of one frame, functional groups flattened."""
    from pydicom.dataset import Dataset

    attributes = Dataset()
    for keyword in _DISPLAY_KEYWORDS:
        if keyword in ds:
            attributes[keyword] = ds[keyword]
    groups = []
    for sequence in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = ds.get(sequence) or []
        index = 0 if sequence.startswith("Shared") else frame_number
        if index < len(items):
            groups.append(items[index])
    for group in groups:  # per-frame values override shared ones
        for sequence in ("PixelValueTransformationSequence", "FrameVOILUTSequence"):
            for item in (group.get(sequence) or [])[:1]:
                for element in item:
                    if element.keyword in _DISPLAY_KEYWORDS:
                        attributes[element.keyword] = element
    attributes.file_meta = ds.file_meta  # LUT Data (OW) byte order comes from the transfer syntax
    attributes.set_original_encoding(*ds.original_encoding)
    return attributes


def _padding_valid(attributes, stack: np.ndarray) -> np.ndarray | None:
    """False where stored values are pixel padding (PS3.3 C.7.5.1.1.2), None without padding."""
    if "PixelPaddingValue" not in attributes or not np.issubdtype(stack.dtype, np.integer):
        return None
    first = _padding_number(attributes, attributes.PixelPaddingValue)
    limit = attributes.get("PixelPaddingRangeLimit")
    if first is None:
        return None
    if limit is not None and _padding_number(attributes, limit) is not None:
        last = _padding_number(attributes, limit)
        low, high = min(first, last), max(first, last)
        valid = ~((stack >= low) & (stack <= high))
    else:
        valid = stack != first
    return None if valid.all() else valid


def _padding_number(attributes, value) -> int | None:
    if isinstance(value, (list, tuple)) or hasattr(value, "__len__") and not isinstance(value, (str, bytes)):
        value = value[0] if len(value) else None
    if value is None:
        return None
    try:
        value = int(value)
    except (TypeError, ValueError):
        return None
    # Padding values are 'US or SS' by Pixel Representation; a reader that resolved the
    # ambiguity as US leaves negative values wrapped, so unwrap them here.
    bits = int(attributes.get("BitsAllocated", 16) or 16)
    if attributes.get("PixelRepresentation", 0) == 1 and value >= 2 ** (bits - 1):
        value -= 2 ** bits
    return value


def _apply_modality(path, attributes, stored: np.ndarray) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    values = apply_modality_lut(stored, attributes)
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():  # finite, but overflowing
        raise ImageReadError(path, f"{_label('RescaleSlope')} and {_label('RescaleIntercept')} "
                                   "give non-finite values")
    return values


def _finite_number(path, attributes, keyword: str, index: int = 0) -> float:
    """Value ``index`` of a numeric display element; refuses one that is not a finite number."""
    try:
        element = attributes[keyword]
        value = element.value[index] if element.VM > 1 else element.value
        number = float(value)
    except Exception:  # noqa: BLE001  text in a DS, a wrong VR…
        raise ImageReadError(path, f"{_label(keyword)} is not a number") from None
    if not math.isfinite(number):
        raise ImageReadError(path, f"{_label(keyword)} is not a finite number")
    return number


def _check_rescale(path, attributes) -> None:
    """Refuse a Rescale Slope / Intercept that pydicom will use and that is not a finite number
    (NaN or inf turns every pixel NaN, which the pipeline would show as a black image)."""
    if attributes.get("ModalityLUTSequence"):  # pydicom prefers the LUT and ignores the rescale
        return
    if "RescaleSlope" in attributes and "RescaleIntercept" in attributes:
        for keyword in ("RescaleSlope", "RescaleIntercept"):
            _finite_number(path, attributes, keyword)


def _flattened_by(path, attributes, stored: np.ndarray, out: np.ndarray, valid: np.ndarray | None,
                  voi: str) -> str | None:
    """Which step maps varying stored values to one display value: "voi" (the VOI LUT or window),
    the Modality LUT / rescale element's label, or None (the output varies, or the stored values do not)."""
    shown = out if valid is None else out[valid]
    if shown.size == 0 or shown.min() < shown.max():
        return None
    stored = stored if valid is None else stored[valid]
    if stored.min() == stored.max():
        return None
    try:
        modality = _apply_modality(path, attributes, stored)
        collapsed = modality.min() == modality.max()
    except Exception:  # noqa: BLE001  only naming the step here
        collapsed = False
    if collapsed:
        return _label("ModalityLUTSequence") if attributes.get("ModalityLUTSequence") else _label("RescaleSlope")
    return "voi" if voi in ("voi_lut", "window", "mixed") else None


def _apply_voi(path, attributes, values: np.ndarray, window: int):
    """(values in [0, 1], "voi_lut" | "window", None), or (None, "minmax", note) without a usable VOI."""
    from pydicom.pixels import apply_voi, apply_windowing

    lut_items = attributes.get("VOILUTSequence") or []
    usable_luts = [item for item in lut_items if item.get("LUTDescriptor") and item.get("LUTData") is not None]
    if usable_luts and len(usable_luts) == len(lut_items):
        if window >= len(lut_items):
            raise ImageReadError(path, f"VOI LUT {window} not in the file (it has {len(lut_items)})")
        integer_values = values if np.issubdtype(values.dtype, np.integer) else np.rint(values).astype(np.int64)
        # The LUT maps input to [0, 2^n - 1] in principle, but many files declare 16 bits and use
        # 12; scale by the range the LUT actually reaches, as viewers do.
        descriptor = lut_items[window].LUTDescriptor
        entries = int(descriptor[0]) or 2 ** 16
        lut_values = apply_voi(np.arange(int(descriptor[1]), int(descriptor[1]) + entries, dtype=np.int64),
                               attributes, index=window)
        mapped = apply_voi(integer_values, attributes, index=window)
        return scale_by_range(mapped, float(lut_values.min()), float(lut_values.max())), "voi_lut", None

    count = min(_multiplicity(attributes, "WindowCenter"), _multiplicity(attributes, "WindowWidth"))
    if count:
        if window >= count:
            raise ImageReadError(path, f"window {window} not in the file (it has {count})")
        for keyword in ("WindowCenter", "WindowWidth"):  # NaN passes pydicom's width < 1 test
            _finite_number(path, attributes, keyword, window)
        try:
            windowed = apply_windowing(values, attributes, index=window)
            # The output range of apply_windowing depends on bits stored and rescale; feeding it
            # -inf and +inf gives its own minimum and maximum instead of re-deriving them here.
            low, high = apply_windowing(np.array([-np.inf, np.inf]), attributes, index=window)
        except ValueError as exc:  # width < 1, unknown VOI LUT Function…: fall back like a viewer
            return None, "minmax", f"unusable window ({describe(exc)}): scaled by the image's range"
        return scale_by_range(windowed, float(low), float(high)), "window", None
    return None, "minmax", None


def _multiplicity(attributes, keyword: str) -> int:
    element = attributes.get(keyword) if keyword in attributes else None
    return 0 if element is None or element == "" else int(attributes[keyword].VM)


def _valid_range(values: np.ndarray, mask: np.ndarray | None) -> tuple[float, float] | None:
    """(min, max) of the finite values where ``mask`` holds; None when there are none."""
    chosen = values if mask is None else values[mask]
    chosen = chosen[np.isfinite(chosen)] if np.issubdtype(chosen.dtype, np.floating) else chosen
    return (float(chosen.min()), float(chosen.max())) if chosen.size else None


BAND_PIXELS = 1 << 18  # pixels per row band of the display pipeline (float64 temporaries of 2 MB)


def _row_bands(height: int, width: int) -> list[slice]:
    rows = max(1, BAND_PIXELS // max(width, 1))
    return [slice(start, min(start + rows, height)) for start in range(0, max(height, 1), rows)]


def _display_colour(path, ds, stack: np.ndarray, photometric: str, *, gray: bool, max_size: int | None) -> np.ndarray:
    """(F, H, W, 3) or palette indices (F, H, W) -> (F, H, W) gray or (F, H, W, 3) RGB in [0, 1]."""
    from pydicom.pixels import apply_color_lut, convert_color_space

    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(stack, ds)[..., :3]
        full_scale = float(np.iinfo(rgb.dtype).max)
    elif stack.ndim == 4:
        rgb = stack[..., :3]
        if photometric in ("YBR_FULL", "YBR_FULL_422"):  # not converted while decoding
            rgb = convert_color_space(rgb, photometric, "RGB", per_frame=True)
        elif photometric not in ("RGB", "YBR_ICT", "YBR_RCT", ""):
            raise ImageReadError(path, f"{_label('PhotometricInterpretation')} {_photometric_term(photometric)} "
                                       "is not supported")
        if np.issubdtype(rgb.dtype, np.integer):
            bits = int(ds.get("BitsStored") or np.iinfo(rgb.dtype).bits)
            full_scale = float(2 ** bits - 1)
        else:
            full_scale = None
    else:
        raise ImageReadError(path, f"{_label('PhotometricInterpretation')} {_photometric_term(photometric)} with "
                                   f"{stack.shape[-1] if stack.ndim == 4 else 1} samples per pixel is not supported")
    if full_scale is None:
        rgb = scale_by_range(rgb, float(np.nanmin(rgb)), float(np.nanmax(rgb)))
    else:
        rgb = np.clip(rgb.astype(np.float32) / np.float32(full_scale), 0.0, 1.0)
    if max_size is not None:
        rgb, _ = area_downsample(rgb, max_size, channels_last=True)
    return luminance(rgb) if gray else rgb.astype(np.float32)


def _photometric_term(value) -> str:
    """A photometric interpretation as a reason may name it: a defined term, else not its text."""
    text = str(value or "").strip(" \0").upper()
    return text if text in _PHOTOMETRIC_TERMS else ("missing" if not text else "(an undefined value)")


# ---------------------------------------------------------------- safe metadata

def dicom_meta(ds) -> dict:
    """The safe metadata of a DICOM data set: identifiers and acquisition facts, no names or free text."""
    meta = empty_meta("dicom")
    file_meta = getattr(ds, "file_meta", None) or {}
    syntax = file_meta.get("TransferSyntaxUID") if file_meta else None
    meta.update(
        patient_id=_identifier(ds, "PatientID"),
        study_uid=_uid(ds, "StudyInstanceUID"),
        series_uid=_uid(ds, "SeriesInstanceUID"),
        sop_uid=_uid(ds, "SOPInstanceUID") or _uid(file_meta, "MediaStorageSOPInstanceUID"),
        instance_number=_integer(ds, "InstanceNumber"),
        view_position=_code(ds, "ViewPosition"),
        laterality=_code(ds, "ImageLaterality") or _code(ds, "Laterality") or _frame_laterality(ds),
        modality=_code(ds, "Modality"),
        photometric=_code(ds, "PhotometricInterpretation") if _code(ds, "PhotometricInterpretation") in
        _PHOTOMETRIC_TERMS else None,
        bits_stored=_integer(ds, "BitsStored"),
        rows=_integer(ds, "Rows"),
        cols=_integer(ds, "Columns"),
        frames=_integer(ds, "NumberOfFrames") or (1 if any(k in ds for k in _PIXEL_KEYWORDS) else None),
        transfer_syntax=_syntax_text(syntax),
    )
    return meta


_CODE_STRING = re.compile(r"[A-Z0-9_ ]{1,16}")  # PS3.5 6.2, VR CS
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")  # PS3.5 9.1, at most 64 characters
_IDENTIFIER = re.compile(r"[^\x00-\x1f\x7f\\]{1,64}")  # VR LO: no control characters, no backslash


def _is_uid(text: str | None) -> bool:
    return bool(text) and len(text) <= 64 and _UID.fullmatch(text) is not None


def _uid(ds, keyword: str) -> str | None:
    """A UID value (digits and dots, at most 64), None when it is not one: a corrupt value's bytes (a
    carriage return, a NUL) would otherwise reach a CSV cell and break the table."""
    text = _text(ds, keyword)
    return text if _is_uid(text) else None


def _identifier(ds, keyword: str) -> str | None:
    """A Long String identifier (PatientID), None when it holds control characters or is too long."""
    text = _text(ds, keyword)
    return text if text and _IDENTIFIER.fullmatch(text) else None


def _code(ds, keyword: str) -> str | None:
    """A Code String value, None when it is not one (then it may be free text: a name)."""
    text = _text(ds, keyword)
    return text if text and _CODE_STRING.fullmatch(text) else None


def _syntax_text(syntax) -> str | None:
    """A transfer syntax's registered name, else its UID when it is a valid one (digits and dots), else None."""
    if not syntax:
        return None
    from pydicom.uid import UID_dictionary

    uid = str(syntax).strip(" \0")
    if uid in UID_dictionary:
        return UID_dictionary[uid][0]
    return uid if _is_uid(uid) else None


def _text(ds, keyword: str) -> str | None:
    try:
        value = ds.get(keyword) if hasattr(ds, "get") else None
    except Exception:  # noqa: BLE001  an invalid value is missing, not fatal
        return None
    if value is None:
        return None
    text = str(value).strip().strip("\x00").strip()
    return text or None


def _integer(ds, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else int(value)
    except Exception:  # noqa: BLE001
        return None


def _frame_laterality(ds) -> str | None:
    try:
        for group in (ds.get("SharedFunctionalGroupsSequence") or [])[:1]:
            for item in (group.get("FrameAnatomySequence") or [])[:1]:
                return _code(item, "FrameLaterality")
    except Exception:  # noqa: BLE001
        return None
    return None


def _slice_position(ds, frame_number: int) -> float | None:
    """Position along the slice normal (ImagePositionPatient · (row × column)), else SliceLocation."""
    try:
        position = ds.get("ImagePositionPatient")
        orientation = ds.get("ImageOrientationPatient")
        for sequence, index in (("PerFrameFunctionalGroupsSequence", frame_number),
                                ("SharedFunctionalGroupsSequence", 0)):
            items = ds.get(sequence) or []
            if index < len(items):
                group = items[index]
                for item in (group.get("PlanePositionSequence") or [])[:1]:
                    position = position if position is not None else item.get("ImagePositionPatient")
                for item in (group.get("PlaneOrientationSequence") or [])[:1]:
                    orientation = orientation if orientation is not None else item.get("ImageOrientationPatient")
        if position is not None and orientation is not None and len(position) == 3 and len(orientation) == 6:
            row, column = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
            value = float(np.dot(np.cross(row, column), np.asarray(position, float)))
            return value if np.isfinite(value) else None
        location = ds.get("SliceLocation")
        return None if location is None or location == "" else float(location)
    except Exception:  # noqa: BLE001  invalid geometry is missing geometry
        return None
