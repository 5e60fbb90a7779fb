"""`tfxray evaluate RUN...`: the run's own held-out rows (--split), several runs compared directly, images
outside the training profile left out and counted, --positive checked against the model, the worst cases'
Grad-CAM gallery, and what report.md says (figure links, the model's threshold rule, degenerate CIs)."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from tfxray.cli.main import cli

FRACTURE_RULE = re.compile(r"model's threshold [0-9.]+ \(")


def evaluate(*args):
    return CliRunner().invoke(cli, ["evaluate", *map(str, args)])


def absolute_manifest(wrist_png, path: Path, extra_rows=()) -> Path:
    """The wrist set's manifest with absolute paths (boxes kept), plus ``extra_rows`` (path, label)."""
    folder, manifest = wrist_png
    table = pd.read_csv(folder / "manifest.csv", dtype=str)
    table["path"] = [str(folder / p) for p in table.path]
    extra = pd.DataFrame(list(extra_rows), columns=["path", "label"])
    pd.concat([table, extra], ignore_index=True).to_csv(path, index=False)
    return path


def run_copy(tiny_run, wrist_png, target: Path) -> Path:
    """A copy of the tiny run holding test.csv (training writes it; written here from split.csv if not)."""
    shutil.copytree(tiny_run, target)
    if not (target / "test.csv").is_file():
        split = pd.read_csv(target / "split.csv", dtype=str)
        table = pd.read_csv(absolute_manifest(wrist_png, target / "all.csv"), dtype=str)
        table[table.path.isin(split.path[split.split == "test"])].to_csv(target / "test.csv", index=False)
    return target


def perturbed_copy(tiny_run, wrist_png, target: Path, threshold: float) -> Path:
    """Another model for the same task: the tiny run with its last kernel perturbed and its own threshold."""
    from tfxray.models.bundle import load_bundle

    run_copy(tiny_run, wrist_png, target)
    bundle = load_bundle(target)
    dense = [layer for layer in bundle.model.layers if getattr(layer, "kernel", None) is not None][-1]
    kernel = dense.kernel.numpy()
    dense.kernel.assign(kernel + np.random.default_rng(0).normal(0, 2 * kernel.std(), kernel.shape).astype(kernel.dtype))
    bundle.model.save(target / "model.keras")
    meta = json.loads((target / "tfxray.json").read_text())
    meta.update(threshold=threshold, threshold_rule="youden on the validation split")
    (target / "tfxray.json").write_text(json.dumps(meta))
    return target


def delong_paired(y, a, b):
    """Paired DeLong test by its structural components, written out apart from tfxray: (auc_a, auc_b, z)."""
    def components(s):
        cases, controls = s[y][:, None], s[~y][None, :]
        psi = (cases > controls) + 0.5 * (cases == controls)
        return psi.mean(axis=1), psi.mean(axis=0), psi.mean()

    v10a, v01a, auc_a = components(a)
    v10b, v01b, auc_b = components(b)
    s = np.cov(np.vstack([v10a, v10b])) / y.sum() + np.cov(np.vstack([v01a, v01b])) / (~y).sum()
    return auc_a, auc_b, (auc_a - auc_b) / np.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])


def test_positive_that_contradicts_the_model_is_one_line_exit_2(tiny_run, wrist_png, tmp_path):
    manifest = absolute_manifest(wrist_png, tmp_path / "m.csv")
    result = evaluate(tiny_run, "--data", manifest, "--positive", "normal", "--out", tmp_path / "e")
    assert result.exit_code == 2
    assert result.output == ("error: --positive normal: the model's positive class is fracture (its score is the"
                             " probability of fracture); leave --positive out or give --positive fracture\n")
    assert not (tmp_path / "e").exists()  # refused before anything was scored or written


