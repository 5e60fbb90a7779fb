"""Safe file output: a crash, a full disk or a second writer never leaves a half-written result behind.

- ``atomic_path`` (and the ``atomic_write_*`` helpers): a temporary file beside the target, moved
  into place only when the block succeeds. Temporary names are ``.{name}.{host}-{pid}.XXXXXXXX.tmp{suffix}``:
  hidden (``list_files`` and the folder checks pass them by), and owned. The first atomic write of a
  process into a folder removes the temporary files that a killed process of this machine left
  there (``sweep_stale_temps``: its pid no longer alive); a live writer's files are never touched.
- A write that fails (a full disk, a read-only file system, a quota) is a one-line ``RunError``
  naming the target and the system's reason (``write_error``), never a traceback.
- ``check_writable``: before any work, a one-line ``UserError`` when an output location cannot be
  written (read-only, no such folder permission). Creates nothing.
- ``exclusive_lock``: one writer per output file (``flock`` on ``<out>.lock``), the second one
  refused in one line naming the holder's pid.
- ``owned_folder``: a command's output folder that holds only what that command wrote (a record,
  ``.tfxray-outputs.json``), so a new run replaces an earlier run's files and leaves none stale,
  and never removes a file it did not write.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import RunError, UserError

# --------------------------------------------------------------------------------------------- temporary files

_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]  # several machines may share a folder (NFS)
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp(?P<suffix>\..*)?$")
_OLD_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\..*)?$")  # before the owner was in the name: never removed
_swept: set[str] = set()  # folders this process has already cleaned (once per folder, not per write)


def temp_prefix(name: str) -> str:
    """The start of this process's temporary names for ``name`` (``tempfile`` adds 8 random characters)."""
    return f".{name}.{_HOST}-{os.getpid()}."


def is_temp_name(name: str) -> bool:
    """A temporary file of an atomic write (this version's or an earlier one's): never a result."""
    return bool(TEMP_NAME.match(name) or _OLD_TEMP_NAME.match(name))


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_stale_temps(folder: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Remove the temporary files of atomic writes in ``folder`` whose process is gone (killed, say, by
    ``kill -9``); only those of this machine (a pid means nothing on another host), never a live one's.
    Done once per folder per process unless ``force``. Returns what was removed."""
    folder = Path(folder)
    key = os.path.abspath(folder)
    if key in _swept and not force:
        return []
    _swept.add(key)
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = TEMP_NAME.match(name)
        if match is None or match["host"] != _HOST or pid_alive(int(match["pid"])):
            continue
        try:
            os.unlink(folder / name)
            removed.append(folder / name)
        except OSError:  # gone already, or not ours to remove: leave it
            pass
    return removed


# --------------------------------------------------------------------------------------------- write errors


def write_error(path: str | os.PathLike, exc: OSError) -> RunError:
    """A failed write as one line: the target and the system's reason (e.g. 'No space left on device')."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return RunError(f"{path}: could not be written ({reason})")


def _is_about(exc: OSError, *paths) -> bool:
    """True when ``exc`` is about writing one of ``paths`` (or names no file at all, as a failed write() does)."""
    return exc.filename is None or str(exc.filename) in {str(p) for p in paths}


# --------------------------------------------------------------------------------------------- atomic output


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    An ``OSError`` while writing it (full disk, read-only file system) becomes a one-line
    ``RunError`` naming ``path``; the target keeps its earlier content and no temporary file stays.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp" + path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        yield Path(tmp)
        # mkstemp makes the file owner-only (0600); the result gets the mode any new file would (umask)
        if os.path.exists(tmp):
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        if not _is_about(exc, tmp, path):
            raise  # e.g. a source file the block reads: not a write failure
        raise write_error(path, exc) from None
    finally:
        try:
            if os.path.exists(tmp):
                os.unlink(tmp)
        except OSError:
            pass


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays, paths
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def atomic_save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or "png")
    return Path(path)


# --------------------------------------------------------------------------------------------- appending rows


def append_whole(fd: int, data: bytes, path: str | os.PathLike) -> None:
    """Append ``data`` (whole CSV rows) to the file open at ``fd`` (O_APPEND) with one ``write``, then fsync.

    A regular file takes the write whole, or the disk is full: a short or failed write (or fsync) cuts
    the file back to where it was, so no torn row stays, and raises a one-line ``RunError``.
    """
    start = os.fstat(fd).st_size
    try:
        written = os.write(fd, data)
        if written != len(data):  # a full disk takes what fits and refuses the rest
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync(fd)
    except OSError as exc:
        try:
            os.ftruncate(fd, start)
        except OSError:
            pass
        raise write_error(path, exc) from None


# --------------------------------------------------------------------------------------------- checks up front


