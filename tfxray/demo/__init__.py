"""The whole job on synthetic radiographs: synthesise, split, train, evaluate, score, explain, report."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..io import atomic_write_json, atomic_write_text


@dataclass
class DemoResult:
    out: Path
    report: dict


class StepTimer:
    """Wall seconds of each demo step: ``step("train")`` closes the step that began when the last one ended."""

    def __init__(self):
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str) -> None:
        self.seconds[name] = round(time.perf_counter() - self.started - sum(self.seconds.values()), 1)


def fresh(path: Path) -> Path:
    """``path`` with whatever an earlier demo left there removed (a demo folder is rerun from scratch)."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    return path


def make_inbox(inbox: Path, paths, images_root: Path) -> Path:
    """A folder to score, as a PACS export would give it: the images at their relative places, plus a
    truncated PNG (an error row) and a text note (a skipped row)."""
    fresh(inbox)
    for path in sorted(paths):
        target = inbox / Path(path).relative_to(images_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (inbox / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated")
    (inbox / "README.txt").write_text("Not an image: tfxray skips it with a reason.\n")
    return inbox


def run_demo(
    out: str | Path,
    *,
    n_images: int = 500,
    seed: int = 0,
    epochs: int | None = None,
    n_panels: int = 6,
    difficulty: str | None = None,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """``difficulty``: the phantoms' difficulty mix (``tfxray synth --difficulty``; None: ``default``)."""
    from ..config import load_recipe
    from ..data.manifest import load_manifest
    from ..data.splits import read_split_table
    from ..data.synth import synthesize
    from ..evaluation.report import evaluate_table, format_summary, write_report
    from ..explain.panels import write_panels
    from ..models.bundle import load_bundle
    from ..scoring.batch import score_folder
    from ..scoring.predict import evaluate_run
    from ..training.trainer import SPLIT_FILE, train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    step = StepTimer()
    from ..data.synth import parse_mix

    mix = parse_mix(difficulty)
    say(f"[1/6] synthesising {n_images} wrist phantoms (seed {seed}, difficulty {difficulty or 'default'})")
    data_dir = fresh(out / "data")
    # 192 px: twice the recipe's input size, as 256 px phantoms were for 128 px
    synthesized = synthesize(data_dir, task="wrist", n=n_images, seed=seed, fmt="png", size=192, difficulty=mix)
    step("synthesise")

    say("[2/6] training (patient-grouped 80:10:10 split)")
    overrides = [(["train", "seed"], seed)] + ([(["train", "epochs"], epochs)] if epochs else [])
    recipe = load_recipe("demo", overrides)
    run_dir = fresh(out / "run")
    manifest = load_manifest(data_dir / "manifest.csv", classes=recipe.classes)
    result = train(recipe, manifest, run_dir, verbose=2)
    step("train")

    say("[3/6] evaluating on the held-out test patients")
    bundle = load_bundle(run_dir)  # loaded once: evaluation, scoring and Grad-CAM share it
    split = read_split_table(run_dir / SPLIT_FILE)
    test = manifest.subset(manifest.images["path"].isin(split.loc[split["split"] == "test", "path"]))
    test_paths = test.images["path"].tolist()
    atomic_write_text(out / "test_manifest.csv", test.table().to_csv(index=False))
    scores, arguments, _ = evaluate_run(bundle, test, patient_column="patient_id", aggregate="max", progress=False)
    evaluation_dir = out / "evaluation"
    report = evaluate_table(scores, **arguments)
    files = write_report(report, scores, evaluation_dir)
    say(format_summary(report))
    by_difficulty = _auc_by_difficulty(scores, synthesized, data_dir)
    if by_difficulty:
        say("  test AUC by fracture grade (its fractures against all test normals): " + "; ".join(
            f"{g} {v['auc']:.3f} (n={v['n_fractures']})" for g, v in by_difficulty.items()))
    step("evaluate")

    say("[4/6] scoring a folder (test images, plus a broken file and a note)")
    inbox = make_inbox(out / "inbox", test_paths, data_dir / "images")
    scores_csv = fresh(out / "scores.csv")
    summary = score_folder(bundle, inbox, scores_csv, progress=False)
    for line in summary.lines():
        say("  " + line)
    step("score")

    say("[5/6] Grad-CAM on test fractures")
    gradcam_dir = fresh(out / "gradcam")
    fractures = test.subset(test.images["label"] == "fracture")
    panels = write_panels(bundle, None, gradcam_dir, boxes=fractures, max_panels=n_panels, progress=False)
    localisation = panels.localization or {}
    step("gradcam")

    say("[6/6] writing the report")
    ci = report["levels"]["image"]["models"]["score"]["auc_ci"]
    patient = report["levels"].get("patient", {}).get("models", {}).get("score", {})
    demo_report = {
        "auc": report["auc"],
        "auc_ci95": [ci["lower"], ci["upper"]],
        "patient_auc": patient.get("auc"),
        "threshold": bundle.meta.threshold,
        "threshold_rule": bundle.meta.threshold_rule,
        "n_test_images": int(len(scores)),
        "n_test_patients": int(scores["patient_id"].nunique()),
        "difficulty": {"mix": difficulty or "default", "resolved": mix.describe(), "test_auc_by_grade": by_difficulty},
        "pointing_game": localisation,
        "scoring": {"files": summary.total, "scored": summary.scored, "errors": summary.errors, "skipped": summary.skipped},
        "seconds": step.seconds,
        "files": {
            "run_dir": str(run_dir),
            "history_png": str(run_dir / "history.png"),
            "evaluation": {k: str(v) for k, v in files.items()},
            "scores_csv": str(scores_csv),
            "gradcam_panels": [str(p) for p in panels.panels],
        },
    }
    atomic_write_json(out / "report.json", demo_report)
    atomic_write_text(out / "report.md", _markdown(demo_report))
    return DemoResult(out, demo_report)


def _auc_by_difficulty(scores, synthesized, data_dir: Path) -> dict:
    """Per fracture grade: the AUC of that grade's test fractures against all test normals (higher score = fracture)."""
    from ..evaluation.roc import auc

    grades = {str((data_dir / p).resolve()): g for p, g in zip(synthesized["path"], synthesized["difficulty"])}
    grade = scores["path"].map(lambda p: grades.get(str(Path(p).resolve())))
    normal = (scores["label"] == "normal").to_numpy()
    result = {}
    for name in ("displaced", "undisplaced", "subtle"):
        cases = (grade == name).to_numpy() & ~normal
        if cases.any() and normal.any():
            keep = cases | normal
            value = auc(cases[keep].astype(int), scores["score"].to_numpy()[keep], direction="<")
            result[name] = {"auc": round(float(value), 4), "n_fractures": int(cases.sum())}
    return result


def _markdown(report: dict) -> str:
    """The demo's one-page report; figures and files are linked relative to the report's folder."""
    out = Path(report["files"]["run_dir"]).parent
    ci = report.get("auc_ci95") or [float("nan"), float("nan")]
    pg = report["pointing_game"] or {}

    def link(path, text: str | None = None) -> str:
        relative = Path(path).relative_to(out).as_posix()
        return f"[{text or relative}]({relative})"

    auc_line = (f"- Test AUC: **{report['auc']:.3f}** (95% CI {ci[0]:.3f}-{ci[1]:.3f}), "
                f"{report['n_test_images']} images of {report['n_test_patients']} patients")
    if ci[0] == ci[1]:
        auc_line += ("; the interval has no width: the test images are perfectly separated, and so small a test set "
                     "cannot say how often the model would fail")
    difficulty = report.get("difficulty") or {}
    by_grade = difficulty.get("test_auc_by_grade") or {}
    lines = [
        "# tfxray demo report",
        "",
        "Synthetic wrist phantoms, small CNN trained from random weights (real use starts from ImageNet weights).",
        "",
        auc_line,
        *([f"- Difficulty mix `{difficulty['mix']}` ({difficulty['resolved']}); test AUC by fracture grade "
           "(its fractures against all test normals): "
           + "; ".join(f"{g} {v['auc']:.3f} (n={v['n_fractures']})" for g, v in by_grade.items())]
          if by_grade else []),
        f"- Threshold: {report['threshold']:.3f} ({report['threshold_rule']})",
    ]
    if pg.get("n"):
        lines.append(
            f"- Grad-CAM pointing game: {pg['hit_rate']:.0%} of {pg['n']} fractures hit "
            f"(chance {pg['chance']:.0%}); heatmap mass inside the box {pg['mass_in_box']:.0%}"
        )
    s = report["scoring"]
    files = report["files"]
    evaluation = files["evaluation"]
    lines += [
        f"- Folder scoring: {s['files']} files, {s['scored']} scored, {s['errors']} error(s), {s['skipped']} skipped",
        "",
        "## Files",
        "",
        f"- Evaluation: {link(evaluation['report.md'])}, {link(evaluation['report.json'])}",
        f"- Training curves: {link(files['history_png'])}; scores of the folder: {link(files['scores_csv'])}",
        f"- Grad-CAM panels: {', '.join(link(p, Path(p).name) for p in files['gradcam_panels'])}",
        "",
        *[f"![{name}]({Path(path).relative_to(out).as_posix()})" for name, path in evaluation.items()
          if name.startswith("roc_image")],
        f"![training curves]({Path(files['history_png']).relative_to(out).as_posix()})",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in report["seconds"].items()],
        "",
    ]
    return "\n".join(lines)
