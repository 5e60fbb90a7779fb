
import numpy as np
import pandas as pd
import pydicom
import pytest

from tests.folder_helpers import BROKEN_PNG, copy_images
from tfxray.data.inputs import load_input
from tfxray.errors import UserError
from tfxray.models.bundle import load_bundle
from tfxray.scoring.batch import hash_id, in_shard, parse_shard, rollup_path, score_folder


@pytest.fixture()
def inbox(tmp_path, wrist_png, wrist_dicom):
    folder = tmp_path / "inbox"
    png_dir, png_manifest = wrist_png
    dcm_dir, dcm_manifest = wrist_dicom
    copy_images(png_dir, png_manifest.path[:6], folder / "png")
    # no suffix, as PACS exports
    copy_images(dcm_dir, dcm_manifest.path[:6], folder / "dicom", names=[f"IM{i:04d}" for i in range(6)])
    (folder / "broken.png").write_bytes(BROKEN_PNG)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_one_row_per_file_with_errors_as_rows(tiny_run, inbox, tmp_path):
    out = tmp_path / "scores.csv"
    summary = score_folder(tiny_run, inbox, out, batch_size=4, progress=False)
    table = pd.read_csv(out, keep_default_na=False)
    files = sorted(p.relative_to(inbox).as_posix() for p in inbox.rglob("*") if p.is_file())
    assert sorted(table.path) == files
    assert table.path.is_unique
    status = dict(zip(table.path, table.status))
    assert status["broken.png"] == "error" and status["notes.txt"] == "skipped"
    assert sum(s == "ok" for s in status.values()) == 12
    assert (summary.scored, summary.errors, summary.skipped) == (12, 1, 1)
    broken = table[table.path == "broken.png"].iloc[0]
    assert broken.error and "\n" not in broken.error


def test_an_out_inside_the_scored_folder_never_scores_its_own_files(tiny_run, inbox, tmp_path, wrist_png):
    out = inbox / "results" / "scores.csv"
    first = score_folder(tiny_run, inbox, out, batch_size=4, progress=False)
    assert (first.scored, first.errors, first.skipped) == (12, 1, 1)  # as with --out outside the folder
    png_dir, manifest = wrist_png
    copy_images(png_dir, manifest.path[6:8], inbox / "later")
    # the rerun sees scores.csv, scores_rollup.csv and (while it runs) scores.csv.lock in the folder
    again = score_folder(tiny_run, inbox, out, batch_size=4, progress=False, resume=True)
    # a resume scores the CSV's last file again (its rows may be torn), and the two new ones
    assert (again.total, again.already_done, again.scored, again.skipped) == (16, 13, 3, 0)
    table = pd.read_csv(out, keep_default_na=False)
    assert not table.path.str.startswith("results/").any() and len(table) == 16 and table.path.is_unique


def test_scores_equal_the_model_on_the_same_images(tiny_run, inbox, tmp_path):
    out = tmp_path / "scores.csv"
    score_folder(tiny_run, inbox, out, batch_size=5, progress=False)
    table = pd.read_csv(out, keep_default_na=False)
    ok = table[table.status == "ok"]
    bundle = load_bundle(tiny_run)
    from tfxray.models.inference import geometry_of

    images = np.stack([load_input(str(inbox / p), geometry_of(bundle))[0] for p in ok.path])
    expected = np.asarray(bundle.model(images))[:, 0]
    np.testing.assert_allclose(ok.score.astype(float), expected, atol=1e-5)
    calls = np.where(expected >= bundle.meta.threshold, "fracture", "normal")
    assert list(ok.call) == list(calls)


def test_dicom_rows_carry_uids_but_never_names(tiny_run, inbox, tmp_path):
    out = tmp_path / "scores.csv"
    score_folder(tiny_run, inbox, out, progress=False)
    text = out.read_text()
    assert "Phantom^" not in text  # the synthetic PatientName
    table = pd.read_csv(out, keep_default_na=False)
    dicom = table[table.path.str.startswith("dicom/")]
    ds = pydicom.dcmread(inbox / dicom.path.iloc[0])
    assert dicom.sop_instance_uid.iloc[0] == ds.SOPInstanceUID
    assert dicom.patient_id.iloc[0] == ds.PatientID


def test_hash_ids(tiny_run, inbox, tmp_path):
    out = tmp_path / "scores.csv"
    score_folder(tiny_run, inbox, out, hash_ids=True, salt="s3cret", progress=False)
    table = pd.read_csv(out, keep_default_na=False, dtype=str)
    dicom = table[table.path.str.startswith("dicom/")]
    ds = pydicom.dcmread(inbox / dicom.path.iloc[0])
    assert dicom.patient_id.iloc[0] == hash_id(ds.PatientID, "s3cret") != ds.PatientID
    assert ds.PatientID not in set(table.patient_id) | set(table.study_id)
    with pytest.raises(UserError, match="salt"):
        score_folder(tiny_run, inbox, tmp_path / "other.csv", hash_ids=True, progress=False)


def test_resume_after_a_torn_write_gives_each_file_once(tiny_run, inbox, tmp_path):
    out = tmp_path / "scores.csv"
    score_folder(tiny_run, inbox, out, progress=False)
    full = pd.read_csv(out, keep_default_na=False)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:5]) + lines[5][:7])  # killed mid-row
    with pytest.raises(UserError, match="--resume"):
        score_folder(tiny_run, inbox, out, progress=False)
    score_folder(tiny_run, inbox, out, resume=True, progress=False)
    resumed = pd.read_csv(out, keep_default_na=False)
    assert resumed.path.is_unique and sorted(resumed.path) == sorted(full.path)
    merged = resumed.set_index("path").loc[full.path]
    np.testing.assert_allclose(
        pd.to_numeric(merged.score, errors="coerce").fillna(-1), pd.to_numeric(full.score, errors="coerce").fillna(-1).to_numpy(), atol=1e-6
    )


def test_shards_partition_the_folder(tiny_run, inbox, tmp_path):
    paths = []
    for i in (1, 2, 3):
        out = tmp_path / f"s{i}.csv"
        score_folder(tiny_run, inbox, out, shard=(i, 3), progress=False)
        paths += list(pd.read_csv(out).path)
    assert sorted(paths) == sorted(p.relative_to(inbox).as_posix() for p in inbox.rglob("*") if p.is_file())
    assert len(paths) == len(set(paths))
    assert parse_shard("2/4") == (2, 4)
    with pytest.raises(UserError):
        parse_shard("5/4")
    assert sum(in_shard(f"f{i}", (k, 4)) for i in range(100) for k in range(1, 5)) == 100


def test_rollups_per_study_and_patient(tiny_run, inbox, tmp_path):
    out = tmp_path / "scores.csv"
    score_folder(tiny_run, inbox, out, aggregate="max", progress=False)
    scores = pd.read_csv(out, keep_default_na=False, dtype={"patient_id": str})
    rollup = pd.read_csv(rollup_path(out), dtype={"id": str})
    ok = scores[(scores.status == "ok") & (scores.patient_id != "")]
    for patient, group in ok.groupby("patient_id"):
        row = rollup[(rollup.level == "patient") & (rollup.id == patient)].iloc[0]
        assert row.score == pytest.approx(group.score.astype(float).max(), abs=1e-6)
        assert row.n_files == len(group)
