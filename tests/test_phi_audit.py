"""PHI audit: values from inside DICOM files (names, dates, addresses, institutions, free text) never
reach any output of any command, at the most verbose logging.

Synthetic DICOMs carry distinctive values in PatientName, PatientBirthDate, PatientAddress,
OtherPatientIDs, InstitutionName, ReferringPhysicianName, StudyDescription, ImageComments and a few
more; every command runs as a user runs it (through the CLI's entry point in a subprocess,
TF_CPP_MIN_LOG_LEVEL=0, progress lines on, each command's stdout and stderr in its own log);
then every output byte is searched: CSV, JSON, Markdown, SVG, PNG (raw, and the text of its
tEXt/zTXt/iTXt chunks decompressed), TensorBoard event files, the .keras zip's members, the exported
SavedModel, and each command's stdout and stderr.

PatientID is an identifier tfxray reads on purpose, and documents where it goes: ``score`` writes it in
the patient_id column (and the roll-ups) unless ``--hash-ids``, which writes a salted hash instead;
``inspect`` lists it per file in audit.csv (its patient_id column, for the leak check). It must appear
there and nowhere else, and not at all in ``score --hash-ids`` output.

The folder the images sit in is a path the user gave: it is echoed back as a path (score's path column
is relative to it, split.csv and test.csv hold absolute paths, reports name their inputs), which is not
a disclosure from inside the files. It is not audited as PHI (a site should not name folders after
patients); the test checks it appears only in the path column of tables (split.csv, test.csv, val.csv,
evaluate's scores.csv hold absolute paths).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

FOLDER_NAME = "ZZSITEFOLDER"
PHI = {  # DICOM keyword: (value written, byte strings that would betray it)
    "PatientName": ("ZZPHINAME^ZZGIVEN", [b"ZZPHINAME", b"ZZGIVEN"]),
    "PatientBirthDate": ("19010203", [b"19010203", b"1901-02-03", b"03/02/1901", b"02/03/1901"]),
    "PatientAddress": ("ZZPHIADDRESS 12 Example Street", [b"ZZPHIADDRESS"]),
    "OtherPatientIDs": ("ZZOTHERPID77", [b"ZZOTHERPID"]),
    "InstitutionName": ("ZZPHIHOSPITAL General", [b"ZZPHIHOSPITAL"]),
    "InstitutionAddress": ("ZZINSTADDRESS 1 Road", [b"ZZINSTADDRESS"]),
    "ReferringPhysicianName": ("ZZREFDOC^ANNA", [b"ZZREFDOC"]),
    "PerformingPhysicianName": ("ZZPERFDOC^BEN", [b"ZZPERFDOC"]),
    "OperatorsName": ("ZZOPERATOR^CY", [b"ZZOPERATOR"]),
    "StudyDescription": ("ZZSTUDYDESC wrist pain after fall", [b"ZZSTUDYDESC"]),
    "SeriesDescription": ("ZZSERIESDESC", [b"ZZSERIESDESC"]),
    "ImageComments": ("ZZIMGCOMMENT patient anxious", [b"ZZIMGCOMMENT"]),
    "AccessionNumber": ("ZZACC123", [b"ZZACC123"]),
    "PatientComments": ("ZZPATCOMMENT", [b"ZZPATCOMMENT"]),
}
PATIENT_ID_PREFIX = "ZZPID"  # PatientID in the files: ZZPID-P0001...; the manifest's patient_id stays P0001


def make_data(root: Path) -> tuple[Path, Path]:
    """Synthetic wrist DICOMs under root/ZZSITEFOLDER/, every PHI field set; the manifest beside them."""
    import pydicom

    from tfxray.data.synth import synthesize

    folder = root / FOLDER_NAME
    synthesize(folder, task="wrist", n=24, seed=3, fmt="dicom", size=64, difficulty="easy", progress=False)
    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        for keyword, (value, _) in PHI.items():
            setattr(ds, keyword, value)
        ds.PatientID = f"{PATIENT_ID_PREFIX}-{ds.PatientID}"
        ds.save_as(path, enforce_file_format=True)
    return folder, folder / "manifest.csv"


# One process runs a list of commands, each through the CLI's own entry point with its stdout and stderr
# (the file descriptors, so TensorFlow's C++ logs too) sent to out/logs/NAME.*.log: the commands as a user
# runs them, without paying TensorFlow's import once per command.
SESSION = """
import json, os, sys
from cli.main import main
out, steps = sys.argv[1], json.loads(sys.argv[2])
codes = {}
for name, args in steps:
    sys.stdout.flush(); sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(f"{out}/logs/{name}.stdout.log", "wb") as o, open(f"{out}/logs/{name}.stderr.log", "wb") as e:
        os.dup2(o.fileno(), 1); os.dup2(e.fileno(), 2)
        try:
            codes[name] = main(args) or 0
        except SystemExit as exc:
            codes[name] = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os.dup2(saved[0], 1); os.dup2(saved[1], 2)
            os.close(saved[0]); os.close(saved[1])
