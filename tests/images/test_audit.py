"""tfxray inspect: the audit table, its summary and the command."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tfxray.errors import UserError
from tfxray.images.audit import audit_folder, audit_problems, summarize_audit, write_audit

from .conftest import make_dicom, pydicom_file


@pytest.fixture
def export(tmp_path):
    folder = tmp_path / "export"
    (folder / "study1").mkdir(parents=True)
    make_dicom(folder / "study1" / "IM1", np.arange(16, dtype=np.uint16).reshape(4, 4), bits_stored=12)
    shutil.copy(folder / "study1" / "IM1", folder / "study1" / "IM1-copy")  # same SOP instance UID
    make_dicom(folder / "study1" / "IM2", np.zeros((3, 5), np.uint16), photometric="MONOCHROME1")
    data = make_dicom(tmp_path / "other", np.zeros((3, 5), np.uint16)).read_bytes()
    (folder / "broken").write_bytes(data[:-10])
    Image.fromarray(np.zeros((6, 7), np.uint16)).save(folder / "x.png")
    (folder / "notes.txt").write_text("Doe^Jane was here")
    shutil.copy(pydicom_file("dicomdirtests/DICOMDIR"), folder / "DICOMDIR")
    return folder


def test_audit_table(export):
    table = audit_folder(export)
    rows = table.set_index("path")
    assert list(rows.index) == sorted(rows.index)
    assert len(table) == 7
    assert rows.loc["study1/IM1", "status"] == "ok" and rows.loc["study1/IM1", "kind"] == "dicom"
    assert rows.loc["study1/IM1", "modality"] == "DX" and rows.loc["study1/IM1", "bits_stored"] == 12
    assert rows.loc["study1/IM1", "transfer_syntax"] == "Explicit VR Little Endian"
    assert (rows.loc["study1/IM1", "rows"], rows.loc["study1/IM1", "cols"]) == (4, 4)
    assert rows.loc["study1/IM2", "photometric"] == "MONOCHROME1"
    assert rows.loc["broken", "status"] == "error" and "pixel data truncated" in rows.loc["broken", "reason"]
    assert rows.loc["broken", "modality"] == "DX"  # the header still says what it was
    assert rows.loc["notes.txt", "status"] == "skipped" and rows.loc["notes.txt", "kind"] == "other"
    assert rows.loc["DICOMDIR", "kind"] == "dicomdir" and rows.loc["DICOMDIR", "status"] == "skipped"
    assert rows.loc["x.png", "kind"] == "png" and rows.loc["x.png", "bits_stored"] == 16
    assert set(table.loc[table["duplicate_sop"], "path"]) == {"study1/IM1", "study1/IM1-copy"}
    assert "Doe" not in table.to_csv()


def test_audit_manifest_leaks(export, tmp_path):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"path": ["export/study1/IM1", "export/study1/IM2", "export/x.png", "export/gone.png"],
                  "split": ["train", "test", "train", "val"],
                  "patient_id": ["P1", "P1", "P2", "P3"]}).to_csv(manifest, index=False)
    table = audit_folder(export, manifest)
    assert table.attrs["leaking_patients"] == ["P1"]
    assert table.attrs["manifest_missing"] == ["export/gone.png"]
    rows = table.set_index("path")
    assert rows.loc["study1/IM2", "split"] == "test" and bool(rows.loc["study1/IM2", "leaking_patient"])
    assert not rows.loc["x.png", "leaking_patient"] and not rows.loc["notes.txt", "in_manifest"]
    lines = "\n".join(summarize_audit(table))
    assert "more than one split: 1 (P1)" in lines
    assert "duplicate SOP instance UIDs: 1 UID(s) shared by 2 files" in lines
    assert "pixel data truncated" in lines and "DICOMDIR" in lines
    assert "by modality: DX 3" in lines
    assert audit_problems(table) == 1 + 2 + 1


def test_audit_fold_column_and_bad_manifest(export, tmp_path):
    folds = pd.DataFrame({"path": ["study1/IM1", "study1/IM2"], "fold": ["0", "1"], "patient_id": ["A", "A"]})
    assert audit_folder(export, folds).attrs["leaking_patients"] == ["A"]
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nx.png,1\n")
    with pytest.raises(UserError, match="missing column"):
        audit_folder(export, bad)


def test_audit_missing_folder(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        audit_folder(tmp_path / "nope")


def test_write_audit_atomic(export, tmp_path):
    out = tmp_path / "reports" / "audit.csv"
    write_audit(audit_folder(export), out)
    assert pd.read_csv(out)["path"].tolist()[0] == "DICOMDIR"
    assert [p.name for p in out.parent.iterdir()] == ["audit.csv"]  # no temporary file left behind


def test_inspect_command(export, tmp_path):
    from click.testing import CliRunner

    from tfxray.cli.inspect import inspect_command

    out = tmp_path / "audit.csv"
    runner = CliRunner()
    result = runner.invoke(inspect_command, [str(export), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "files: 7" in result.output and out.is_file()
    assert "Doe" not in result.output
    strict = runner.invoke(inspect_command, [str(export), "--out", str(out), "--no-progress", "--strict"])
    assert strict.exit_code == 1
    assert "Example" in runner.invoke(inspect_command, ["--help"]).output
