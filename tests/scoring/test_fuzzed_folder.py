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


def test_score_and_inspect_print_no_reader_notices(tiny_run, tmp_path, caplog):
    """The readers' own notices about odd files (tifffile's log, pydicom's and Pillow's warnings) stay off
    the screen: each file's problem is its row. Control: reading the same files logs tifffile notices."""
    import logging
    import warnings

    from click.testing import CliRunner

    from cli.main import cli
    from tfxray.images.base import ImageReadError
    from tfxray.images.reader import read_image

    folder = tmp_path / "export"
    folder.mkdir()
    for kind in ("tiff", "dicom", "png"):
        for index in range(30):
            data, _ = fuzz_mutations.hostile_file(kind, 5, index)
            (folder / f"{kind}{index:03d}{SUFFIX[kind]}").write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="tifffile"):
        for path in sorted(folder.glob("tiff*")):
            try:
                read_image(path)
            except ImageReadError:
                pass
    assert any(record.name == "tifffile" for record in caplog.records)  # control: the notices exist

    tifffile_logger = logging.getLogger("tifffile")
    level = tifffile_logger.level
    try:
        with warnings.catch_warnings():
            score = CliRunner().invoke(cli, ["score", str(tiny_run), str(folder), "--out", str(tmp_path / "s.csv"),
                                             "--allow-errors"])
            inspect = CliRunner().invoke(cli, ["inspect", str(folder), "--out", str(tmp_path / "audit.csv")])
    finally:
        tifffile_logger.setLevel(level)
    assert score.exit_code == 0 and inspect.exit_code == 0, score.output + inspect.output
    for result in (score, inspect):
        assert "tifffile" not in result.output and "Warning" not in result.output, result.output[-2000:]
        assert "warnings.warn" not in result.output
