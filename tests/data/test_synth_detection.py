import numpy as np
import pandas as pd
import pydicom
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.data.shortcut import global_statistics_auc
from tfxray.data import SYNTH_TASKS
from tfxray.data.manifest import load_manifest
from tfxray.data.synth import TASKS, synthesize
from tfxray.data.synth_detection import (

    DIFFICULTIES,
    SKELETON_SITES,
    pelvis_study,
    pelvis_subject,
    render_pelvis,
    render_skeleton,
    skeleton_study,
    skeleton_subject,
)


@pytest.fixture(scope="module")
def pelvis_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pelvis")
    return folder, synthesize(folder, task="pelvis", n=60, seed=0, size=96, progress=False)


@pytest.fixture(scope="module")
def skeleton_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("skeleton")
    return folder, synthesize(folder, task="skeleton", n=80, seed=0, size=96, progress=False)


def test_tasks_are_registered():
    assert {"pelvis", "skeleton"} <= set(TASKS) and TASKS.keys() == SYNTH_TASKS.keys()


def test_pelvis_manifest_one_row_per_fracture(pelvis_set):
    folder, manifest = pelvis_set
    on_disk = pd.read_csv(folder / "manifest.csv")
    assert list(on_disk.columns) == [
        "path", "label", "patient_id", "study_id", "x1", "y1", "x2", "y2", "side", "difficulty"
    ]
    assert on_disk.path.nunique() == 60
    normals = on_disk[on_disk.label == "normal"]
    assert normals.path.is_unique and normals[["x1", "y1", "x2", "y2", "side", "difficulty"]].isna().all().all()
    fractures = on_disk[on_disk.label == "fracture"]
    assert fractures[["x1", "y1", "x2", "y2"]].notna().all().all()
    assert ((fractures.x2 > fractures.x1) & (fractures.y2 > fractures.y1)).all()
    assert ((fractures[["x1", "y1"]] >= 0).all().all() and (fractures[["x2", "y2"]] <= 96).all().all())
    per_image = fractures.groupby("path")
    assert set(per_image.size()) == {1, 2}  # one or both femoral necks
    assert (per_image.side.nunique() == per_image.size()).all()  # two boxes: one per side
    assert set(fractures.side) == {"left", "right"} and set(fractures.difficulty) == set(DIFFICULTIES)
    # the patient's right is on the image's left: its boxes lie left of the middle
    right = fractures[fractures.side == "right"]
    assert ((right.x1 + right.x2) / 2 < 48).all() and ((fractures[fractures.side == "left"].x1) > 48).all()


def test_manifest_with_several_boxes_per_image_loads(pelvis_set):
    folder, table = pelvis_set
    manifest = load_manifest(folder / "manifest.csv")  # the extra columns (side, difficulty) are dropped
    assert len(manifest.images) == table.path.nunique()
    assert len(manifest.boxes) == table.x1.notna().sum()
    assert manifest.classes == ["fracture", "normal"]
    two = table[table.x1.notna()].groupby("path").size().idxmax()
    assert manifest.boxes_for(str(folder / two)).shape == (2, 4)


def test_patients_and_studies_are_planned_as_the_other_tasks(pelvis_set, skeleton_set):
    for _, table in (pelvis_set, skeleton_set):
        images = table.drop_duplicates("path")
        assert images.groupby("study_id").label.nunique().max() == 1  # the label is the study's
        assert images.groupby("study_id").patient_id.nunique().max() == 1
        assert images.patient_id.nunique() < images.study_id.nunique() <= len(images)  # some patients come back


def test_skeleton_sites_and_studies(skeleton_set):
    folder, table = skeleton_set
    assert list(table.columns) == [
        "path", "label", "patient_id", "study_id", "site", "x1", "y1", "x2", "y2", "difficulty"
    ]
    assert set(table.site) == set(SKELETON_SITES)
    assert (table.groupby("study_id").site.nunique() == 1).all()  # a study is one site
    fractures = table[table.label == "fracture"]
    assert fractures[["x1", "y1", "x2", "y2", "difficulty"]].notna().all().all()
    assert set(fractures.difficulty) == set(DIFFICULTIES)
    # the views of a study show the same fracture: same count and grades
    grades = fractures.groupby(["study_id", "path"]).difficulty.apply(lambda g: tuple(sorted(g)))
    assert (grades.groupby("study_id").nunique() == 1).all()
    assert table[table.label == "normal"].x1.isna().all()


