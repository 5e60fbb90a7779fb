import numpy as np
import pandas as pd
import pytest

from tfxray.data.splits import check_user_split, holdout_assignments, kfold_assignments, leaking_patients
from tfxray.errors import UserError


def many_images_per_patient(n_patients=120, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = "fracture" if rng.random() < 0.3 else "normal"
        for k in range(int(rng.integers(1, 9))):
            rows.append({"path": f"p{p}_{k}.png", "label": label, "patient_id": f"P{p}"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holdout_is_grouped_stratified_and_proportional(seed):
    images = many_images_per_patient(seed=seed)
    images["split"] = holdout_assignments(images, (0.8, 0.1, 0.1), seed=seed)
    assert leaking_patients(images, "split") == []
    patients = images.drop_duplicates("patient_id")
    share = patients["split"].value_counts(normalize=True)
    assert abs(share["train"] - 0.8) < 0.08 and abs(share["test"] - 0.1) < 0.06
    overall = (images.label == "fracture").mean()
    for side in ("train", "validation", "test"):
        assert abs((images.loc[images.split == side, "label"] == "fracture").mean() - overall) < 0.15


def test_holdout_is_reproducible_for_a_seed():
    images = many_images_per_patient()
    a = holdout_assignments(images, (0.8, 0.1, 0.1), seed=7)
    b = holdout_assignments(images, (0.8, 0.1, 0.1), seed=7)
    c = holdout_assignments(images, (0.8, 0.1, 0.1), seed=8)
    assert (a == b).all() and not (a == c).all()


@pytest.mark.parametrize("k", [5, 10])
def test_kfold_never_leaks(k):
    images = many_images_per_patient()
    images["fold"] = kfold_assignments(images, k, seed=0)
    assert sorted(images.fold.unique()) == list(range(k))
    assert leaking_patients(images, "fold") == []


def test_user_split_with_leaks_is_refused_naming_the_patients():
    images = pd.DataFrame(
        {"path": ["a", "b", "c"], "label": ["normal"] * 3, "patient_id": ["P1", "P1", "P2"], "split": ["train", "test", "train"]}
    )
    with pytest.raises(UserError, match=r"1 patient\(s\).*P1"):
        check_user_split(images, "split")
    with pytest.warns(UserWarning, match="P1"):
        check_user_split(images, "split", allow_leaks=True)


def test_too_few_patients():
    images = pd.DataFrame({"path": ["a", "b"], "label": ["normal", "fracture"], "patient_id": ["P1", "P1"]})
    with pytest.raises(UserError, match="patients"):
        kfold_assignments(images, 5)


def test_split_table_keeps_every_image_column_and_reads_back_ids_as_text(tmp_path):
    from tfxray.data.splits import assign_splits, read_split_table

    images = pd.DataFrame({
        "path": [f"s{i}.png" for i in range(8)],
        "label": ["benign", "malignant"] * 4,
        "patient_id": ["0012", "0012", "007", "007", "10", "10", "3.50", "3.50"],  # numbers to a CSV reader
        "study_id": ["01", "01", "02", "02", "03", "03", "04", "04"],
        "series_id": ["1.10", "1.10", "1.2", "1.2", "1.30", "1.30", None, None],
        "slice_index": [0, 1, 0, 1, 0, 1, 0, 1],
        "fold": [1, 1, 2, 2, 1, 1, 2, 2],
        "split": ["train", "train", "train", "train", "validation", "validation", "test", "test"],
    })
    table = assign_splits(images, (0.8, 0.1, 0.1), seed=0)
    assert list(table.columns) == [*images.columns, "group_by"]  # series, slice position and fold travel along
    assert (table["group_by"] == "patient_id").all()
    pd.testing.assert_frame_equal(table[images.columns], images)  # the manifest's own split is kept as given
    table.to_csv(tmp_path / "split.csv", index=False)
    back = read_split_table(tmp_path / "split.csv")
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    for column in ("path", "label", "patient_id", "study_id", "series_id", "split", "group_by"):
        assert back[column].dropna().map(type).eq(str).all(), column
    assert back["patient_id"].tolist()[::2] == ["0012", "007", "10", "3.50"]
    assert back["series_id"].tolist()[::2][:3] == ["1.10", "1.2", "1.30"] and back["series_id"].isna().sum() == 2
    assert back["slice_index"].tolist() == images["slice_index"].tolist()


def test_split_table_without_a_split_column_is_the_grouped_holdout():
    from tfxray.data.splits import assign_splits

    images = many_images_per_patient().assign(series_id=lambda t: t.patient_id + "-S1")
    table = assign_splits(images, (0.8, 0.1, 0.1), seed=3)
    assert (table["split"] == holdout_assignments(images, (0.8, 0.1, 0.1), seed=3)).all()
    pd.testing.assert_frame_equal(table.drop(columns=["split", "group_by"]), images)


def test_without_patients_the_split_keeps_studies_then_images_whole():
    from tfxray.data.splits import assign_splits, group_unit, grouping_note

    images = many_images_per_patient(n_patients=60, seed=4)
    studies = images.rename(columns={"patient_id": "study_id"})  # no patient column: studies are the unit
    table = assign_splits(studies, (0.6, 0.2, 0.2), seed=1)
    assert group_unit(studies) == "study_id" and set(table["group_by"]) == {"study_id"}
    assert table.groupby("study_id")["split"].nunique().max() == 1  # no study on two sides
    assert set(table["split"]) == {"train", "validation", "test"}
    assert grouping_note(studies, "m.csv") == ("no patient column (patient_id) in m.csv: the split is grouped by "
                                               "study_id, so one patient's studies may fall on different sides")
    bare = images.drop(columns="patient_id")
    table = assign_splits(bare, (0.6, 0.2, 0.2), seed=1)
    assert group_unit(bare) == "image" and set(table["group_by"]) == {"image"}
    assert grouping_note(bare, "m.csv") == ("no patient column (patient_id) or study_id in m.csv: the split is grouped "
                                            "by image, so one patient's images may fall on different sides")
    # the leak check of a given split counts studies when studies are the unit
    given = pd.DataFrame({"path": ["a", "b", "c"], "label": ["normal"] * 3, "study_id": ["S1", "S1", "S2"],
                          "split": ["train", "test", "train"]})
    with pytest.raises(UserError, match=r"puts 1 study\(s\) on more than one side: S1"):
        check_user_split(given, "split")
