"""A folder of hostile files (the reader's fuzz mutations) scored whole: a row per file, no exception.

The fast version of ``benchmarks/fuzz_folder.py`` (which also runs ``tfxray score`` and ``inspect``
as commands over 10,000 such files and watches their memory)."""

import pandas as pd

from tests.images import fuzz_mutations
from tfxray.images.audit import audit_folder
from tfxray.scoring.batch import score_folder

SUFFIX = {"dicom": "", "png": ".png", "jpeg": ".jpg", "tiff": ".tif"}


def test_score_and_inspect_a_folder_of_mutated_files(tiny_run, tmp_path):
    folder = tmp_path / "export"
    names = []
    for kind in fuzz_mutations.FORMATS:
        for index in range(12):
            data, _ = fuzz_mutations.hostile_file(kind, 7, index)
            name = f"{kind}/IM{index:03d}{SUFFIX[kind]}"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
            names.append(name)
    out = tmp_path / "scores.csv"
    summary = score_folder(tiny_run, folder, out, batch_size=8, progress=False)
    table = pd.read_csv(out, keep_default_na=False)
    assert set(table.path) == set(names) and not table.duplicated(["path", "frame"]).any()
    assert summary.total == len(names) and summary.errors > 0
    assert summary.scored + summary.errors + summary.skipped == len(names)
    assert (table.error[table.status != "ok"] != "").all()
    assert not table.error.str.contains("\n").any() and not table.error.str.contains("unexpected").any()

    audit = audit_folder(folder)
    assert sorted(audit.path) == sorted(names)