def check_writable(path: str | os.PathLike, option: str = "--out", *, folder: bool = False) -> Path:
    """Refuse in one line (``UserError``) an output location that cannot be written, before any work.

    ``path`` is a file to write (``folder=False``: its folder must take a new file, and an existing
    file must open for writing) or a folder to write into. Folders that do not exist yet are not
    created: their nearest existing parent must take new entries. Probes with a temporary file of
    this process (removed at once).
    """
    path = Path(path)
    where = f"{option} {path}"
    if path.exists():
        if folder and not path.is_dir():
            raise UserError(f"{where}: not a folder")
        if not folder and path.is_dir():
            raise UserError(f"{where}: is a folder; give a file name")
    probe = path if folder else path.parent
    probe = Path(os.path.abspath(probe))
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{where}: {probe} is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix("write-check"), suffix=".tmp", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise UserError(f"{where}: cannot write there ({exc.strerror or exc})") from None
    if not folder and path.is_file():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        except OSError as exc:
            raise UserError(f"{where}: cannot write it ({exc.strerror or exc})") from None
    return path


# --------------------------------------------------------------------------------------------- one writer


class LockHeld(UserError):
    """Another process holds the output's lock."""

    def __init__(self, message: str, pid: int | None):
        super().__init__(message)
        self.pid = pid


def lock_path(target: str | os.PathLike) -> Path:
    target = Path(target)
    return target.with_name(target.name + ".lock")


@contextmanager
def exclusive_lock(target: str | os.PathLike, busy: str = "another process is writing it",
                   hint: str = "") -> Iterator[Path]:
    """Hold an exclusive, non-blocking ``flock`` on ``<target>.lock`` (holding this process's pid) for the block.

    A second holder is refused at once with a ``LockHeld`` (a ``UserError``): "TARGET: BUSY (lock held
    by pid N)HINT". The kernel drops the lock when its process dies (even by ``kill -9``), so a
    leftover lock file blocks nothing. The file is removed when the block ends; a process that
    opened it just before that notices (its inode is no longer the path's) and takes the new one.
    """
    target = Path(target)
    path = lock_path(target)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise LockHeld(f"{target}: {busy} ({_held(path, pid)}){hint}", pid) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # removed by the holder that just finished: lock the new file
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # for the message a second writer gets
        except OSError:  # a full disk: the lock holds all the same
            pass
        yield path
    finally:
        try:
            os.unlink(path)  # while still holding the lock: see above
        except OSError:
            pass
        os.close(fd)


def lock_holder(target: str | os.PathLike) -> str | None:
    """Whether a process holds ``exclusive_lock(target)`` now, without taking it: "lock held by pid N"
    (or naming the lock file when its pid cannot be read), None when no process does. Opens the lock
    read-only, so it also answers for a folder this process may not write."""
    path = lock_path(target)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file (or one we cannot open): no writer that we can see
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _held(path, _read_pid(fd))
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops a shared lock taken above
    return None


def _held(path: Path, pid: int | None) -> str:
    return f"lock held by pid {pid}" if pid else f"lock held: {path}"


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------- a user's text files

def read_text_file(path: str | os.PathLike, *, cap: int, over_cap: str, not_utf8: str,
                   nul: str | None = None) -> str:
    """A user's text file (recipe, manifest, table) as ``str``, refused in one line naming it: larger than
    ``cap`` bytes (``over_cap`` says why and how to raise it; read no further than the cap), holding a
    NUL byte when ``nul`` is given (its hint: a binary file given as text), or not UTF-8 (``not_utf8``
    hint; the line and byte named). A UTF-8 byte-order mark is dropped."""
    import codecs

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > cap:
            raise UserError(f"{path}: {size:,} bytes; {over_cap}")
        with open(path, "rb") as stream:
            raw = stream.read(cap + 1)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > cap:
        raise UserError(f"{path}: {over_cap}")
    at = raw.find(b"\0") if nul is not None else -1
    if at >= 0:
        raise UserError(f"{path}: line {_line_at(raw, at)}: a NUL byte (byte {at}); {nul}")
    start = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        raise UserError(f"{path}: line {_line_at(raw, at)}: not UTF-8 text (byte {at}: 0x{raw[at]:02x}); "
                        f"{not_utf8}") from None


