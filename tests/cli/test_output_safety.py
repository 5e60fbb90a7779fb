"""The commands' outputs under stress, through the CLI: one line and the right exit code for a full disk
(exit 1), a read-only --out (exit 2, before any work), a second `score` on the same --out (exit 2), an
evaluate --out that holds other files (exit 2 unless --overwrite; no stale figure survives a rerun; a
scores.csv that score wrote is never replaced), a completed training run (--resume refused), and
temporary files a killed run left (ignored, then removed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.cli.test_evaluate_runs import absolute_manifest
from tests.scoring.test_output_safety import inbox  # noqa: F401  the fixture: 60 wrist PNGs twice
from tests.test_io import dead_pid, fill, read_only_view, small_disk
from tfxray import io as tio
from tfxray.cli.main import cli


@pytest.fixture(autouse=True)
def progress_setting_restored(monkeypatch):
    """`tfxray --no-progress` sets TFXRAY_NO_PROGRESS in this process: put it back for the tests after these."""
    monkeypatch.setenv("TFXRAY_NO_PROGRESS", "")  # recorded as absent: removed again at teardown


def tfxray(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture()
def scores_table(tmp_path):
    rng = np.random.default_rng(0)
    label = np.repeat(["no", "yes"], 40)
    table = pd.DataFrame({"label": label, "s": rng.random(80) + (label == "yes") * 0.5, "t": rng.random(80)})
    path = tmp_path / "input" / "table.csv"
    path.parent.mkdir()
    table.to_csv(path, index=False)
    return path


SCORES = ["--label-column", "label", "--positive", "yes", "--score-column", "s", "--bootstrap", "200"]


# --------------------------------------------------------------------------------------------- score: one writer


def test_score_refuses_a_second_writer_while_the_lock_is_held(tiny_run, inbox, tmp_path):
    out = tmp_path / "scores.csv"
    with tio.exclusive_lock(out, "another tfxray score is writing it"):
        result = tfxray("score", tiny_run, inbox, "--out", out)
    line = one_line_error(result, 2)
    assert line == (f"error: {out}: another tfxray score is writing it (lock held by pid {os.getpid()}); shards each"
                    " write their own --out")
    assert not out.exists()


@pytest.mark.slow
def test_two_score_processes_on_one_out(tiny_run, inbox, tmp_path):
    """A real first `tfxray score` (one file per batch: slow enough), and a second one on the same --out
    while it runs: refused in one line naming the first one's pid; the first finishes, every row once."""
    out = tmp_path / "scores.csv"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen([sys.executable, "-m", "tfxray.cli.main", "--no-progress", "score", str(tiny_run),
                              str(inbox), "--out", str(out), "--batch-size", "1"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out.exists() and out.stat().st_size > 0):
            assert first.poll() is None, first.communicate()
            time.sleep(0.02)
        second = subprocess.run([sys.executable, "-m", "tfxray.cli.main", "score", str(tiny_run), str(inbox),
                                 "--out", str(out), "--resume"], env=env, capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first run ended before the second one started"
    finally:
        stdout, stderr = first.communicate(timeout=300)
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip().splitlines()[-1] == (
        f"error: {out}: another tfxray score is writing it (lock held by pid {first.pid}); shards each write their own"
        " --out")
    assert first.returncode == 0, stderr[-2000:]
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == 120 and table.path.is_unique
    assert not tio.lock_path(out).exists()


# --------------------------------------------------------------------------------------------- full disks


def test_score_on_a_full_disk_is_one_line_exit_1_and_resume_finishes(tiny_run, inbox, tmp_path):
    with small_disk(tmp_path / "disk", "96k") as disk:
        fill(disk, leave=2 * os.statvfs(disk).f_frsize)
        out = disk / "scores.csv"
        result = tfxray("--no-progress", "score", tiny_run, inbox, "--out", out, "--batch-size", "4")
        assert one_line_error(result, 1) == f"error: {out}: could not be written (No space left on device)"
        data = out.read_bytes()
        assert data.endswith(b"\n") and 0 < len(pd.read_csv(out)) < 120
        (disk / "ballast").unlink()
        again = tfxray("--no-progress", "score", tiny_run, inbox, "--out", out, "--batch-size", "4", "--resume")
        assert again.exit_code == 0, again.output
        table = pd.read_csv(out, keep_default_na=False)
        assert len(table) == 120 and table.path.is_unique and (table.status == "ok").all()


def test_evaluate_inspect_and_gradcam_on_a_full_disk(tiny_run, wrist_png, scores_table, tmp_path):
    folder, manifest = wrist_png
    with small_disk(tmp_path / "disk", "64k") as disk:
        fill(disk, leave=0)
        result = tfxray("evaluate", "--scores", scores_table, *SCORES, "--out", disk / "eval")
        line = one_line_error(result, 1)
        assert line.startswith(f"error: {disk / 'eval'}/") and line.endswith("(No space left on device)")

        result = tfxray("inspect", folder / "images", "--out", disk / "audit.csv", "--no-progress")
        assert one_line_error(result, 1) == f"error: {disk / 'audit.csv'}: could not be written (No space left on device)"

        result = tfxray("gradcam", tiny_run, folder / manifest.path[0], "--out", disk / "panels")
        line = one_line_error(result, 1)
        assert line.startswith(f"error: {disk / 'panels'}/") and line.endswith("(No space left on device)")
        assert not [p for p in disk.rglob(".*") if tio.is_temp_name(p.name)]  # no temporary file left behind


# --------------------------------------------------------------------------------------------- read-only --out


def test_a_read_only_out_is_refused_up_front_by_every_command(tiny_run, wrist_png, scores_table, tmp_path,
                                                               monkeypatch):
    import tfxray.images.audit as audit
    import tfxray.scoring.predict as predict

    def no_work(*args, **kwargs):
        raise AssertionError("work started before --out was checked")

    monkeypatch.setattr(predict, "evaluate_runs", no_work)
    monkeypatch.setattr(audit, "audit_folder", no_work)
    folder, manifest = wrist_png
    data = absolute_manifest(wrist_png, tmp_path / "m.csv")
    source = tmp_path / "shared"
    source.mkdir()
    with read_only_view(source, tmp_path / "ro") as ro:
        commands = {
            "score": (["score", tiny_run, folder / "images", "--out", ro / "scores.csv"], ro / "scores.csv"),
            "evaluate RUN": (["evaluate", tiny_run, "--data", data, "--out", ro / "eval"], ro / "eval"),
            "evaluate --scores": (["evaluate", "--scores", scores_table, *SCORES, "--out", ro / "e2"], ro / "e2"),
            "inspect": (["inspect", folder / "images", "--out", ro / "audit.csv"], ro / "audit.csv"),
            "gradcam": (["gradcam", tiny_run, folder / manifest.path[0], "--out", ro / "panels"], ro / "panels"),
            "train": (["train", "demo", "--data", data, "--out", ro / "run"], ro / "run"),
        }
        for name, (args, path) in commands.items():
            result = tfxray(*args)
            assert one_line_error(result, 2) == f"error: --out {path}: cannot write there (Read-only file system)", name


# --------------------------------------------------------------------------------------------- evaluate's --out


def test_evaluate_refuses_a_folder_of_other_files_unless_overwrite_and_keeps_them(scores_table, tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "old_figure.png").write_text("not evaluate's")
    result = tfxray("evaluate", "--scores", scores_table, *SCORES, "--out", out)
    assert one_line_error(result, 2) == (f"error: --out {out}: not empty (2 files); choose an empty folder or pass"
                                         " --overwrite")
    assert not (out / "report.json").exists()
    result = tfxray("evaluate", "--scores", scores_table, *SCORES, "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "mine" and (out / "old_figure.png").exists()  # never removed
    assert (out / "report.json").is_file()


def test_a_rerun_replaces_the_earlier_report_and_leaves_no_stale_figure(scores_table, tmp_path):
    out = tmp_path / "eval"
    full = tfxray("evaluate", "--scores", scores_table, *SCORES, "--score-column", "t", "--out", out)
    assert full.exit_code == 0, full.output
    before = {p.name for p in out.glob("*.png")}
    assert {"roc_image_s.png", "roc_image_t.png"} <= before and any(n.startswith("pr_") for n in before)
    record = json.loads((out / tio.RECORD_NAME).read_text())
    assert record["command"] == "evaluate" and "report.json" in record["files"]

    rerun = tfxray("evaluate", "--scores", scores_table, *SCORES, "--roc", "--out", out)  # one model, ROC only
    assert rerun.exit_code == 0, rerun.output
    after = {p.name for p in out.glob("*.png")}
    report = json.loads((out / "report.json").read_text())
    assert after == {"roc_image_s.png"}, after  # what this run drew, and nothing of the earlier one
    assert list(report["levels"]["image"]["models"]) == ["s"]
    assert "replaced the earlier report" in rerun.output
    assert not [p for p in out.rglob("*") if p.is_dir() and not any(p.iterdir())]  # no empty folder left


def test_an_earlier_report_without_a_record_is_recognised(scores_table, tmp_path):
    """A report written before evaluate kept .tfxray-outputs.json: its figures are evaluate's, a user's file is not."""
    out = tmp_path / "eval"
    assert tfxray("evaluate", "--scores", scores_table, *SCORES, "--out", out).exit_code == 0
    (out / tio.RECORD_NAME).unlink()
    rerun = tfxray("evaluate", "--scores", scores_table, *SCORES, "--roc", "--out", out)
    assert rerun.exit_code == 0, rerun.output
    assert {p.name for p in out.glob("*.png")} == {"roc_image_s.png"}
    (out / "holiday.png").write_text("x")
    refused = tfxray("evaluate", "--scores", scores_table, *SCORES, "--out", out)
    assert one_line_error(refused, 2).endswith("not empty (1 file); choose an empty folder or pass --overwrite")


def test_evaluate_run_never_replaces_a_scores_csv_that_score_wrote(tiny_run, wrist_png, tmp_path):
    folder, _ = wrist_png
    out = tmp_path / "results"
    scored = tfxray("--no-progress", "score", tiny_run, folder / "images", "--out", out / "scores.csv")
    assert scored.exit_code == 0, scored.output
    written = (out / "scores.csv").read_bytes()
    data = absolute_manifest(wrist_png, tmp_path / "m.csv")
    for extra in ([], ["--overwrite"]):
        result = tfxray("evaluate", tiny_run, "--data", data, "--roc", "--out", out, *extra)
        assert one_line_error(result, 2) == (
            f"error: --out {out}: holds a scores.csv that tfxray evaluate did not write (tfxray score's?); evaluate"
            " RUN_DIR writes its own scores.csv there: choose another --out")
    assert (out / "scores.csv").read_bytes() == written


def test_evaluate_reads_its_own_scores_csv_from_its_folder_without_removing_it(scores_table, tmp_path):
    out = tmp_path / "eval"
    shutil.copy(scores_table, tmp_path / "t.csv")
    assert tfxray("evaluate", "--scores", tmp_path / "t.csv", *SCORES, "--out", out).exit_code == 0
    record = json.loads((out / tio.RECORD_NAME).read_text())
    record["files"].append("scores.csv")  # as if an evaluate RUN_DIR had written it
    shutil.copy(scores_table, out / "scores.csv")
    (out / tio.RECORD_NAME).write_text(json.dumps(record))
    again = tfxray("evaluate", "--scores", out / "scores.csv", *SCORES, "--roc", "--out", out)
    assert again.exit_code == 0, again.output
    assert (out / "scores.csv").is_file()  # an input is never a stale output


# --------------------------------------------------------------------------------------------- temporary files


def test_temporary_files_of_a_killed_run_are_ignored_and_removed(tiny_run, inbox, scores_table, tmp_path):
    host = tio._HOST
    gone = dead_pid()
    out = tmp_path / "eval"
    assert tfxray("evaluate", "--scores", scores_table, *SCORES, "--out", out).exit_code == 0
    stale = out / f".roc_image_s.png.{host}-{gone}.abcd1234.tmp.png"
    stale.write_bytes(b"half a figure")
    tio._swept.clear()  # a new process would sweep afresh
    again = tfxray("evaluate", "--scores", scores_table, *SCORES, "--out", out)
    assert again.exit_code == 0, again.output  # not counted as a file of someone else's
    assert not stale.exists()

    scores = tmp_path / "s" / "scores.csv"
    first = tfxray("--no-progress", "score", tiny_run, inbox / "a", "--out", scores)
    assert first.exit_code == 0, first.output
    left = scores.parent / f".scores_rollup.csv.{host}-{gone}.abcd1234.tmp.csv"
    left.write_text("level,id\n")
    tio._swept.clear()
    resumed = tfxray("--no-progress", "score", tiny_run, inbox / "a", "--out", scores, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "already in the CSV: 59" in resumed.output and not left.exists()  # resume redoes the last file


# --------------------------------------------------------------------------------------------- training runs


def test_a_completed_run_is_not_resumed_and_not_replaced_without_overwrite(tiny_run, wrist_png, tmp_path):
    folder, _ = wrist_png
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = tfxray("train", "--resume", run, "--data", folder / "manifest.csv")
    assert one_line_error(result, 2) == (f"error: --resume {run}: the run is complete (its model is saved); nothing"
                                         f" to resume. Train it again with --out {run} --overwrite, or into another"
                                         " --out")
    result = tfxray("train", "demo", "--data", folder / "manifest.csv", "--out", run)
    assert one_line_error(result, 2) == (f"error: --out {run}: already exists and holds a complete run (replace it"
                                         " with --overwrite, or choose another --out)")
    assert (run / "model.keras").is_file()


def test_an_interrupted_run_still_resumes(tmp_path):
    from tfxray.training.rundir import is_complete

    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    for name in ("recipe.yaml", "split.csv", "history.csv"):
        (run / name).write_text("x")
    assert not is_complete(run)  # killed mid-training: a checkpoint, no bundle
    for name in ("tfxray.json", "model.keras"):
        (run / name).write_text("x")
    assert not is_complete(run)  # the checkpoint goes only when training ends
    shutil.rmtree(run / "checkpoint")
    assert is_complete(run)
    cv = tmp_path / "cv"
    cv.mkdir()
    (cv / "folds.csv").write_text("x")
    assert not is_complete(cv)
    (cv / "oof_scores.csv").write_text("x")
    assert is_complete(cv)


def test_an_os_error_from_a_library_is_reported_in_one_line():
    """h5py (Keras' checkpoint) puts the path and a long report in its OSError: the last net keeps one line."""
    import errno

    from tfxray.cli.main import _one_line

    h5py_like = OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: time = now\n, filename = "
                                      "'run/checkpoint/.epoch-1.weights.h5', errno = 28, error message = 'No space')")
    assert _one_line(h5py_like) == "run/checkpoint/.epoch-1.weights.h5: No space left on device"
    plain = OSError(errno.EROFS, "Read-only file system")
    plain.filename = "out/report.md"
    assert _one_line(plain) == "out/report.md: Read-only file system"
