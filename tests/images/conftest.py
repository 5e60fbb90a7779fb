"""Small DICOM/raster files built in tmp_path, and pydicom's own test files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

TEST_FILES = Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"


def pydicom_file(name: str) -> Path:
    path = TEST_FILES / name
    if not path.is_file():
        pytest.skip(f"pydicom test file {name} not shipped with this pydicom")
    return path


def make_dicom(path: Path, stored: np.ndarray, *, photometric: str = "MONOCHROME2", bits_stored: int | None = None,
               signed: bool = False, syntax=ExplicitVRLittleEndian, preamble: bool = True, **elements) -> Path:
    """Write a minimal but valid image object; ``elements`` are extra keyword=value pairs."""
    stored = np.asarray(stored)
    frames = stored.shape[0] if (stored.ndim == 3 and photometric != "RGB") or stored.ndim == 4 else 1
    samples = 3 if photometric in ("RGB", "YBR_FULL") else 1
    bits_allocated = stored.dtype.itemsize * 8

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image, for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P001"
    ds.PatientBirthDate = "19700101"
    ds.InstitutionName = "Saint Nowhere Hospital"
    ds.StudyDescription = "WRIST LEFT two views"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = stored.shape[-3:-1] if samples == 3 else stored.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = samples
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored or bits_allocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:  # a bare data set: no preamble, no file meta, implicit VR little endian
        del ds.file_meta
        ds.save_as(path, implicit_vr=True, little_endian=True)
    return path


@pytest.fixture
def dicom_file(tmp_path):
    counter = iter(range(10_000))

    def build(stored, **kwargs) -> Path:
        return make_dicom(tmp_path / f"image{next(counter)}", stored, **kwargs)

    return build