def test_same_seed_same_images(tmp_path):
    for task in ("pelvis", "skeleton"):
        a = synthesize(tmp_path / task / "a", task=task, n=5, seed=3, size=48, progress=False)
        b = synthesize(tmp_path / task / "b", task=task, n=5, seed=3, size=48, progress=False)
        c = synthesize(tmp_path / task / "c", task=task, n=5, seed=4, size=48, progress=False)
        pd.testing.assert_frame_equal(a, b)
        for path in a.path.unique():
            pixels = [np.array(Image.open(tmp_path / task / copy / path)) for copy in ("a", "b")]
            assert np.array_equal(*pixels)
        assert not np.array_equal(np.array(Image.open(tmp_path / task / "a" / a.path[0])),
                                  np.array(Image.open(tmp_path / task / "c" / c.path[0])))


def _pair(task: str, seed: int, difficulty: str, size: int, site: str | None = None):
    """The same image rendered with and without its fracture: the difference is the fracture alone."""
    rng = np.random.default_rng(seed)
    if task == "pelvis":
        subject = {**pelvis_subject(rng), "study": pelvis_study(rng, difficulty=difficulty)}
        render = render_pelvis
    else:
        subject = {**skeleton_subject(rng), "study": skeleton_study(rng, site=site, difficulty=difficulty)}
        render = render_skeleton
    broken = render(np.random.default_rng(seed + 1), size, True, subject)
    whole = render(np.random.default_rng(seed + 1), size, False, subject)
    assert whole.findings == [] and whole.box is None
    return broken, np.abs(broken.pixels.astype(np.float64) - whole.pixels)


def _box_mask(findings, shape):
    mask = np.zeros(shape, bool)
    for finding in findings:
        x1, y1, x2, y2 = finding.box
        mask[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = True
    return mask


CASES = [("pelvis", None)] + [("skeleton", site) for site in SKELETON_SITES]


@pytest.mark.parametrize("task, site", CASES)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_boxes_sit_on_the_fractures(task, site, difficulty):
    for seed in range(2):
        broken, change = _pair(task, seed, difficulty, 128, site)
        assert broken.findings and all(f.tags["difficulty"] == difficulty for f in broken.findings)
        for finding in broken.findings:  # every box holds part of the change
            assert change[_box_mask([finding], change.shape)].max() > 0.03
        inside = _box_mask(broken.findings, change.shape)
        if difficulty == "displaced":  # the whole fragment moves, but the break itself is boxed
            assert change[inside].max() >= 0.75 * change.max()
        else:  # a line without displacement changes nothing outside its boxes
            assert change[~inside].max() < 0.01


def test_grades_order_by_contrast():
    peak = {d: np.median([_pair("pelvis", seed, d, 128)[1].max() for seed in range(6)]) for d in DIFFICULTIES}
    assert peak["displaced"] > peak["undisplaced"] > peak["subtle"] > 0.03


def test_subtle_fractures_stay_visible_at_256():
    for seed in range(3):
        broken, change = _pair("pelvis", seed, "subtle", 256)
        inside = _box_mask(broken.findings, change.shape)
        assert change[inside].max() > 0.04  # several times the quantum noise (sd 0.008-0.018)


@pytest.mark.parametrize("task", ["pelvis", "skeleton"])
def test_no_shortcut_from_global_image_statistics(tmp_path, task):
    """A logistic regression on global statistics stays near chance (AUC <= 0.65): the fracture must be found."""
    manifest = synthesize(tmp_path, task=task, n=120, seed=0, size=128, progress=False).drop_duplicates("path")
    auc = global_statistics_auc(tmp_path, manifest)
    assert auc <= 0.65, auc


def test_cli_and_dicom(tmp_path):
    from tfxray.cli.main import cli

    result = CliRunner().invoke(cli, ["synth", str(tmp_path / "png"), "--task", "pelvis", "--n", "4", "--size", "48"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "png" / "manifest.csv").is_file()
    table = synthesize(tmp_path / "dcm", task="skeleton", n=4, seed=1, size=48, fmt="dicom", progress=False)
    ds = pydicom.dcmread(tmp_path / "dcm" / table.path[0])
    assert ds.BodyPartExamined == "EXTREMITY" and ds.Rows == 48
