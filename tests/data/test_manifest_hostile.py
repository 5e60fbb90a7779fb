"""Every bad manifest a user can write is one line naming the row (or line), never a traceback."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from tfxray.cli.main import cli
from tfxray.data import manifest as manifest_module
from tfxray.data.manifest import load_manifest
from tfxray.errors import UserError

CLASSES = ["normal", "fracture"]


@pytest.fixture()
def data(tmp_path):
    """data/ with img/a.png and img/b.png; a secret file beside data/ (outside it)."""
    folder = tmp_path / "data"
    (folder / "img").mkdir(parents=True)
    for name in ("a", "b"):
        (folder / "img" / f"{name}.png").write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"x")
    return folder


def write(folder, content: bytes | str, name="manifest.csv"):
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def refusal(path, classes=CLASSES, **options) -> str:
    with pytest.raises(UserError) as caught:
        load_manifest(path, classes=classes, **options)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 5000, message
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: "):]


OK = "path,label\nimg/a.png,normal\nimg/b.png,fracture\n"


def test_a_good_manifest_still_loads(data):
    manifest = load_manifest(write(data, OK), classes=CLASSES)
    assert manifest.images.path.tolist() == [str(data / "img/a.png"), str(data / "img/b.png")]


@pytest.mark.parametrize(("content", "message"), [
    ("file,label\nimg/a.png,normal\n", "missing column(s) path (found: file, label)"),
    ("path\nimg/a.png\n", "missing column(s) label (found: path)"),
    ("path,label\nimg/a.png,normal\nimg/b.png,fractur\n", "2 problem(s): row 3: unknown label 'fractur' (expected "
                                                         "normal, fracture); class 'fracture' has no images"),
    ("path,label\nimg/a.png,normal\nimg/a.png,normal\nimg/b.png,fracture\n",
     "1 problem(s): row 3: duplicate of an earlier row ("),
    ("path,label\nimg/a.png,normal\nimg/b.png,fracture,extra\n",
     "line 3: 3 fields, but the header has 2 (a value holding a comma needs quotes)"),
    ("path,label\n,normal\nimg/b.png,fracture\n", "1 problem(s): row 2: no path"),
    ("path,label\nimg/a.png,normal\nimg/b.png\n", "2 problem(s): row 3: no label; class 'fracture' has no images"),
    ("path,label\nimg/a.png,normal\nimg/b.png,  \n", "2 problem(s): row 3: no label;"),
    ("", "empty file (a manifest needs a header line: path,label,...)"),
    ('path,label\nimg/a.png,"normal\nimg/b.png,fracture\n', "not a readable CSV (Error tokenizing data."),
    ("path,label\nimg/a.png,normal\nimg/c.png,fracture\n", "1 problem(s): row 3: file not found: "),
])
def test_bad_rows_are_named(data, content, message):
    assert refusal(write(data, content)).startswith(message)


def test_non_utf8_names_the_line_and_byte(data):
    path = write(data, b"path,label\nimg/a.png,normal\nimg/b\xff.png,fracture\n")
    assert refusal(path) == "line 3: not UTF-8 text (byte 33: 0xff); save the manifest as UTF-8 CSV"
    path = write(data, b"\xef\xbb\xbf" + OK.encode())  # a byte-order mark is fine
    assert len(load_manifest(path, classes=CLASSES)) == 2


def test_nul_bytes_name_the_line(data):
    path = write(data, b"path,label\nimg/a.png,normal\nimg/b.png,frac\x00ture\n")
    assert refusal(path) == "line 3: a NUL byte (byte 42); a manifest is a text CSV, not a binary file"
    path = write(data, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")  # an image given as the manifest
    assert refusal(path).startswith("line 3: a NUL byte (byte 8)")


def test_size_cap_refuses_before_reading(data, monkeypatch):
    path = write(data, OK)
    monkeypatch.setenv("TFXRAY_MAX_MANIFEST_MB", "0.00001")  # 10 bytes
    assert refusal(path) == (f"{len(OK)} bytes; a manifest over 10 bytes (1e-05 MB) is refused "
                             "(set TFXRAY_MAX_MANIFEST_MB to raise the limit)")
    monkeypatch.setenv("TFXRAY_MAX_MANIFEST_MB", "lots")
    with pytest.raises(UserError, match=r"^TFXRAY_MAX_MANIFEST_MB='lots': a positive number of megabytes expected$"):
        load_manifest(path)
    monkeypatch.delenv("TFXRAY_MAX_MANIFEST_MB")
    monkeypatch.setattr(manifest_module, "MAX_MANIFEST_MB", 0.00002)  # the default cap, 200 MB, is a constant
    assert refusal(path).startswith(f"{len(OK)} bytes; a manifest over 20 bytes")
    monkeypatch.setattr(manifest_module, "MAX_MANIFEST_MB", 200.0)
    assert manifest_module.manifest_cap() == 200_000_000


def test_relative_paths_cannot_leave_the_folder_by_dotdot(data):
    path = write(data, "path,label\nimg/a.png,normal\n../secret.png,fracture\nimg/../img/b.png,fracture\n")
    assert refusal(path) == ("1 problem(s): row 3: path ../secret.png leads outside the manifest's folder through "
                             "'..'; refused (write an absolute path if that file is meant)")


def test_relative_paths_cannot_leave_the_folder_by_symlink(data, tmp_path):
    os.symlink(tmp_path / "secret.png", data / "img" / "link.png")  # a file link
    os.symlink(tmp_path, data / "up")  # a folder link
    path = write(data, "path,label\nimg/a.png,normal\nimg/link.png,fracture\nup/secret.png,fracture\n")
    message = refusal(path)
    assert message == (f"2 problem(s): row 3: path img/link.png leads outside the manifest's folder through a "
                       f"symlink (to {tmp_path / 'secret.png'}); refused (write an absolute path if that file is "
                       f"meant); row 4: path up/secret.png leads outside the manifest's folder through a symlink (to "
                       f"{tmp_path / 'secret.png'}); refused (write an absolute path if that file is meant)")
    # a symlink that stays inside the folder is fine
    os.symlink(data / "img" / "b.png", data / "img" / "alias.png")
    inside = write(data, "path,label\nimg/a.png,normal\nimg/alias.png,fracture\n")
    assert len(load_manifest(inside, classes=CLASSES)) == 2


def test_absolute_paths_are_taken_as_written(data, tmp_path):
    """Absolute paths are the user's explicit choice (tfxray's own split.csv and test.csv are absolute), so
    a file outside the manifest's folder is listed by its absolute path; the containment rule is about
    relative paths."""
    path = write(data, f"path,label\nimg/a.png,normal\n{tmp_path / 'secret.png'},fracture\n")
    assert load_manifest(path, classes=CLASSES).images.path.tolist() == [str(data / "img/a.png"),
                                                                        str(tmp_path / "secret.png")]


def test_the_manifest_folder_itself_behind_a_symlink_is_fine(data, tmp_path):
    os.symlink(data, tmp_path / "linked")
    manifest = load_manifest(write(data, OK).parent.parent / "linked" / "manifest.csv", classes=CLASSES)
    assert manifest.images.path.tolist() == [str(tmp_path / "linked/img/a.png"), str(tmp_path / "linked/img/b.png")]


def test_class_folders_follow_the_same_rule(tmp_path):
    tree = tmp_path / "tree"
    (tree / "normal").mkdir(parents=True)
    (tree / "normal" / "a.png").write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.png").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", tree / "fracture")
    with pytest.raises(UserError) as caught:
        load_manifest(tree)
    assert str(caught.value) == (f"{tree}: 1 problem(s): fracture/b.png: leads outside the folder through a symlink "
                                 f"(to {tmp_path / 'elsewhere' / 'b.png'}); refused (list the file in a CSV manifest "
                                 f"by its absolute path if it is meant)")


def test_paths_that_look_like_numbers_stay_text(data):
    (data / "00012").write_bytes(b"x")  # DICOM files are often named by number
    manifest = load_manifest(write(data, "path,label\n00012,normal\nimg/b.png,fracture\n"), classes=CLASSES)
    assert manifest.images.path.tolist()[0] == str(data / "00012")


def test_huge_values_are_cut(data):
    label = "z" * 100_000
    message = refusal(write(data, f"path,label\nimg/a.png,normal\nimg/b.png,{label}\n"))
    assert message.startswith("2 problem(s): row 3: unknown label 'zzz") and len(message) < 300
    message = refusal(write(data, "path,label\nimg/a.png,normal\n" + "q" * 100_000 + ".png,fracture\n"))
    assert len(message) < 500


def test_many_bad_rows_are_counted_not_listed(data):
    rows = "".join(f"img/missing{i}.png,normal\n" for i in range(5000))
    message = refusal(write(data, "path,label\nimg/b.png,fracture\n" + rows))
    assert message.startswith("5000 problem(s): row 3: file not found") and message.endswith("; and 4980 more")


def test_the_cli_says_it_in_one_line(data, tmp_path):
    path = write(data, b"path,label\nimg/a.png,normal\nimg/b.png,fracture\x00\n")
    result = CliRunner().invoke(cli, ["train", "demo", "--data", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output == (f"error: {path}: line 3: a NUL byte (byte 46); a manifest is a text CSV, not a binary "
                             f"file\n")
