"""Header spellings: a misspelt patient column must never turn a patient-grouped split into an image-grouped one."""

import pandas as pd
import pytest

from tfxray.data.manifest import load_manifest
from tfxray.errors import UserError


def manifest_with(tmp_path, header: str, ids=("007", "007", "12", "12")):
    for name in "abcd":
        (tmp_path / f"{name}.png").write_bytes(b"x")
    rows = {"path": [f"{n}.png" for n in "abcd"], "label": ["normal", "fracture"] * 2, header: list(ids)}
    path = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("header", ["patient_id", "patientid", "PatientID", "patient", "Patient ID", "patient-id",
                                    "PATIENT_ID", "subject_id"])
def test_usual_spellings_of_the_patient_column_are_read_as_patient_id(tmp_path, header):
    manifest = load_manifest(manifest_with(tmp_path, header), classes=["normal", "fracture"])
    assert manifest.images["patient_id"].tolist() == ["007", "007", "12", "12"]  # read as text
    assert manifest.group_by == "patient_id"


@pytest.mark.parametrize(("header", "column"), [("StudyInstanceUID", "study_id"), ("Study ID", "study_id"),
                                                ("series", "series_id"), ("SeriesInstanceUID", "series_id")])
def test_study_and_series_spellings(tmp_path, header, column):
    manifest = load_manifest(manifest_with(tmp_path, header), classes=["normal", "fracture"])
    assert manifest.images[column].tolist() == ["007", "007", "12", "12"]


@pytest.mark.parametrize(("header", "column"), [("patinet_id", "patient_id"), ("pateint", "patient_id"),
                                                ("stdy_id", "study_id"), ("folds", "fold")])
def test_a_header_one_slip_from_a_column_is_refused_naming_it(tmp_path, header, column):
    with pytest.raises(UserError) as caught:
        load_manifest(manifest_with(tmp_path, header), classes=["normal", "fracture"])
    assert str(caught.value) == (f"{tmp_path / 'm.csv'}: column {header!r} is not one tfxray reads "
                                 f"(did you mean {column!r}?); rename it")


def test_unrelated_columns_pass_and_two_spellings_of_one_column_are_refused(tmp_path):
    path = manifest_with(tmp_path, "Patient ID")
    table = pd.read_csv(path, dtype=str).assign(age=[50, 51, 60, 61], folder="x", patient_age=1, study_date="2020")
    table.to_csv(path, index=False)
    assert load_manifest(path).group_by == "patient_id"
    table.assign(**{"patient-id": "P"}).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"columns 'Patient ID', 'patient-id' all name patient_id; keep one$"):
        load_manifest(path)
    # the exact name wins over an alias, which stays an ordinary column
    table.rename(columns={"Patient ID": "patient_id"}).assign(patient="Name").to_csv(path, index=False)
    assert load_manifest(path).images["patient_id"].tolist() == ["007", "007", "12", "12"]


def test_without_patients_the_unit_falls_back_to_study_then_image(tmp_path):
    assert load_manifest(manifest_with(tmp_path, "study")).group_by == "study_id"
    assert load_manifest(manifest_with(tmp_path, "view", ids=list("LRLR"))).group_by == "image"
    # an empty patient column names no patient
    path = manifest_with(tmp_path, "study_id")
    pd.read_csv(path, dtype=str).assign(patient_id="").to_csv(path, index=False)
    manifest = load_manifest(path)
    assert "patient_id" not in manifest.images.columns and manifest.group_by == "study_id"
