"""File type by signature, never by suffix: PACS exports name DICOM files anything (or nothing)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_TIFF = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
# Groups a DICOM data set without preamble may start with (file meta or identifying group),
# as written little endian or big endian.
_BARE_DICOM_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def sniff(path) -> str | None:
    """``'dicom'``, ``'dicomdir'``, ``'png'``, ``'jpeg'``, ``'tiff'`` or None (not an image file).

    DICOM: ``DICM`` at offset 128; or a data set without preamble and file meta (implicit or
    explicit VR, either byte order, starting with group 0002 or 0008) that pydicom reads with
    ``force=True``. A DICOM file whose Media Storage SOP Class is the directory class is
    ``'dicomdir'``. DICOM without pixel data (SR, RT plan…) is still ``'dicom'``: ``read_image``
    says why it is not an image. Raises OSError when the file cannot be opened.
    """
    with open(path, "rb") as handle:
        head = handle.read(132)
    if head[128:132] == b"DICM":
        return "dicomdir" if _is_dicomdir(path) else "dicom"
    if head.startswith(_PNG):
        return "png"
    if head.startswith(_JPEG):
        return "jpeg"
    if head[:4] in _TIFF:
        return "tiff"
    if head[:2] in _BARE_DICOM_GROUPS and _reads_as_bare_dicom(path, head):
        return "dicom"
    return None


def _is_dicomdir(path) -> bool:
    from pydicom.filereader import read_file_meta_info

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = read_file_meta_info(path)
    except Exception:  # noqa: BLE001  a broken meta group is read_image's to report
        return False
    return str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS


def _reads_as_bare_dicom(path, head: bytes) -> bool:
    """A cheap shape check of the first element, then a forced pydicom read of the header."""
    if len(head) < 8:
        return False
    explicit_vr = head[4:6]
    looks_explicit = explicit_vr.isalpha() and explicit_vr.isupper()
    little = head[:2] in (b"\x02\x00", b"\x08\x00")
    length = int.from_bytes(head[4:8], "little" if little else "big")
    if not looks_explicit and length > 1024:  # implicit VR: the first element is short
        return False
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    except Exception:  # noqa: BLE001  not DICOM after all
        return False
    tags = list(ds.keys())
    return bool(tags) and tags[0].group in (0x0002, 0x0008)


def list_image_files(folder) -> list[Path]:
    """Every file under ``folder`` (recursively, links to folders not followed), sorted by path.

    All files, whatever their suffix: the caller sniffs them and decides what to skip.
    """
    folder = Path(folder)
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(Path(root) / name for name in files)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())
