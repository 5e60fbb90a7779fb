from pathlib import Path

import pandas as pd
import pytest

from tfxray.data.manifest import load_manifest
from tfxray.errors import UserError


def write(tmp_path, rows, name="manifest.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def touch(tmp_path, *names):
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")


def test_relative_paths_resolve_against_the_csv_folder(tmp_path):
    touch(tmp_path, "img/a.png", "img/b.png")
    path = write(tmp_path, [{"path": "img/a.png", "label": "normal"}, {"path": "img/b.png", "label": "fracture"}])
    manifest = load_manifest(path, classes=["normal", "fracture"])
    assert manifest.images.path.tolist() == [str(tmp_path / "img/a.png"), str(tmp_path / "img/b.png")]
    assert manifest.label_index().tolist() == [0, 1]
    # no patient column: none is invented, and each image is its own group
    from tfxray.data.splits import group_keys

    assert "patient_id" not in manifest.images.columns and manifest.group_by == "image"
    assert group_keys(manifest.images).nunique() == 2


def test_every_bad_row_is_named_at_once(tmp_path):
    touch(tmp_path, "a.png", "b.png")
    rows = [
        {"path": "a.png", "label": "normal", "x1": 1, "y1": 1, "x2": 5, "y2": 5},
        {"path": "a.png", "label": "normal", "x1": 1, "y1": 1, "x2": 5, "y2": 5},  # identical duplicate
        {"path": "b.png", "label": "fractur", "x1": None, "y1": None, "x2": None, "y2": None},  # unknown label
        {"path": "missing.png", "label": "normal", "x1": 9, "y1": 1, "x2": 5, "y2": 5},  # missing file, bad box
    ]
    with pytest.raises(UserError) as info:
        load_manifest(write(tmp_path, rows), classes=["normal", "fracture"])
    message = str(info.value)
    assert "row 3: duplicate" in message
    assert "row 4: unknown label 'fractur'" in message
    assert "row 5: file not found" in message
    assert "row 5: bad box" in message
    assert "class 'fracture' has no images" in message
    assert "\n" not in message


def test_several_boxes_per_image_are_kept(tmp_path):
    touch(tmp_path, "a.png", "b.png")
    rows = [
        {"path": "a.png", "label": "fracture", "patient_id": "P1", "x1": 1, "y1": 1, "x2": 5, "y2": 5},
        {"path": "a.png", "label": "fracture", "patient_id": "P1", "x1": 10, "y1": 10, "x2": 20, "y2": 30},
        {"path": "b.png", "label": "normal", "patient_id": "P2", "x1": None, "y1": None, "x2": None, "y2": None},
    ]
    manifest = load_manifest(write(tmp_path, rows))
    assert len(manifest.images) == 2
    assert manifest.boxes_for(str(tmp_path / "a.png")).tolist() == [[1, 1, 5, 5], [10, 10, 20, 30]]
    assert len(manifest.boxes_for(str(tmp_path / "b.png"))) == 0


def test_rows_of_one_image_must_agree(tmp_path):
    touch(tmp_path, "a.png", "b.png")
    rows = [
        {"path": "a.png", "label": "fracture", "x1": 1, "y1": 1, "x2": 5, "y2": 5},
        {"path": "a.png", "label": "normal", "x1": 2, "y1": 1, "x2": 5, "y2": 5},
        {"path": "b.png", "label": "normal", "x1": None, "y1": None, "x2": None, "y2": None},
    ]
    with pytest.raises(UserError, match="rows disagree on label"):
        load_manifest(write(tmp_path, rows))


def test_class_folders(tmp_path):
    touch(tmp_path, "data/normal/1.png", "data/normal/2.png", "data/fracture/3.png")
    manifest = load_manifest(tmp_path / "data")
    assert manifest.classes == ["fracture", "normal"]
    assert sorted(manifest.images.label) == ["fracture", "normal", "normal"]


def test_missing_columns_and_files(tmp_path):
    with pytest.raises(UserError, match="no such manifest"):
        load_manifest(tmp_path / "nope.csv")
    path = write(tmp_path, [{"file": "a.png"}])
    with pytest.raises(UserError, match="missing column\\(s\\) path, label"):
        load_manifest(path)


def test_slice_positions_must_be_numbers_and_unique_within_a_series(tmp_path):
    touch(tmp_path, "a.png", "b.png", "c.png", "d.png")
    rows = [
        {"path": "a.png", "label": "benign", "series_id": "S1", "slice_index": 1},
        {"path": "b.png", "label": "malignant", "series_id": "S1", "slice_index": 1},  # same position
        {"path": "c.png", "label": "benign", "series_id": "S2", "slice_index": "top"},
        {"path": "d.png", "label": "benign", "series_id": "S2", "slice_index": 1},  # another series: fine
    ]
    with pytest.raises(UserError) as info:
        load_manifest(write(tmp_path, rows))
    message = str(info.value)
    assert "2 problem(s)" in message
    assert "row 3: series S1 already has a slice 1" in message
    assert "row 4: slice_index 'top' is not a number" in message
