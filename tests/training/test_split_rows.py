"""split.csv carries the manifest's image columns; a resumed CT run rebuilds the same rows from it."""

import numpy as np
import pandas as pd
import pytest

from tfxray.config import load_recipe
from tfxray.data.manifest import load_manifest

pytest.importorskip("tensorflow")


class Killed(BaseException):
    pass


@pytest.fixture(scope="module")
def ct_manifest(tmp_path_factory):
    """CT phantoms whose ids a CSV reader would take for numbers ("0001", "1.10", "02")."""
    from tfxray.data.synth import synthesize

    folder = tmp_path_factory.mktemp("ct_ids")
    table = synthesize(folder, task="ct", n=48, seed=5, size=64, progress=False)
    patients = {p: f"{i + 1:04d}" for i, p in enumerate(sorted(table.patient_id.unique()))}
    series = {s: f"1.{i + 1}0" for i, s in enumerate(sorted(table.series_id.unique()))}
    table = table.assign(patient_id=table.patient_id.map(patients), series_id=table.series_id.map(series),
                         study_id=table.study_id.map(lambda s: f"0{sorted(table.study_id.unique()).index(s) + 1}"))
    table.to_csv(folder / "ids.csv", index=False)
    return folder / "ids.csv"


def ct_recipe(**extra):
    overrides = [(["data", "input_size"], 32), (["model", "backbone"], "tiny_cnn"), (["model", "weights"], "none"),
                 (["augment", "offline", "factor"], 1), (["train", "epochs"], 2), (["train", "batch_size"], 8),
                 (["train", "early_stopping"], 0), (["data", "split"], [0.6, 0.2, 0.2])]
    return load_recipe("vertebral-ct", overrides + [(k.split("."), v) for k, v in extra.items()])


def test_resumed_ct_rows_are_the_fresh_ones_from_split_csv(ct_manifest, tmp_path):
    from tfxray.data.geometry import ImageGeometry
    from tfxray.training.trainer import prepare_rows

    recipe = ct_recipe()
    manifest = load_manifest(ct_manifest, classes=recipe.classes)
    geometry = ImageGeometry(32, 3)
    fresh = prepare_rows(recipe, manifest, tmp_path, geometry)
    split = pd.read_csv(tmp_path / "split.csv")
    assert {"series_id", "slice_index", "study_id", "patient_id", "split"} <= set(split.columns)
    assert not split["series_id"].isna().any() and split["slice_index"].notna().all()

    # the resumed run reads split.csv back: ids stay text, and the rows are the same to the byte
    resumed = prepare_rows(recipe, manifest, tmp_path, geometry, resume=True)
    pd.testing.assert_frame_equal(resumed.table, fresh.table)
    assert resumed.table["patient_id"].str.match(r"^\d{4}$").all()
    assert resumed.table["series_id"].str.match(r"^1\.\d+0$").all()
    for side, inputs in (("train", "train_inputs"), ("validation", "val_inputs")):
        rows = getattr(resumed, side)
        pd.testing.assert_frame_equal(rows, getattr(fresh, side))
        prev, path, after, box = getattr(resumed, inputs).sources(rows["path"])
        for a, b in zip((prev, path, after, box), getattr(fresh, inputs).sources(rows["path"])):
            np.testing.assert_array_equal(a, b)
        assert (prev != path).any() and np.isfinite(box).all()
    np.testing.assert_array_equal(resumed.y_train, fresh.y_train)

    # neighbours and boxes are the manifest's: a slice's neighbours are its series' adjacent slices
    images = manifest.images.set_index("path")
    prev, path, after, box = fresh.train_inputs.sources(fresh.train["path"])
    for j, slice_path in enumerate(path):
        for neighbour in (prev[j], after[j]):
            assert images.loc[neighbour, "series_id"] == images.loc[slice_path, "series_id"]
            assert abs(images.loc[neighbour, "slice_index"] - images.loc[slice_path, "slice_index"]) <= 1
        expected = manifest.boxes.set_index("path").loc[slice_path, ["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
        np.testing.assert_array_equal(box[j], expected)


@pytest.mark.slow  # two trainings, about 9 s
def test_a_ct_run_killed_and_resumed_trains_on_the_same_rows(ct_manifest, tmp_path, monkeypatch):
    from tfxray.training import callbacks, trainer
    from tfxray.training.trainer import train

    recipe = ct_recipe()
    manifest = load_manifest(ct_manifest, classes=recipe.classes)
    built = []
    original_dataset, original_save = trainer.training_dataset, callbacks.AtomicBackupAndRestore._save_model

    def record(paths, labels, inputs, **kwargs):
        built.append(pd.DataFrame(dict(zip(("prev_path", "path", "next_path"), inputs.sources(paths)[:3]))))
        return original_dataset(paths, labels, inputs, **kwargs)

    def kill_after_the_first_checkpoint(self):
        original_save(self)
        raise Killed()

    monkeypatch.setattr(trainer, "training_dataset", record)
    monkeypatch.setattr(callbacks.AtomicBackupAndRestore, "_save_model", kill_after_the_first_checkpoint)
    with pytest.raises(Killed):
        train(recipe, manifest, tmp_path / "run", verbose=0)
    monkeypatch.setattr(callbacks.AtomicBackupAndRestore, "_save_model", original_save)
    first, built[:] = list(built), []
    train(recipe, manifest, tmp_path / "run", resume=True, verbose=0)
    assert len(first) == len(built) == 2  # training and validation rows, once per attempt
    for a, b in zip(first, built):
        pd.testing.assert_frame_equal(a, b)
    assert list(pd.read_csv(tmp_path / "run" / "history.csv").epoch) == [1, 2]