print(json.dumps(codes))
"""


def tfxray(out: Path, steps: list[tuple]) -> dict[str, int]:
    """Run ``tfxray ARGS`` for each (name, *ARGS) of ``steps`` at the most verbose level, in one process; stdout
    and stderr of each go to out/logs/NAME.stdout.log and NAME.stderr.log. Returns {name: exit code}."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "ABSL_MIN_LOG_LEVEL": "0", "TFXRAY_PROGRESS_INTERVAL": "0",
           "PYTHONWARNINGS": "default"}
    env.pop("TFXRAY_NO_PROGRESS", None)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    listed = [(name, [str(a) for a in args]) for name, *args in steps]
    done = subprocess.run([sys.executable, "-c", SESSION, str(out), json.dumps(listed)], capture_output=True,
                          env=env, timeout=900, cwd=Path(__file__).resolve().parents[1])
    print(f"{[name for name, _ in listed]}: {time.perf_counter() - started:.1f} s")
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    (out / "logs" / "session.stderr.log").write_bytes(done.stderr)
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def png_texts(data: bytes) -> list[bytes]:
    """The text of a PNG's tEXt, zTXt and iTXt chunks, decompressed."""
    texts, at = [], 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        at += 12 + length
        try:
            if kind == b"tEXt":
                texts.append(body)
            elif kind == b"zTXt":
                key, _, rest = body.partition(b"\0")
                texts.append(key + b"\0" + zlib.decompress(rest[1:]))
            elif kind == b"iTXt":
                key, _, rest = body.partition(b"\0")
                compressed, text = rest[0], rest[2:].split(b"\0", 2)[-1]
                texts.append(key + b"\0" + (zlib.decompress(text) if compressed else text))
        except zlib.error:
            texts.append(body)
    return texts


