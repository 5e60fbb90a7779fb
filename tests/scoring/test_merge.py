"""tfxray merge: shard CSVs back into one table, with roll-ups over the whole export."""

import pandas as pd
import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.folder_helpers import BROKEN_PNG, copy_images
from tfxray.errors import UserError
from tfxray.scoring.batch import rollup_path, score_folder
from tfxray.scoring.merge import merge_shards

HEADER = "path,sop_uid,patient_id,study_id,frame,score,call,status,error\n"


def part(path, rows):
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


@pytest.fixture()
def parts(tmp_path):
    # study S1's files fall in both parts: each part's own roll-up sees half of it
    a = part(tmp_path / "part-1.csv", ["a.dcm,1.1,P1,S1,,0.900000,fracture,ok,",
                                       "b.dcm,1.2,P2,S2,,0.100000,normal,ok,"])
    b = part(tmp_path / "part-2.csv", ["c.dcm,1.3,P1,S1,,0.200000,normal,ok,",
                                       "d.png,,,,,,,error,cannot decode"])
    return a, b


def test_merge_keeps_every_row_once_and_rolls_up_whole_studies(parts, tmp_path):
    out = tmp_path / "scores.csv"
    summary = merge_shards(list(parts), out, classes=["normal", "fracture"], threshold=0.5, aggregate="mean")
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.path) == ["a.dcm", "b.dcm", "c.dcm", "d.png"]
    assert (summary.rows, summary.files, summary.statuses) == (4, 4, {"ok": 3, "error": 1})
    rollup = pd.read_csv(rollup_path(out), dtype={"id": str}).set_index(["level", "id"])
    assert rollup.loc[("study", "S1"), "score"] == pytest.approx(0.55)  # mean of 0.9 and 0.2, across the parts
    assert rollup.loc[("study", "S1"), "n_files"] == 2
    assert rollup.loc[("study", "S1"), "call"] == "fracture"
    assert rollup.loc[("patient", "P2"), "call"] == "normal"


def test_merge_refusals(parts, tmp_path):
    a, b = parts
    twice = part(tmp_path / "part-3.csv", ["b.dcm,1.2,P2,S2,,0.100000,normal,ok,"])
    with pytest.raises(UserError, match=r"part-3.csv, line 2: b.dcm is also in .*part-1.csv"):
        merge_shards([a, b, twice], tmp_path / "m.csv", classes=["normal", "fracture"], threshold=0.5)
    other = tmp_path / "other.csv"
    other.write_text("path,score,status\nx,0.1,ok\n")
    with pytest.raises(UserError, match="columns differ"):
        merge_shards([a, other], tmp_path / "m.csv", classes=["normal", "fracture"], threshold=0.5)
    torn = tmp_path / "torn.csv"
    torn.write_text(HEADER + "e.dcm,1.5,P3,S3,,0.3")
    with pytest.raises(UserError, match=r"torn.csv, line 2: 6 fields.*--resume"):
        merge_shards([a, torn], tmp_path / "m.csv", classes=["normal", "fracture"], threshold=0.5)
    with pytest.raises(UserError, match="is one of the parts"):
        merge_shards([a, b], a, classes=["normal", "fracture"], threshold=0.5)
    assert not (tmp_path / "m.csv").exists()  # nothing half-written under the final name


def test_a_part_still_being_written_is_refused(parts, tmp_path):
    import fcntl

    a, b = parts
    with open(a.with_name(a.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(UserError, match=r"still writing it \(lock held: .*part-1.csv.lock\)"):
            merge_shards([a, b], tmp_path / "m.csv", classes=["normal", "fracture"], threshold=0.5)


def test_cli_merges_real_shards_into_the_unsharded_table(tiny_run, wrist_png, tmp_path):
    png_dir, manifest = wrist_png
    inbox = tmp_path / "inbox"
    copy_images(png_dir, manifest.path[:10], inbox / "png")
    (inbox / "broken.png").write_bytes(BROKEN_PNG)
    whole = tmp_path / "whole.csv"
    score_folder(tiny_run, inbox, whole, progress=False)
    shards = []
    for i in (1, 2, 3):
        shards.append(tmp_path / f"part-{i}.csv")
        score_folder(tiny_run, inbox, shards[-1], shard=(i, 3), progress=False)
    out = tmp_path / "merged.csv"
    result = CliRunner().invoke(cli, ["merge", str(tiny_run), *map(str, shards), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "merged 3 part(s): 11 file(s)" in result.output
    merged = pd.read_csv(out, keep_default_na=False).sort_values("path").reset_index(drop=True)
    expected = pd.read_csv(whole, keep_default_na=False).sort_values("path").reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, expected)
    assert pd.read_csv(rollup_path(out)).equals(pd.read_csv(rollup_path(whole)))