def test_split_test_evaluates_the_runs_held_out_rows(tiny_run, wrist_png, tmp_path):
    run = run_copy(tiny_run, wrist_png, tmp_path / "run")
    out = tmp_path / "e"
    result = evaluate(run, "--split", "test", "--out", out, "--bootstrap", "200")
    assert result.exit_code == 0, result.output
    split = pd.read_csv(run / "split.csv")
    held_out = split[split.split == "test"]
    scores = pd.read_csv(out / "scores.csv")
    assert sorted(scores.path) == sorted(held_out.path) and (scores.path.str.startswith("/")).all()
    report = json.loads((out / "report.json").read_text())
    image = report["levels"]["image"]
    assert (image["n"], image["n_positive"]) == (len(held_out), int((held_out.label == "fracture").sum()))

    # the model's threshold is named as training named it, in the summary and in report.md
    meta = json.loads((run / "tfxray.json").read_text())
    named = f"model's threshold {meta['threshold']:.4g} ({meta['threshold_rule']})"
    assert f"threshold rule: {named}" in result.output
    markdown = (out / "report.md").read_text()
    assert f"- Threshold rule: {named}." in markdown and f"- **score**: {named};" in markdown
    # report.md links every figure it wrote, relative to itself
    links = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown))
    assert links == {p.name for p in out.glob("*.png")} and all((out / link).is_file() for link in links)


def test_split_without_its_file_says_how_to_make_one(tiny_run, wrist_png, tmp_path):
    run = run_copy(tiny_run, wrist_png, tmp_path / "run")
    (run / "val.csv").unlink(missing_ok=True)  # as runs trained before the held-out manifests
    result = evaluate(run, "--split", "val", "--out", tmp_path / "e")
    assert result.exit_code == 2
    assert result.output == (f"error: {run}: no val.csv (runs trained before tfxray wrote their held-out rows have"
                             f" none); make one from {run / 'split.csv'}, keeping its rows whose split is validation,"
                             " and give it with --data\n")


def test_images_outside_the_profile_are_excluded_and_counted(tiny_run, wrist_png, tmp_path):
    from tests.scoring.helpers import pydicom_test_files

    Image.fromarray(np.full((3, 3), 200, np.uint8)).save(tmp_path / "tiny.png")
    manifest = absolute_manifest(wrist_png, tmp_path / "m.csv", [(str(pydicom_test_files() / "CT_small.dcm"),
                                                                  "fracture"), (str(tmp_path / "tiny.png"), "normal")])
    n = wrist_png[1].path.nunique()
    out = tmp_path / "e"
    result = evaluate(tiny_run, "--data", manifest, "--out", out, "--roc", "--bootstrap", "200")
    assert result.exit_code == 0, result.output
    assert (f"excluded 2 image(s) outside the model's training profile from the analysis (listed in"
            f" {out / 'excluded.csv'}; --allow-modality evaluates them): 1 x modality CT, model trained on radiographs"
            " (png files); 1 x image 3x3 px, model trained on 64 px (shorter side under 24 px)") in result.output
    excluded = pd.read_csv(out / "excluded.csv")
    assert sorted(Path(p).name for p in excluded.path) == ["CT_small.dcm", "tiny.png"]
    report = json.loads((out / "report.json").read_text())
    assert report["levels"]["image"]["n"] == len(pd.read_csv(out / "scores.csv")) == n
    assert report["excluded"]["n"] == 2 and "## Excluded images" in (out / "report.md").read_text()

    allowed = evaluate(tiny_run, "--data", manifest, "--out", tmp_path / "all", "--roc", "--bootstrap", "200",
                       "--allow-modality")
    assert allowed.exit_code == 0, allowed.output
    assert json.loads((tmp_path / "all" / "report.json").read_text())["levels"]["image"]["n"] == n + 2

    # an unreadable file still stops the evaluation
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    broken = absolute_manifest(wrist_png, tmp_path / "b.csv", [(str(tmp_path / "broken.png"), "normal")])
    result = evaluate(tiny_run, "--data", broken, "--out", tmp_path / "b")
    assert result.exit_code == 1 and f"\nerror: {tmp_path / 'broken.png'}: " in result.output


