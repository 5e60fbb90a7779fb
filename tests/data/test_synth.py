import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

from click.testing import CliRunner

from tests.data.shortcut import global_statistics_auc
from tfxray.cli.main import cli
from tfxray.data.synth import GRADES, MIXES, Mix, _rng, draw_grade, parse_mix, synthesize
from tfxray.errors import UserError


def test_manifest_columns_patients_and_boxes(wrist_png):
    folder, manifest = wrist_png
    on_disk = pd.read_csv(folder / "manifest.csv")
    assert list(on_disk.columns) == ["path", "label", "patient_id", "study_id", "difficulty", "x1", "y1", "x2", "y2"]
    assert set(on_disk.label) == {"normal", "fracture"}
    per_patient = on_disk.groupby("patient_id").size()
    assert per_patient.max() >= 2 and len(per_patient) < len(on_disk)  # several images per patient
    fractures = on_disk[on_disk.label == "fracture"]
    assert fractures[["x1", "y1", "x2", "y2"]].notna().all().all()
    assert on_disk.loc[on_disk.label == "normal", "x1"].isna().all()
    assert ((fractures.x2 > fractures.x1) & (fractures.y2 > fractures.y1)).all()
    assert set(fractures.difficulty) <= set(GRADES) and on_disk.loc[on_disk.label == "normal", "difficulty"].isna().all()


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


@pytest.mark.parametrize("mix", [None, "easy", "hard", "displaced:1,overlap:1,exposure:0.5,noise:3"])
def test_no_shortcut_from_global_image_statistics(tmp_path, mix):
    """A logistic regression on global statistics stays near chance (AUC <= 0.65), whatever the mix:
    mimics, exposure and noise are drawn alike for both classes."""
    manifest = synthesize(tmp_path, n=300, seed=0, size=128, difficulty=mix, progress=False)
    auc = global_statistics_auc(tmp_path, manifest)
    assert auc <= 0.65, auc


# --------------------------------------------------------------------------- difficulty mix (wrist)


def _study_grades(manifest):
    fractures = manifest[manifest.label == "fracture"]
    assert (fractures.groupby("study_id").difficulty.nunique() == 1).all()  # a study's views share its grade
    return fractures.drop_duplicates("study_id").set_index("study_id").difficulty


@pytest.mark.parametrize("text, weights", [
    (None, MIXES["default"].weights),
    ("hard", MIXES["hard"].weights),
    ("displaced:0.3,undisplaced:0.4,subtle:0.3", (0.3, 0.4, 0.3)),
    ("displaced:1,subtle:3", (0.25, 0.0, 0.75)),  # relative weights; a grade left out weighs 0
])
def test_the_mix_is_honoured(tmp_path, text, weights):
    manifest = synthesize(tmp_path, n=1500, seed=5, size=32, difficulty=text, progress=False)
    grades = _study_grades(manifest)
    # each fracture study's grade is the mix's grade of its own uniform draw
    expected = {sid: draw_grade(_rng(5, "wrist", "difficulty", sid).random(), parse_mix(text)) for sid in grades.index}
    assert grades.to_dict() == expected
    counts = grades.value_counts()
    n = len(grades)
    for grade, weight in zip(GRADES, weights):
        if weight == 0:
            assert grade not in counts  # never drawn
        else:
            share, se = counts.get(grade, 0) / n, np.sqrt(weight * (1 - weight) / n)
            assert abs(share - weight) < 4 * se, (grade, share, weight)


def test_mix_counts_for_a_seed(tmp_path):
    """The counts per grade of one seed, pinned: a change to the draws shows here."""
    manifest = synthesize(tmp_path, n=200, seed=0, size=32, progress=False)
    images = manifest.drop_duplicates("path")
    assert images.difficulty.value_counts().to_dict() == {"displaced": 57, "undisplaced": 40, "subtle": 11}
    assert _study_grades(manifest).value_counts().to_dict() == {"displaced": 30, "undisplaced": 22, "subtle": 5}
    single = synthesize(tmp_path / "d", n=200, seed=0, size=32, difficulty="displaced:1", progress=False)
    assert set(single.difficulty.dropna()) == {"displaced"}
    assert single.label.tolist() == manifest.label.tolist()  # the mix changes grades, not the plan