def readable_parts(path: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of what a file holds as one would grep it: its bytes, a zip's members, a PNG's text
    chunks, a gzip's content."""
    data = path.read_bytes()
    parts = [(str(path), data)]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            parts += [(f"{path}!{name}", archive.read(name)) for name in archive.namelist()]
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        parts += [(f"{path}[text]", text) for text in png_texts(data)]
    if data.startswith(b"\x1f\x8b"):
        parts.append((f"{path}[gz]", gzip.decompress(data)))
    return parts


def hits(out: Path, needles: list[bytes]) -> dict[str, list[str]]:
    """{needle: files holding it}, case-insensitively."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        for name, data in readable_parts(path):
            lower = data.lower()
            for needle in needles:
                if needle.lower() in lower:
                    found.setdefault(needle.decode(), []).append(str(Path(name).relative_to(out)) if "!" not in name
                                                               and "[" not in name else name.replace(f"{out}/", ""))
    return found


def test_no_phi_from_inside_the_files_reaches_any_output(tmp_path):
    folder, manifest = make_data(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    run, salt = out / "run", "audit-salt"
    steps = [
        ("inspect", "inspect", folder, "--out", out / "audit.csv"),
        ("train", "train", "demo", "--data", manifest, "--out", run, "--input-size", "48", "--epochs", "1",
         "--batch-size", "8"),
        ("inspect-run", "inspect", folder, "--out", out / "audit_run.csv", "--run", run, "--manifest",
         run / "split.csv"),
        ("score", "score", run, folder, "--out", out / "scores.csv", "--gradcam", out / "panels"),
        ("score-hashed", "score", run, folder, "--out", out / "hashed" / "scores.csv", "--hash-ids", "--salt", salt),
        ("gradcam", "gradcam", run, folder / "images" / "P0001", "--out", out / "gradcam"),
        ("evaluate-run", "evaluate", run, "--data", manifest, "--out", out / "eval_run", "--worst", "2",
         "--patient-column", "patient_id"),
        ("export", "export", run, "--format", "savedmodel", "--out", out / "export" / "1"),
    ]
    codes = tfxray(out, steps)
    for name, *_ in steps:
        assert codes[name] == 0, (name, (out / "logs" / f"{name}.stderr.log").read_text()[-3000:])
        said = sum((out / "logs" / f"{name}.{stream}.log").stat().st_size for stream in ("stdout", "stderr"))
        assert said > 0, f"{name} wrote nothing to its logs"  # the logs audited are really the commands' output
    # evaluate on the scores: labels joined from the manifest (by file), hashed patients as the unit
    labels = pd.read_csv(manifest, dtype=str).drop_duplicates("path").set_index("path")["label"]
    scored = pd.read_csv(out / "hashed" / "scores.csv", dtype=str, keep_default_na=False)
    scored["label"] = scored["path"].map(labels)
    scored.to_csv(out / "hashed" / "labelled.csv", index=False)
    codes = tfxray(out, [("evaluate-scores", "evaluate", "--scores", out / "hashed" / "labelled.csv", "--label-column",
                          "label", "--positive", "fracture", "--score-column", "score", "--patient-column",
                          "patient_id", "--out", out / "eval_scores")])
    assert codes["evaluate-scores"] == 0, (out / "logs" / "evaluate-scores.stderr.log").read_text()[-3000:]

    files = [p for p in out.rglob("*") if p.is_file()]
    kinds = {p.suffix or p.name for p in files}
    assert {".csv", ".json", ".md", ".png", ".log", ".keras", ".pb"} <= kinds, kinds
    assert any("tfevents" in p.name for p in files) or not (run / "logs").exists()
    assert (run / "model.keras").is_file() and any(p.suffix == ".png" for p in (out / "panels").rglob("*"))

    # the values from inside the files: nowhere
    needles = [needle for _, found in PHI.values() for needle in found]
    assert hits(out, needles) == {}

    # PatientID: exactly where it is documented, and hashed with --hash-ids
    where = hits(out, [PATIENT_ID_PREFIX.encode()]).get(PATIENT_ID_PREFIX, [])
    documented = {"scores.csv", "scores_rollup.csv", "audit.csv", "audit_run.csv"}
    assert set(where) == documented, where
    hashed = pd.read_csv(out / "hashed" / "scores.csv", dtype=str, keep_default_na=False)
    hashed = hashed[hashed.status == "ok"]  # (manifest.csv, beside the images, is no image: no ids)
    assert len(hashed) == 24 and hashed.patient_id.str.fullmatch(r"[0-9a-f]{16}").all(), hashed.patient_id.head()
    plain = pd.read_csv(out / "scores.csv", dtype=str, keep_default_na=False)
    plain = plain[plain.status == "ok"]
    assert len(plain) == 24 and plain.patient_id.str.startswith(f"{PATIENT_ID_PREFIX}-P").all()

    # the folder the user named is echoed back only as paths: in the path column of tables
    folder_files = hits(out, [FOLDER_NAME.encode()]).get(FOLDER_NAME, [])
    for name in folder_files:
        assert name.endswith(".csv"), folder_files
        table = pd.read_csv(out / name, dtype=str, keep_default_na=False)
        holding = [c for c in table.columns if table[c].str.contains(FOLDER_NAME, regex=False).any()]
        assert holding == ["path"], (name, holding)
    print(f"PHI audit: {len(steps) + 1} commands, {len(files)} files grepped "
          f"({sum(len(readable_parts(p)) for p in files)} parts), 0 PHI hits; PatientID in {sorted(where)}; "
          f"folder name (a user-given path) in {len(folder_files)} files")
