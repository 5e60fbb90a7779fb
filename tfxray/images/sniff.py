"""File type by signature, never by suffix: PACS exports name DICOM files anything (or nothing)."""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_TIFF = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
# Groups a DICOM data set without preamble may start with (file meta or identifying group),
# as written little endian or big endian.
_BARE_DICOM_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")
BARE_DICOM = "bare-dicom"  # ``signature``: maybe a DICOM data set without preamble


def sniff(path) -> str | None:
    """``'dicom'``, ``'dicomdir'``, ``'png'``, ``'jpeg'``, ``'tiff'`` or None (not an image file).

    DICOM: ``DICM`` at offset 128; or a data set without preamble and file meta (implicit or
    explicit VR, either byte order, starting with group 0002 or 0008) that pydicom reads with
    ``force=True``. A DICOM file whose Media Storage SOP Class is the directory class is
    ``'dicomdir'``. DICOM without pixel data (SR, RT plan…) is still ``'dicom'``: ``read_image``
    says why it is not an image. A named pipe, socket or device is None (never opened). Raises
    OSError when the file cannot be opened.

    ``read_image`` does not call this: it takes ``signature`` and lets the DICOM reader decide
    the rest while it parses the header, so a header is parsed once.
    """
    try:
        kind = signature(path)
    except NotARegularFileError:
        return None
    if kind == "dicom":
        return "dicomdir" if _is_dicomdir(path) else "dicom"
    if kind == BARE_DICOM:
        return "dicom" if reads_as_bare_dicom(path) else None
    return kind


class NotARegularFileError(OSError):
    """A named pipe, socket or device: reading one can block forever, so it is never opened."""


_SPECIAL_FILES = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"))


def _require_regular(path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "a folder, not a file", str(path))
    kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "a special file")
    raise NotARegularFileError(errno.EINVAL, f"not a regular file ({kind})", str(path))


class RegularFile(io.BufferedReader):
    """A regular file open for reading whose ``read(n)`` never asks for more bytes than are left.

    CPython's ``read(n)`` reserves n bytes before reading, so a corrupt 4 GB element length in a
    few-kilobyte DICOM file would raise MemoryError inside pydicom instead of a short read.
    """

    def __init__(self, raw: io.FileIO):
        super().__init__(raw)
        self.size = os.fstat(raw.fileno()).st_size

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > 0:
            size = min(size, max(0, self.size - self.tell()))
            if size == 0:
                return b""
        return super().read(size)


def open_regular(path, reader: type[RegularFile] = RegularFile) -> RegularFile:
    """Open ``path`` for reading if it is a regular file, without ever blocking.

    Raises ``NotARegularFileError`` (an OSError) for a named pipe, socket or device and
    ``IsADirectoryError`` for a folder. The file is checked before it is opened (opening a
    device can have effects) and again once open with O_NONBLOCK (the name may have been
    replaced in between; O_NONBLOCK keeps the open of a pipe from waiting for a writer).
    ``reader``: the ``RegularFile`` subclass to return.
    """
    _require_regular(path, os.stat(path).st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    raw = io.FileIO(os.fspath(path), "rb", opener=lambda name, _: os.open(name, flags))
    try:
        _require_regular(path, os.fstat(raw.fileno()).st_mode)
        return reader(raw)
    except BaseException:
        raw.close()
        raise


def signature(path) -> str | None:
    """The file type from its first bytes alone: ``'dicom'`` (DICM preamble), ``BARE_DICOM`` (may be
    a DICOM data set without preamble: only a parse can tell), ``'png'``, ``'jpeg'``, ``'tiff'`` or None.

    Opens regular files only (``open_regular``): never blocks on a pipe or device."""
    with open_regular(path) as handle:
        head = handle.read(132)
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(_PNG):
        return "png"
    if head.startswith(_JPEG):
        return "jpeg"
    if head[:4] in _TIFF:
        return "tiff"
    if head[:2] in _BARE_DICOM_GROUPS and _looks_like_bare_dicom(head):
        return BARE_DICOM
    return None


def _is_dicomdir(path) -> bool:
    from pydicom.filereader import read_file_meta_info

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = read_file_meta_info(path)
            # pydicom converts values lazily: a wrong VR (bit flip) raises here, not above
            return str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS
    except Exception:  # noqa: BLE001  a broken meta group is read_image's to report
        return False


def _looks_like_bare_dicom(head: bytes) -> bool:
    """A cheap shape check of the first element of a data set without preamble."""
    if len(head) < 8:
        return False
    explicit_vr = head[4:6]
    looks_explicit = explicit_vr.isalpha() and explicit_vr.isupper()
    little = head[:2] in (b"\x02\x00", b"\x08\x00")
    length = int.from_bytes(head[4:8], "little" if little else "big")
    return looks_explicit or length <= 1024  # implicit VR: the first element is short


def reads_as_bare_dicom(path, ds=None) -> bool:
    """Whether a ``BARE_DICOM`` file is DICOM: pydicom reads its header with ``force=True`` and the
    first element is of group 0002 or 0008. ``ds``: the data set, when the caller has parsed it."""
    if ds is None:
        import pydicom

        try:
            with warnings.catch_warnings(), open_regular(path) as handle:
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(handle, force=True, stop_before_pixels=True)
        except Exception:  # noqa: BLE001  not DICOM after all
            return False
    tags = list(ds.keys())
    return bool(tags) and tags[0].group in (0x0002, 0x0008)


def list_files(folder) -> list[str]:
    """Every file under ``folder``, recursively: paths relative to it, '/'-separated, sorted.

    Hidden names (starting with '.') and their folders are left out; links to folders are not
    followed. All files, whatever their suffix: the caller reads them and reports what is not an
    image. Strings, not Path objects: a few dozen bytes per file, which is all a scoring run
    keeps per file.
    """
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        prefix = os.path.relpath(root, folder).replace(os.sep, "/")
        prefix = "" if prefix == "." else prefix + "/"
        found.extend(prefix + n for n in names if not n.startswith("."))
    return sorted(found)