def test_mix_is_deterministic_and_changes_only_what_it_says(tmp_path):
    def pixels(folder, path):
        return np.array(Image.open(folder / path))

    mix = "displaced:0.2,undisplaced:0.3,subtle:0.5,overlap:0.6,noise:2"
    a = synthesize(tmp_path / "a", n=20, seed=7, size=48, difficulty=mix, progress=False)
    b = synthesize(tmp_path / "b", n=20, seed=7, size=48, difficulty=parse_mix(mix), progress=False)
    pd.testing.assert_frame_equal(a, b)
    assert all(np.array_equal(pixels(tmp_path / "a", p), pixels(tmp_path / "b", p)) for p in a.path)
    # other grade weights, the same conditions: normal images are the same, fractures change only in grade
    c = synthesize(tmp_path / "c", n=20, seed=7, size=48, difficulty="subtle:1,overlap:0.6,noise:2", progress=False)
    normals = a.path[a.label == "normal"]
    assert len(normals) and all(np.array_equal(pixels(tmp_path / "a", p), pixels(tmp_path / "c", p)) for p in normals)
    assert set(c.difficulty.dropna()) == {"subtle"} and a.label.tolist() == c.label.tolist()
    # other conditions: the images change
    d = synthesize(tmp_path / "d", n=20, seed=7, size=48, difficulty="easy", progress=False)
    assert not all(np.array_equal(pixels(tmp_path / "a", p), pixels(tmp_path / "d", p)) for p in normals)


def test_parse_mix():
    assert parse_mix(None) == parse_mix("") == parse_mix("default") == MIXES["default"]
    assert parse_mix("HARD") == MIXES["hard"]
    assert parse_mix("displaced:2, undisplaced=2") == Mix((0.5, 0.5, 0.0), **{
        k: getattr(MIXES["default"], k) for k in ("overlap", "exposure", "noise")})
    changed = parse_mix("hard,overlap:0,noise:1")
    assert changed.weights == MIXES["hard"].weights and (changed.overlap, changed.noise) == (0.0, 1.0)
    assert changed.exposure == MIXES["hard"].exposure
    assert parse_mix(MIXES["easy"].describe()) == MIXES["easy"]  # the report's resolved form reads back


BAD_MIXES = [
    ("medium", "unknown mix 'medium' (valid: easy, default, hard"),
    ("displaced:x", "displaced: expected a number, got 'x'"),
    ("displaced:nan", "displaced: expected a finite number"),
    ("subtle:-1", "subtle: a weight cannot be negative"),
    ("displaced:0,subtle:0", "the grade weights sum to 0"),
    ("overlap:1.5", "overlap: expected 0 to 1, got 1.5"),
    ("noise:0.5", "noise: expected 1 to 10, got 0.5"),
    ("hairline:1", "unknown key 'hairline' (grades: displaced, undisplaced, subtle; conditions: overlap"),
    ("easy,hard", "'hard' is not KEY:VALUE"),
    ("subtle:1,subtle:2", "'subtle' given twice"),
    ("subtle:1,,", "empty item"),
]


@pytest.mark.parametrize("text, message", BAD_MIXES)
def test_bad_mix_is_one_line_error(tmp_path, text, message):
    with pytest.raises(UserError, match="^--difficulty: " + __import__("re").escape(message)):
        parse_mix(text)
    result = CliRunner().invoke(cli, ["synth", str(tmp_path / "d"), "--n", "2", "--size", "32", "--difficulty", text])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --difficulty: ") and message in lines[0], result.output
    assert not (tmp_path / "d").exists()  # refused before anything is written


def test_difficulty_only_for_wrist(tmp_path):
    with pytest.raises(UserError, match="--difficulty: only the wrist task takes a mix, not pelvis"):
        synthesize(tmp_path, task="pelvis", n=2, difficulty="easy", progress=False)


def test_synth_command_reports_grades(tmp_path):
    result = CliRunner().invoke(cli, ["synth", str(tmp_path / "d"), "--n", "30", "--size", "32",
                                      "--difficulty", "undisplaced:1"])
    assert result.exit_code == 0, result.output
    fractures = pd.read_csv(tmp_path / "d" / "manifest.csv").query("label == 'fracture'")
    assert f"fracture grades: displaced: 0, undisplaced: {len(fractures)}, subtle: 0" in result.output


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
