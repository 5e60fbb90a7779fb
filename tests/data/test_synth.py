import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

from tests.data.shortcut import global_statistics_auc
from tfxray.data.synth import synthesize
from tfxray.errors import UserError



def test_manifest_columns_patients_and_boxes(wrist_png):
    folder, manifest = wrist_png
    on_disk = pd.read_csv(folder / "manifest.csv")
    assert list(on_disk.columns) == ["path", "label", "patient_id", "study_id", "x1", "y1", "x2", "y2"]
    assert set(on_disk.label) == {"normal", "fracture"}
    per_patient = on_disk.groupby("patient_id").size()
    assert per_patient.max() >= 2 and len(per_patient) < len(on_disk)  # several images per patient
    fractures = on_disk[on_disk.label == "fracture"]
    assert fractures[["x1", "y1", "x2", "y2"]].notna().all().all()
    assert on_disk.loc[on_disk.label == "normal", "x1"].isna().all()
    assert ((fractures.x2 > fractures.x1) & (fractures.y2 > fractures.y1)).all()


def test_png_output_is_16_bit(wrist_png):
    folder, manifest = wrist_png
    image = Image.open(folder / manifest.path[0])
    values = np.array(image)
    assert image.mode.startswith("I;16") or values.dtype == np.uint16
    assert values.max() > 255  # real 16-bit range, not 8 bits in a 16-bit box


def test_deterministic_for_a_seed(tmp_path):
    a = synthesize(tmp_path / "a", n=6, seed=3, size=48, progress=False)
    b = synthesize(tmp_path / "b", n=6, seed=3, size=48, progress=False)
    c = synthesize(tmp_path / "c", n=6, seed=4, size=48, progress=False)
    pd.testing.assert_frame_equal(a, b)
    same = [np.array_equal(np.array(Image.open(tmp_path / "a" / p)), np.array(Image.open(tmp_path / "b" / p))) for p in a.path]
    assert all(same)
    first_c = np.array(Image.open(tmp_path / "c" / c.path[0]))
    assert not np.array_equal(np.array(Image.open(tmp_path / "a" / a.path[0])), first_c)


def test_dicom_round_trip(wrist_dicom):
    folder, manifest = wrist_dicom
    photometric = []
    for path in manifest.path:
        ds = pydicom.dcmread(folder / path)
        assert ds.BitsStored == 12 and ds.BitsAllocated == 16
        assert ds.pixel_array.max() <= 4095
        assert "RescaleSlope" in ds and "RescaleIntercept" in ds
        assert "WindowCenter" in ds and "WindowWidth" in ds
        assert ds.PatientID == manifest.loc[manifest.path == path, "patient_id"].item()
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        photometric.append(ds.PhotometricInterpretation)
    assert "MONOCHROME1" in photometric and "MONOCHROME2" in photometric


def test_no_shortcut_from_global_image_statistics(tmp_path):
    """A logistic regression on global statistics stays near chance (AUC <= 0.65)."""
    manifest = synthesize(tmp_path, n=300, seed=0, size=128, progress=False)
    auc = global_statistics_auc(tmp_path, manifest)
    assert auc <= 0.65, auc


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="--task"):
        synthesize(tmp_path, task="knee", n=2, progress=False)
    with pytest.raises(UserError, match="--format"):
        synthesize(tmp_path, fmt="jpeg", n=2, progress=False)


def test_spine_and_ct_tasks(tmp_path):
    spine = synthesize(tmp_path / "spine", task="spine", n=12, seed=0, size=96, progress=False)
    assert set(spine.label) <= {"normal", "fracture"}
    assert spine.loc[spine.label == "fracture", "x1"].notna().all()
    ct = synthesize(tmp_path / "ct", task="ct", n=20, seed=0, size=64, progress=False)
    assert set(ct.label) <= {"benign", "malignant"}
    assert {"series_id", "slice_index"} <= set(ct.columns)
    assert ct[["x1", "y1", "x2", "y2"]].notna().all().all()  # a region of interest on every slice
    for _, series in ct.groupby("series_id"):
        assert list(series.slice_index) == list(range(len(series)))
        assert series.label.nunique() == 1 and series.patient_id.nunique() == 1


def test_ct_dicom_carries_slice_positions(tmp_path):
    ct = synthesize(tmp_path, task="ct", n=6, seed=0, size=48, fmt="dicom", progress=False)
    positions = [float(pydicom.dcmread(tmp_path / p).ImagePositionPatient[2]) for p in ct.path]
    series = [pydicom.dcmread(tmp_path / p).SeriesInstanceUID for p in ct.path]
    assert positions == [3.0 * i for i in ct.slice_index]
    assert len(set(series)) == ct.series_id.nunique()
