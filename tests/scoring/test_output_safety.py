"""score_folder's outputs under stress: a disk that fills up mid-run (real and simulated), a second writer
on the same CSV, read-only output folders. Every failure is one line; no torn row; --resume finishes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pandas as pd
import pytest

from tests.folder_helpers import copy_images
from tests.test_io import fill, read_only_view, small_disk
from tfxray import io as tio
from tfxray.errors import RunError, UserError
from tfxray.scoring.batch import rollup_path, score_folder


@pytest.fixture()
def inbox(tmp_path, wrist_png):
    """All 60 wrist PNGs, twice (two sub-folders): 120 files, about 8 kB of CSV rows."""
    folder, manifest = wrist_png
    for part in ("a", "b"):
        copy_images(folder, manifest.path, tmp_path / "inbox" / part)
    return tmp_path / "inbox"


def files_of(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def whole_rows(path: Path) -> pd.DataFrame:
    """The CSV, checked whole: ends with a newline, every row has every column, each path once."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), data[-80:]
    table = pd.read_csv(path, keep_default_na=False, dtype=str)
    assert (table.status == "ok").all() and table.path.is_unique
    assert all(line.count(b",") == data.split(b"\n")[0].count(b",") for line in data.splitlines())
    return table


def test_write_fails_midway_then_resume(tiny_run, inbox, tmp_path, monkeypatch):
    """os.write raising ENOSPC on the 5th batch: a RunError naming the CSV, the 4 batches before kept whole,
    no partial batch; --resume after 'freeing space' scores the rest, every file once."""
    out = tmp_path / "out" / "scores.csv"
    real_write, calls = os.write, []

    def full_after_four(fd, data):
        if data.startswith((b"a/", b"b/")):  # a batch of rows (not the header, not the lock's pid)
            calls.append(len(data))
            if len(calls) == 5:
                return real_write(fd, data[: len(data) // 3])  # part of the batch fits, then the disk is full
        return real_write(fd, data)

    monkeypatch.setattr(tio.os, "write", full_after_four)
    with pytest.raises(RunError) as caught:
        score_folder(tiny_run, inbox, out, batch_size=8, progress=False)
    assert str(caught.value) == f"{out}: could not be written (No space left on device)"
    assert "\n" not in str(caught.value)
    table = whole_rows(out)
    assert len(table) == 4 * 8  # four whole batches, nothing of the fifth
    assert not tio.lock_path(out).exists()  # the lock went with the run
    assert not rollup_path(out).exists()

    monkeypatch.setattr(tio.os, "write", real_write)
    summary = score_folder(tiny_run, inbox, out, batch_size=8, resume=True, progress=False)
    table = whole_rows(out)
    assert sorted(table.path) == files_of(inbox)
    assert summary.already_done == 4 * 8 - 1  # the last file before the failure is redone (resume's rule)
    assert rollup_path(out).is_file()


def test_write_raising_enospc_on_the_second_batch(tiny_run, inbox, tmp_path, monkeypatch):
    out = tmp_path / "scores.csv"
    real_write, calls = os.write, []

    def refuse_third(fd, data):
        if data.startswith((b"a/", b"b/")):
            calls.append(1)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(tio.os, "write", refuse_third)
    with pytest.raises(RunError, match="No space left on device"):
        score_folder(tiny_run, inbox, out, batch_size=16, progress=False)
    assert len(whole_rows(out)) == 16


def test_a_real_full_disk_mid_run_then_resume_after_freeing_space(tiny_run, inbox, tmp_path):
    with small_disk(tmp_path / "disk", "96k") as disk:
        page = os.statvfs(disk).f_frsize
        fill(disk, leave=2 * page)  # one page for the lock file's pid, one for the CSV: ~50 of 120 rows
        out = disk / "scores.csv"
        with pytest.raises(RunError) as caught:
            score_folder(tiny_run, inbox, out, batch_size=4, progress=False)
        assert str(caught.value) == f"{out}: could not be written (No space left on device)"
        partial = whole_rows(out)
        assert 0 < len(partial) < 120 and len(partial) % 4 == 0  # whole batches only
        assert not tio.lock_path(out).exists()
        kept = out.read_bytes()

        (disk / "ballast").unlink()  # space freed
        score_folder(tiny_run, inbox, out, batch_size=4, resume=True, progress=False)
        table = whole_rows(out)
        assert sorted(table.path) == files_of(inbox)
        assert out.read_bytes().startswith(kept[: kept.rstrip(b"\n").rfind(b"\n") + 1])  # earlier rows unchanged
        assert rollup_path(out).is_file()
        assert [p.name for p in disk.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_gradcam_panels_on_a_full_disk_stop_in_one_line(tiny_run, inbox, tmp_path):
    with small_disk(tmp_path / "disk", "64k") as disk:
        fill(disk, leave=0)
        with pytest.raises(RunError) as caught:
            score_folder(tiny_run, inbox, tmp_path / "scores.csv", batch_size=8, progress=False,
                         gradcam_dir=disk / "panels")
        message = str(caught.value)
        assert message.startswith(str(disk / "panels")) and message.endswith("(No space left on device)")
        assert len(whole_rows(tmp_path / "scores.csv")) == 0  # a panel goes before its row: no row without one


def test_a_second_writer_on_the_same_csv_is_refused(tiny_run, inbox, tmp_path):
    out = tmp_path / "scores.csv"
    with tio.exclusive_lock(out, "another tfxray score is writing it"):  # as a first run would hold it
        for resume in (False, True):
            with pytest.raises(UserError) as caught:
                score_folder(tiny_run, inbox, out, progress=False, resume=resume)
            assert str(caught.value) == (f"{out}: another tfxray score is writing it (lock held by pid {os.getpid()});"
                                         " shards each write their own --out")
    assert not out.exists()
    summary = score_folder(tiny_run, inbox, out, progress=False)
    assert summary.scored == 120 and len(whole_rows(out)) == 120


def test_read_only_outputs_are_refused_before_the_model_loads(tiny_run, inbox, tmp_path, monkeypatch):
    import tfxray.scoring.batch as batch

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(batch, "_load_for_scoring", no_model)
    source = tmp_path / "shared"
    source.mkdir()
    with read_only_view(source, tmp_path / "ro") as ro:
        for kwargs, option, path in (({}, "--out", ro / "scores.csv"),
                                     ({"gradcam_dir": ro / "panels"}, "--gradcam", ro / "panels"),
                                     ({"overlays_dir": ro / "boxes"}, "--overlays", ro / "boxes")):
            out = kwargs and tmp_path / "scores.csv" or ro / "scores.csv"
            with pytest.raises(UserError) as caught:
                score_folder(tiny_run, inbox, out, progress=False, **kwargs)
            assert str(caught.value) == f"{option} {path}: cannot write there (Read-only file system)"


def test_parallel_decodes_are_bounded_by_memory(monkeypatch):
    """Decodes at once = min(cores, budget // (pixel limit x 8 bytes)), at least 1."""
    from tfxray.data import inputs

    monkeypatch.setenv("TFXRAY_MAX_PIXELS", "60000000")  # 480 MB per decode at worst
    monkeypatch.setenv(inputs.MEMORY_ENV, "4G")
    assert inputs.decode_parallelism(cores=16) == 4 * 2**30 // 480_000_000 == 8
    assert inputs.decode_parallelism(cores=2) == 2  # never more than the cores
    monkeypatch.setenv(inputs.MEMORY_ENV, "100M")
    assert inputs.decode_parallelism(cores=16) == 1  # never fewer than one
    monkeypatch.setenv("TFXRAY_MAX_PIXELS", "1000000")  # smaller reads: more of them fit
    assert inputs.decode_parallelism(cores=16) == 100 * 2**20 // 8_000_000 == 13
    monkeypatch.delenv(inputs.MEMORY_ENV)
    monkeypatch.setattr(inputs, "_available_memory", lambda: 8 * 2**30)  # a quarter of what is free: 2 GiB
    monkeypatch.setenv("TFXRAY_MAX_PIXELS", "60000000")
    assert inputs.decode_parallelism(cores=16) == 2 * 2**30 // 480_000_000 == 4
    monkeypatch.setenv(inputs.MEMORY_ENV, "lots")
    with pytest.raises(UserError, match="TFXRAY_DECODE_MEMORY"):
        inputs.decode_parallelism()
