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
"""

from __future__ import annotations

import numpy as np

from .base import (NOT_AN_IMAGE, ImageReadError, frame_index, NotAnImageError, RadiographImage, area_downsample, describe,
                   empty_meta, luminance, scale_by_range)
from .sniff import DICOMDIR_SOP_CLASS, reads_as_bare_dicom

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
# Elements the display pipeline reads; copied into a small per-frame data set.
_DISPLAY_KEYWORDS = (
    "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "SamplesPerPixel", "RescaleSlope", "RescaleIntercept", "ModalityLUTSequence", "VOILUTSequence",
    "WindowCenter", "WindowWidth", "VOILUTFunction", "PixelPaddingValue", "PixelPaddingRangeLimit",
)


def read_dicom(path, *, frame: int | None = 0, apply_voi: bool = True, window: int = 0, gray: bool = True,
               max_size: int | None = None, bare: bool = False) -> RadiographImage:
    """Read one DICOM file through the display pipeline (see the module docstring).

    ``bare``: the file has no preamble (``sniff.BARE_DICOM``); whether it is DICOM at all is
    decided here, from the one parse of its header.
    """
    ds = _load(path, bare)
    _require_image(path, ds)
    recovered = _ensure_transfer_syntax(path, ds)
    meta = dicom_meta(ds)
    meta["recovered"] = recovered

    n_frames = _number_of_frames(path, ds)
    index = frame_index(path, frame, n_frames)
    meta["frames"], meta["frame"] = n_frames, index
    meta["slice_position"] = _slice_position(ds, index or 0)

    arr, photometric = _decode(path, ds, index)
    stack = arr[None] if (index is not None or n_frames == 1) else arr  # always (F, H, W[, S]) here
    frame_numbers = [index] if index is not None else list(range(len(stack)))

    try:
        if photometric in _MONOCHROME and stack.ndim == 3:
            pixels, valid, voi, notes = _display_monochrome(path, ds, stack, frame_numbers, photometric,
                                                            apply_voi=apply_voi, window=window, max_size=max_size)
            meta["voi"] = voi
            meta["recovered"] = "; ".join(filter(None, [recovered, *notes])) or None
        else:
            pixels, valid = _display_colour(ds, stack, photometric, gray=gray, max_size=max_size), None
    except ImageReadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001  a value the display pipeline cannot use
        raise ImageReadError(path, f"cannot apply the display pipeline: {describe(exc)}") from None

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

def _load(path, bare: bool = False):
    import pydicom

    try:
        # force: also read data sets without preamble/file meta (their first bytes look DICOM-shaped)
        ds = pydicom.dcmread(path, force=True)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001  truncated headers, bad lengths, …
        if bare and not reads_as_bare_dicom(path):  # not DICOM after all (a second parse, on failure only)
            raise NotAnImageError(path, NOT_AN_IMAGE) from None
        raise ImageReadError(path, f"not readable as DICOM: {describe(exc)}") from None
    if bare and not reads_as_bare_dicom(path, ds):
        raise NotAnImageError(path, NOT_AN_IMAGE)
    return ds


def _require_image(path, ds) -> None:
    file_meta = getattr(ds, "file_meta", None) or {}
    sop_class = str(file_meta.get("MediaStorageSOPClassUID", "") or "")
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        raise NotAnImageError(path, "DICOMDIR (the index of a DICOM media set, not an image)")
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        raise NotAnImageError(path, f"DICOM without pixel data ({_sop_class_name(ds, sop_class)})")


def _sop_class_name(ds, fallback: str) -> str:
    from pydicom.uid import UID

    try:
        uid = UID(str(ds.get("SOPClassUID", "") or fallback))
    except Exception:  # noqa: BLE001
        uid = None
    if uid:
        return uid.name  # the standard's name of the object type ("RT Plan Storage"), not text from the file
    modality = _text(ds, "Modality")
    return f"modality {modality}" if modality else "no SOP class"


def _ensure_transfer_syntax(path, ds) -> str | None:
    """Give a data set whose file meta lacks (0002,0010) the transfer syntax a viewer would infer."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None and file_meta.get("TransferSyntaxUID"):
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
    """The first start-of-frame marker of a JPEG / JPEG-LS stream (walks the marker segments)."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xF7):
            return marker
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    return None


def _number_of_frames(path, ds) -> int:
    from pydicom.pixels.utils import get_nr_frames

    try:
        return max(1, int(get_nr_frames(ds, warn=False)))
    except Exception as exc:  # noqa: BLE001
        raise ImageReadError(path, f"invalid Number of Frames: {describe(exc)}") from None


def _decode(path, ds, index: int | None):
    """Stored values of one frame (or all) and the photometric interpretation they are now in."""
    from pydicom.pixels import get_decoder
    from pydicom.pixels.utils import as_pixel_options

    syntax = ds.file_meta.TransferSyntaxUID
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise ImageReadError(path, f"transfer syntax not supported: {syntax.name} ({syntax})") from None
    try:
        # What pydicom.pixels.pixel_array(ds, index=…) does, keeping the properties it returns:
        # they say whether the colour space was converted (YBR -> RGB) while decoding.
        arr, properties = decoder.as_array(ds, index=index, validate=True, raw=False, **as_pixel_options(ds))
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001  missing elements, truncated data, codec errors
        raise ImageReadError(path, f"cannot decode pixel data ({syntax.name}): {describe(exc)}") from None
    photometric = str(properties.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))
    return arr, photometric.strip().upper()


# ---------------------------------------------------------------- display pipeline

def _display_monochrome(path, ds, stack: np.ndarray, frame_numbers: list[int], photometric: str, *,
                        apply_voi: bool, window: int, max_size: int | None):
    """(F, H, W) stored values -> (F, H, W) float32 in [0, 1], valid mask or None, VOI used, notes."""
    per_frame = "PerFrameFunctionalGroupsSequence" in ds
    attributes = [_frame_attributes(ds, number) for number in (frame_numbers if per_frame else frame_numbers[:1])]
    valid = _padding_valid(attributes[0], stack)  # padding attributes are not per frame
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
            values = _apply_modality(frame_attributes, stack[i, band])
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
                    values = _apply_modality(attributes[i] if per_frame else attributes[0], stack[i, band])
                    yield i, band, values

        ranges = [_valid_range(values, None if valid is None else valid[i, band]) for i, band, values in modality_bands()]
        ranges = [r for r in ranges if r is not None]
        low, high = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else (0.0, 0.0)
        for i, band, values in modality_bands():
            out[i, band] = scale_by_range(values, low, high)
    if photometric == "MONOCHROME1":
        np.subtract(np.float32(1.0), out, out=out)
    if valid is not None:
        out[~valid] = 0.0
    voi = vois.pop() if len(vois) == 1 else "mixed"
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


def _apply_modality(attributes, stored: np.ndarray) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    return apply_modality_lut(stored, attributes)


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


def _display_colour(ds, stack: np.ndarray, photometric: str, *, gray: bool, max_size: int | None) -> np.ndarray:
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
            raise ValueError(f"photometric interpretation {photometric} is not supported")
        if np.issubdtype(rgb.dtype, np.integer):
            bits = int(ds.get("BitsStored") or np.iinfo(rgb.dtype).bits)
            full_scale = float(2 ** bits - 1)
        else:
            full_scale = None
    else:
        raise ValueError(f"photometric interpretation {photometric or 'missing'} with "
                         f"{stack.shape[-1] if stack.ndim == 4 else 1} samples per pixel is not supported")
    if full_scale is None:
        rgb = scale_by_range(rgb, float(np.nanmin(rgb)), float(np.nanmax(rgb)))
    else:
        rgb = np.clip(rgb.astype(np.float32) / np.float32(full_scale), 0.0, 1.0)
    if max_size is not None:
        rgb, _ = area_downsample(rgb, max_size, channels_last=True)
    return luminance(rgb) if gray else rgb.astype(np.float32)


# ---------------------------------------------------------------- safe metadata

def dicom_meta(ds) -> dict:
    """The safe metadata of a DICOM data set: identifiers and acquisition facts, no names or free text."""
    meta = empty_meta("dicom")
    file_meta = getattr(ds, "file_meta", None) or {}
    syntax = file_meta.get("TransferSyntaxUID") if file_meta else None
    meta.update(
        patient_id=_text(ds, "PatientID"),
        study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        sop_uid=_text(ds, "SOPInstanceUID") or _text(file_meta, "MediaStorageSOPInstanceUID"),
        instance_number=_integer(ds, "InstanceNumber"),
        view_position=_text(ds, "ViewPosition"),
        laterality=_text(ds, "ImageLaterality") or _text(ds, "Laterality") or _frame_laterality(ds),
        modality=_text(ds, "Modality"),
        photometric=_text(ds, "PhotometricInterpretation"),
        bits_stored=_integer(ds, "BitsStored"),
        rows=_integer(ds, "Rows"),
        cols=_integer(ds, "Columns"),
        frames=_integer(ds, "NumberOfFrames") or (1 if any(k in ds for k in _PIXEL_KEYWORDS) else None),
        transfer_syntax=(syntax.name if syntax else None),
    )
    return meta


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
                return _text(item, "FrameLaterality")
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