def test_two_runs_compared_directly(tiny_run, wrist_png, tmp_path):
    run_a = run_copy(tiny_run, wrist_png, tmp_path / "run_a")
    run_b = perturbed_copy(tiny_run, wrist_png, tmp_path / "run_b", threshold=0.3)
    manifest = absolute_manifest(wrist_png, tmp_path / "m.csv")
    out = tmp_path / "e"
    result = evaluate(run_a, run_b, "--data", manifest, "--out", out, "--roc", "--bootstrap", "200")
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out / "scores.csv")
    assert {"run_a", "run_b"} <= set(scores.columns) and "score" not in scores.columns
    report = json.loads((out / "report.json").read_text())
    image = report["levels"]["image"]
    (comparison,) = image["comparisons"]
    assert comparison["models"] == ["run_a", "run_b"] and comparison["cases"] == "same"
    y = (scores.label == "fracture").to_numpy()
    oriented = {c: scores[c].to_numpy() * (-1 if image["models"][c]["direction"] == ">" else 1)
                for c in ("run_a", "run_b")}
    auc_a, auc_b, z = delong_paired(y, oriented["run_a"], oriented["run_b"])
    assert image["models"]["run_a"]["auc"] == pytest.approx(auc_a, abs=1e-12)
    assert image["models"]["run_b"]["auc"] == pytest.approx(auc_b, abs=1e-12)
    assert comparison["z"] == pytest.approx(z, rel=1e-9)
    # each run at its own saved threshold
    a_threshold = json.loads((run_a / "tfxray.json").read_text())["threshold"]
    assert image["models"]["run_a"]["threshold"]["value"] == a_threshold
    assert image["models"]["run_b"]["threshold"]["value"] == 0.3
    assert image["models"]["run_b"]["operating_point"]["tp"] == int((scores.run_b[y] >= 0.3).sum())
    assert "run_a vs run_b: dAUC" in result.output and "model's threshold 0.3 (youden on the validation split)" \
        in result.output

    # --split test: both runs' own held-out rows, the same images; a gallery per run
    result = evaluate(run_a, run_b, "--split", "test", "--out", tmp_path / "s", "--roc", "--bootstrap", "200",
                      "--worst", "1")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "s" / "scores.csv")) == pd.read_csv(run_a / "test.csv").path.nunique()
    for run in ("run_a", "run_b"):
        assert sorted(p.name[:4] for p in (tmp_path / "s" / "worst" / run).iterdir()) == ["fn01", "fp01"]


def test_runs_that_cannot_be_compared_are_refused(tiny_run, wrist_png, tmp_path):
    run_a = run_copy(tiny_run, wrist_png, tmp_path / "run_a")
    run_b = run_copy(tiny_run, wrist_png, tmp_path / "run_b")
    test = pd.read_csv(run_b / "test.csv")
    test[test.path != test.path.iloc[0]].to_csv(run_b / "test.csv", index=False)
    result = evaluate(run_a, run_b, "--split", "test", "--out", tmp_path / "e")
    n = test.path.nunique()
    assert result.exit_code == 2
    assert result.output == (f"error: run_b: its test.csv holds other images than run_a's ({n - 1} in common of {n}"
                             f" and {n - 1}); compare the runs on the same cases with --data MANIFEST\n")
    meta = json.loads((run_b / "tfxray.json").read_text())
    meta["classes"] = ["normal", "broken"]
    (run_b / "tfxray.json").write_text(json.dumps(meta))
    result = evaluate(run_a, run_b, "--split", "test", "--out", tmp_path / "e")
    assert result.exit_code == 2
    assert result.output == ("error: run_b: classes normal/broken differ from run_a's normal/fracture (negative"
                             " first): the runs answer different questions\n")


def test_worst_cases_gallery(tiny_run, wrist_png, tmp_path):
    run = run_copy(tiny_run, wrist_png, tmp_path / "run")
    out = tmp_path / "e"
    result = evaluate(run, "--split", "test", "--out", out, "--worst", "2", "--roc", "--bootstrap", "200")
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out / "scores.csv")
    normals = scores[scores.label == "normal"].sort_values("score", ascending=False, kind="stable").head(2)
    fractures = scores[scores.label == "fracture"].sort_values("score", kind="stable").head(2)
    worst = json.loads((out / "report.json").read_text())["worst"]["models"]["score"]
    for key, expected in (("false_positives", normals), ("false_negatives", fractures)):
        listed = worst[key]
        assert [c["score"] for c in listed] == pytest.approx(expected.score.tolist())
        assert [Path(c["path"]).name for c in listed] == [Path(p).name for p in expected.path]
        for case in listed:
            assert case["panel"].startswith("worst/") and (out / case["panel"]).is_file()
    panels = sorted(p.name for p in (out / "worst").iterdir())
    assert [p[:4] for p in panels] == ["fn01", "fn02", "fp01", "fp02"]
    width, height = Image.open(out / "worst" / panels[2]).size
    assert width > height > 200  # radiograph | overlay
    markdown = (out / "report.md").read_text()
    assert "## Worst cases (Grad-CAM)" in markdown
    for case in worst["false_positives"] + worst["false_negatives"]:
        assert f"[panel]({case['panel']})" in markdown
    assert f"worst cases: 4 Grad-CAM panel(s) in {out / 'worst'}" in result.output
