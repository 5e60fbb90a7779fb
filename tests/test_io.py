"""tfxray.io: atomic outputs that a full disk, a read-only folder, kill -9 or a second writer never spoil.

Real file systems where the machine allows it (we run as root in the container: a tmpfs of a few
hundred kB fills up for real; a read-only bind mount refuses writes even to root, where chmod would
not), with a clear skip where mounting is not permitted; the same paths with os functions replaced.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from tfxray import io as tio
from tfxray.errors import RunError, UserError

# --------------------------------------------------------------------------------------------- real mounts


def _run(*command) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), capture_output=True, text=True)


@contextmanager
def small_disk(where: Path, size: str = "256k"):
    """A tmpfs of ``size`` mounted at ``where`` (a real full disk: ENOSPC); skips when mounting is not allowed."""
    where.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and mount rights): {done.stderr.strip()}")
    try:
        yield where
    finally:
        _run("umount", "-l", str(where))


@contextmanager
def read_only_view(source: Path, where: Path):
    """``source`` seen read-only at ``where`` (bind mount, remounted ro); skips when mounting is not allowed."""
    where.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "--bind", str(source), str(where))
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root and mount rights): {done.stderr.strip()}")
    again = _run("mount", "-o", "remount,bind,ro", str(where))
    if again.returncode != 0:
        _run("umount", "-l", str(where))
        pytest.skip(f"cannot remount read-only here: {again.stderr.strip()}")
    try:
        yield where
    finally:
        _run("umount", "-l", str(where))


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the file system holding ``folder`` up to ``leave`` bytes free."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with open(folder / "ballast", "wb") as handle:
        try:
            handle.write(b"\0" * max(free - leave, 0))
        except OSError:
            pass


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --------------------------------------------------------------------------------------------- atomic writes


def test_a_full_disk_is_one_line_naming_the_file_and_the_old_content_stays(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        target = disk / "report.json"
        tio.atomic_write_text(target, "earlier\n")
        with pytest.raises(RunError) as caught:
            tio.atomic_write_text(target, "x" * 400_000)  # more than the whole disk
        message = str(caught.value)
        assert message == f"{target}: could not be written (No space left on device)"
        assert target.read_text() == "earlier\n"
        assert sorted(p.name for p in disk.iterdir()) == ["report.json"]  # no temporary file left


def test_a_write_error_raised_inside_the_block_becomes_a_run_error(tmp_path, monkeypatch):
    target = tmp_path / "figure.png"
    with pytest.raises(RunError, match=r"figure\.png: could not be written \(Disk quota exceeded\)$"):
        with tio.atomic_path(target) as tmp:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))  # as a write() that fails does: no filename
    assert list(tmp_path.iterdir()) == []


def test_an_error_about_another_file_is_not_disguised_as_a_write_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        with tio.atomic_path(tmp_path / "copy.h5") as tmp:
            import shutil

            shutil.copyfile(tmp_path / "missing.h5", tmp)
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_folder_is_a_run_error_when_reached_and_a_user_error_up_front(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "old.csv").write_text("a\n")
    with read_only_view(source, tmp_path / "ro") as ro:
        with pytest.raises(RunError, match="could not be written \\(Read-only file system\\)"):
            tio.atomic_write_text(ro / "new.csv", "b\n")
        for path, folder in ((ro / "audit.csv", False), (ro / "eval", True), (ro / "a" / "b" / "scores.csv", False)):
            with pytest.raises(UserError) as caught:
                tio.check_writable(path, "--out", folder=folder)
            assert str(caught.value) == f"--out {path}: cannot write there (Read-only file system)"
        with pytest.raises(UserError, match="cannot write"):
            tio.check_writable(ro / "old.csv", "--out")  # an existing file to append to (score --resume)
    tio.check_writable(source / "old.csv", "--out")


def test_check_writable_creates_nothing_and_refuses_a_file_for_a_folder(tmp_path):
    target = tmp_path / "new" / "deeper" / "out"
    assert tio.check_writable(target, "--out", folder=True) == target
    assert list(tmp_path.iterdir()) == []  # nothing made, no probe left
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="--out .*file: not a folder"):
        tio.check_writable(tmp_path / "file", "--out", folder=True)
    with pytest.raises(UserError, match="is a folder"):
        tio.check_writable(tmp_path, "--out")
    with pytest.raises(UserError, match="is not a folder"):
        tio.check_writable(tmp_path / "file" / "x.csv", "--out")


def test_check_writable_with_os_functions_refusing(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tio.tempfile, "mkstemp", refuse)
    with pytest.raises(UserError) as caught:
        tio.check_writable(tmp_path / "scores.csv", "--gradcam")
    assert str(caught.value) == f"--gradcam {tmp_path / 'scores.csv'}: cannot write there (Permission denied)"


# --------------------------------------------------------------------------------------------- temporary files


def test_temporary_names_carry_their_owner_and_stale_ones_are_swept(tmp_path):
    with tio.atomic_path(tmp_path / "history.csv") as tmp:
        match = tio.TEMP_NAME.match(tmp.name)
        assert match and match["name"] == "history.csv" and int(match["pid"]) == os.getpid()
        assert tmp.name.endswith(".tmp.csv") and tio.is_temp_name(tmp.name)
        tmp.write_text("x")
    host = match["host"]
    gone, alive = dead_pid(), os.getpid()
    stale = tmp_path / f".scores.csv_rollup.csv.{host}-{gone}.abcd1234.tmp.csv"
    live = tmp_path / f".report.md.{host}-{alive}.abcd1234.tmp.md"
    other_host = tmp_path / f".report.md.000000-{gone}.abcd1234.tmp.md"
    old_style = tmp_path / ".report.md.abcd1234.tmp.md"
    for path in (stale, live, other_host, old_style):
        path.write_text("half")
    removed = tio.sweep_stale_temps(tmp_path, force=True)
    assert removed == [stale]
    assert live.exists() and other_host.exists() and old_style.exists()


def test_the_next_write_into_a_folder_removes_what_a_killed_writer_left(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    script = ("import os, sys\n"
              "from tfxray import io\n"
              "with io.atomic_path(sys.argv[1]) as tmp:\n"
              "    tmp.write_text('half')\n"
              "    os.kill(os.getpid(), 9)\n")
    killed = subprocess.run([sys.executable, "-c", script, str(folder / "model.keras")])
    assert killed.returncode == -9
    left = [p.name for p in folder.iterdir()]
    assert len(left) == 1 and tio.is_temp_name(left[0]) and left[0].endswith(".tmp.keras")
    # a new process (here: a fresh sweep) writing anything into the folder cleans it
    tio._swept.discard(os.path.abspath(folder))
    tio.atomic_write_text(folder / "history.csv", "epoch\n")
    assert [p.name for p in folder.iterdir()] == ["history.csv"]


# --------------------------------------------------------------------------------------------- appending rows


def test_append_whole_cuts_a_short_write_back_to_the_last_whole_row(tmp_path, monkeypatch):
    path = tmp_path / "scores.csv"
    path.write_bytes(b"path,score\na,0.1\n")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    real_write = os.write

    def half_then_full(fd_, data):  # a disk with room for part of the batch: a short write
        return real_write(fd_, data[: len(data) // 2])

    monkeypatch.setattr(tio.os, "write", half_then_full)
    with pytest.raises(RunError) as caught:
        tio.append_whole(fd, b"b,0.2\nc,0.3\nd,0.4\n", path)
    os.close(fd)
    assert str(caught.value) == f"{path}: could not be written (No space left on device)"
    assert path.read_bytes() == b"path,score\na,0.1\n"


def test_append_whole_cuts_back_when_fsync_fails(tmp_path, monkeypatch):
    path = tmp_path / "boxes.csv"
    path.write_bytes(b"h\n")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def fail(_):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(tio.os, "fsync", fail)
    with pytest.raises(RunError, match=r"boxes\.csv: could not be written \(Input/output error\)"):
        tio.append_whole(fd, b"r1\n", path)
    os.close(fd)
    assert path.read_bytes() == b"h\n"


def test_append_whole_on_a_really_full_disk(tmp_path):
    with small_disk(tmp_path / "disk", "128k") as disk:
        path = disk / "scores.csv"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        tio.append_whole(fd, b"path,score\n", path)
        rows = b"".join(b"file%05d.png,0.123456\n" % i for i in range(200))
        with pytest.raises(RunError, match="No space left on device"):
            for _ in range(1000):
                tio.append_whole(fd, rows, path)
        os.close(fd)
        data = path.read_bytes()
        assert data.endswith(b"\n") and (len(data) - len(b"path,score\n")) % len(rows) == 0  # whole batches only


# --------------------------------------------------------------------------------------------- one writer


def test_a_second_writer_is_refused_naming_the_first_ones_pid(tmp_path):
    target = tmp_path / "scores.csv"
    with tio.exclusive_lock(target, "another tfxray score is writing it") as lock:
        assert lock == tmp_path / "scores.csv.lock" and lock.read_text().strip() == str(os.getpid())
        with pytest.raises(tio.LockHeld) as caught:
            with tio.exclusive_lock(target, "another tfxray score is writing it"):
                pass
        assert caught.value.pid == os.getpid()
        assert str(caught.value) == f"{target}: another tfxray score is writing it (lock held by pid {os.getpid()})"
        assert isinstance(caught.value, UserError)
    assert not lock.exists()  # removed when released
    with tio.exclusive_lock(target):  # free again
        pass


def test_a_lock_left_by_a_killed_process_blocks_nothing(tmp_path):
    target = tmp_path / "scores.csv"
    script = ("import os, sys\nfrom tfxray import io\n"
              "with io.exclusive_lock(sys.argv[1]):\n    os.kill(os.getpid(), 9)\n")
    assert subprocess.run([sys.executable, "-c", script, str(target)]).returncode == -9
    assert tio.lock_path(target).exists()  # the file stays; the kernel dropped the lock
    assert tio.lock_holder(target) is None
    with tio.exclusive_lock(target):
        pass


def test_a_lock_held_by_another_process(tmp_path):
    target = tmp_path / "scores.csv"
    script = ("import sys, time\nfrom tfxray import io\n"
              "with io.exclusive_lock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert tio.lock_holder(target) == f"lock held by pid {holder.pid}"
        tio.lock_path(target).parent.chmod(0o555)  # asked about from a folder this process cannot write
        try:
            assert tio.lock_holder(target) == f"lock held by pid {holder.pid}"
        finally:
            tio.lock_path(target).parent.chmod(0o755)
        with pytest.raises(tio.LockHeld, match=f"lock held by pid {holder.pid}"):
            with tio.exclusive_lock(target, "another tfxray score is writing it"):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert tio.lock_holder(target) is None
    with tio.exclusive_lock(target):
        pass


# --------------------------------------------------------------------------------------------- owned folders


def test_owned_folder_refuses_other_files_and_replaces_its_own_earlier_run(tmp_path):
    out = tmp_path / "eval"
    with tio.owned_folder(out, command="evaluate"):
        tio.atomic_write_text(out / "report.json", "{}")
        tio.atomic_write_text(out / "roc_image_a.png", "png")
        tio.atomic_write_text(out / "worst" / "fp01.png", "png")
    assert tio.read_record(out) == {"command": "evaluate",
                                    "files": ["report.json", "roc_image_a.png", "worst/fp01.png"]}
    with tio.owned_folder(out, command="evaluate") as owned:  # the same command again: replaces its report
        assert owned.earlier == {"report.json", "roc_image_a.png", "worst/fp01.png"} and not owned.foreign
        tio.atomic_write_text(out / "report.json", "{}")
        tio.atomic_write_text(out / "roc_image_b.png", "png")
    assert owned.removed == ["roc_image_a.png", "worst/fp01.png"]
    assert sorted(p.name for p in out.iterdir()) == [tio.RECORD_NAME, "report.json", "roc_image_b.png"]

    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError) as caught:
        with tio.owned_folder(out, command="evaluate"):
            pass
    assert str(caught.value) == f"--out {out}: not empty (1 file); choose an empty folder or pass --overwrite"
    with tio.owned_folder(out, command="evaluate", overwrite=True) as owned:
        tio.atomic_write_text(out / "report.json", "{}")
    assert owned.foreign == {"notes.txt"} and owned.removed == ["roc_image_b.png"]
    assert (out / "notes.txt").read_text() == "mine"  # never removed


def test_a_run_killed_inside_its_folder_leaves_files_the_next_run_knows_as_its_own(tmp_path):
    out = tmp_path / "eval"
    (out / "old").mkdir(parents=True)
    (out / "old" / "notes.txt").write_text("mine")  # a file of the user's, before any run
    with tio.owned_folder(out, command="evaluate", overwrite=True):
        tio.atomic_write_text(out / "report.json", "{}")
    killed = tio.owned_folder(out, command="evaluate", overwrite=True)
    killed.__enter__()  # the run starts, writes, and is killed: its block never ends (no record update)
    tio.atomic_write_text(out / "scores.csv", "path,score\n")
    tio.atomic_write_text(out / "roc_image_score.png", "png")
    assert tio.read_record(out)["started_ns"] > 0
    with tio.owned_folder(out, command="evaluate", overwrite=True) as rerun:  # the user's rerun
        assert rerun.earlier == {"report.json", "scores.csv", "roc_image_score.png"}
        assert rerun.foreign == {"old/notes.txt"}
        tio.atomic_write_text(out / "report.json", "{}")
        tio.atomic_write_text(out / "scores.csv", "path,score\n")
    assert rerun.removed == ["roc_image_score.png"] and (out / "old" / "notes.txt").is_file()
    assert tio.read_record(out) == {"command": "evaluate", "files": ["report.json", "scores.csv"]}
    del killed


def test_a_refusal_inside_the_block_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "eval"
    with pytest.raises(UserError):
        with tio.owned_folder(out, command="evaluate"):
            raise UserError("refused")
    assert not out.exists()


def test_owned_folder_counts_files_of_a_folder_written_by_hand(tmp_path):
    for name in ("a.png", "b.png", "sub/c.csv"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / ".a.png.000000-1.abcd1234.tmp.png").write_text("temp")  # temporary files do not count
    with pytest.raises(UserError, match=r"not empty \(3 files\); choose an empty folder or pass --overwrite"):
        with tio.owned_folder(tmp_path, command="evaluate"):
            pass


def test_a_failed_run_keeps_the_earlier_files_and_records_both(tmp_path):
    out = tmp_path / "eval"
    with tio.owned_folder(out, command="evaluate"):
        tio.atomic_write_text(out / "old.png", "png")
    with pytest.raises(RunError):
        with tio.owned_folder(out, command="evaluate"):
            tio.atomic_write_text(out / "new.png", "png")
            raise RunError("disk full")
    assert (out / "old.png").exists() and (out / "new.png").exists()
    assert tio.read_record(out)["files"] == ["new.png", "old.png"]
    with tio.owned_folder(out, command="evaluate") as owned:  # still all evaluate's: no --overwrite needed
        tio.atomic_write_text(out / "new.png", "png")
    assert owned.removed == ["old.png"]


def test_a_run_that_writes_nothing_creates_nothing(tmp_path):
    with pytest.raises(UserError):
        with tio.owned_folder(tmp_path / "eval", command="evaluate"):
            raise UserError("bad option")
    assert not (tmp_path / "eval").exists()


def test_an_input_inside_the_folder_is_never_removed(tmp_path):
    out = tmp_path / "eval"
    with tio.owned_folder(out, command="evaluate"):
        tio.atomic_write_text(out / "scores.csv", "label,score\n")
    with tio.owned_folder(out, command="evaluate", keep=[out / "scores.csv"]) as owned:
        tio.atomic_write_text(out / "report.json", "{}")
    assert (out / "scores.csv").exists() and owned.removed == []
    assert json.loads((out / tio.RECORD_NAME).read_text())["files"] == ["report.json", "scores.csv"]