def _line_at(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


# --------------------------------------------------------------------------------------------- owned folders

RECORD_NAME = ".tfxray-outputs.json"


def _files_under(folder: Path) -> dict[str, tuple]:
    """Every regular file under ``folder`` (relative, '/'-separated) and its signature, leaving out the
    record, lock files and temporary files of atomic writes; links to folders are not followed."""
    found = {}
    if not folder.is_dir():
        return found
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in names:
            if name == RECORD_NAME or is_temp_name(name) or name.endswith(".lock"):
                continue
            full = os.path.join(root, name)
            try:
                info = os.stat(full, follow_symlinks=False)
            except OSError:
                continue
            found[os.path.relpath(full, folder).replace(os.sep, "/")] = (info.st_ino, info.st_mtime_ns, info.st_size)
    return found


def read_record(folder: str | os.PathLike) -> dict | None:
    try:
        record = json.loads((Path(folder) / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("files"), list) else None


def earlier_run_files(folder: str | os.PathLike, command: str,
                      earlier: Callable[[Path, set[str]], set[str]] | None = None, files=None) -> set[str]:
    """The files in ``folder`` that an earlier run of ``command`` wrote: its record's, else ``earlier``'s guess."""
    folder = Path(folder)
    files = set(_files_under(folder) if files is None else files)
    record = read_record(folder)
    if record is not None and record.get("command") == command:
        ours = set(record["files"]) & files
        started = record.get("started_ns")
        if isinstance(started, int):  # a run that never finished (killed): what it wrote is newer than its start
            for rel in files - ours:
                try:
                    if os.stat(folder / rel, follow_symlinks=False).st_mtime_ns >= started:
                        ours.add(rel)
                except OSError:
                    pass
        return ours
    if earlier is not None and files:
        return set(earlier(folder, files)) & files
    return set()


class OwnedFolder:
    """What ``owned_folder`` found: the earlier run's files (``earlier``) and the others (``foreign``)."""

    def __init__(self, folder: Path, earlier: set[str], foreign: set[str]):
        self.folder, self.earlier, self.foreign = folder, earlier, foreign
        self.removed: list[str] = []  # the earlier run's files the new one did not write, removed at the end
        self.written: list[str] = []  # what the block wrote (set when it ends)


@contextmanager
def owned_folder(folder: str | os.PathLike, *, command: str, overwrite: bool = False, option: str = "--out",
                 earlier: Callable[[Path, set[str]], set[str]] | None = None,
                 keep=()) -> Iterator[OwnedFolder]:
    """A command's output folder that never mixes two runs' files.

    The folder is empty (or missing), or holds an earlier run of ``command`` (listed in its record,
    ``.tfxray-outputs.json``; ``earlier(folder, files)`` names them for a folder written before the
    record existed): the block writes, and when it succeeds the earlier run's files it did not
    write again are removed, so none is left stale. Any other file (``foreign``) needs ``overwrite``,
    and is never removed. ``keep``: paths never removed either (the run's own inputs, which may be
    an earlier run's outputs). The record then lists exactly what the block wrote, and the kept
    inputs (after a failure, what either run wrote, so the next run still knows them).
    """
    folder = Path(folder)
    kept_inputs = {os.path.realpath(p) for p in keep}
    before = _files_under(folder)
    record = read_record(folder)
    ours = earlier_run_files(folder, command, earlier, before)
    foreign = set(before) - ours
    if foreign and not overwrite:
        n = len(foreign)
        raise UserError(f"{option} {folder}: not empty ({n} file{'s' if n != 1 else ''}); choose an empty folder or"
                        " pass --overwrite")
    state = OwnedFolder(folder, ours, foreign)
    # A record saying a run is under way, from its start: a run killed before the end leaves it, and the
    # next run knows the files written since (``started_ns``) as that run's, not as someone else's.
    existed = folder.is_dir()
    started = {"command": command, "files": sorted(ours), "started_ns": time.time_ns()}
    if existed or not os.path.lexists(folder):
        try:
            atomic_write_json(folder / RECORD_NAME, started)
        except RunError:
            pass  # an unwritable folder: the block's own writes will say so, naming their file
    ok = False
    try:
        yield state
        ok = True
    finally:
        after = _files_under(folder)
        written = {rel for rel, sig in after.items() if before.get(rel) != sig}
        if ok:
            inputs = {rel for rel in ours - written if os.path.realpath(folder / rel) in kept_inputs}
            for rel in sorted(ours - written - inputs):
                if after.get(rel) == before.get(rel):  # untouched since: the earlier run's, stale now
                    try:
                        os.unlink(folder / rel)
                        state.removed.append(rel)
                    except OSError:
                        pass
            _remove_empty_folders(folder, {str(Path(rel).parent) for rel in state.removed})
            kept = written | inputs
        else:
            kept = (ours | written) & set(after)
        if kept or (record is not None and folder.is_dir()):
            try:
                atomic_write_json(folder / RECORD_NAME, {"command": command, "files": sorted(kept)})
            except RunError:
                if ok:
                    raise
        else:  # nothing written (a refusal inside the block): leave no record, nor a folder this made
            (folder / RECORD_NAME).unlink(missing_ok=True)
            if not existed:
                try:
                    folder.rmdir()
                except OSError:
                    pass
        state.written = sorted(written)


def _remove_empty_folders(folder: Path, relatives: set[str]) -> None:
    """Remove the sub-folders of ``folder`` that removing stale files left empty (deepest first)."""
    for rel in sorted(relatives, key=lambda r: -len(Path(r).parts)):
        current = folder / rel
        while current != folder and folder in current.parents:
            try:
                current.rmdir()  # only when empty
            except OSError:
                break
            current = current.parent
