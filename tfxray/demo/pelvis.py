"""The detector's whole job on synthetic radiographs (``tfxray demo --task pelvis``), the femoral-neck
protocol in small: a generic fracture detector trained on multi-site skeleton phantoms, fine-tuned on
pelvis phantoms with hard-positive mining, both evaluated on the same held-out pelvis patients
(per image and per box, paired DeLong and McNemar), a folder scored into boxes.csv, a report."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import DemoResult, StepTimer, fresh, make_inbox
from ..io import atomic_write_json, atomic_write_text

RANDOM_BOX_DRAWS = 50
PHANTOM_SIZE = 192


def random_box_recall(detections: pd.DataFrame, truth: pd.DataFrame, images: pd.DataFrame, cutoff: float,
                      iou: float, seed: int = 0, draws: int = RANDOM_BOX_DRAWS) -> float:
    """Box recall of the same boxes placed at random: every box at or above the cut-off moved to a uniform
    position inside its image (size kept), matched as the real ones; the mean over ``draws``. What a
    detector that finds nothing would score with the same number and sizes of boxes."""
    from ..data.detection import image_size
    from ..evaluation.boxes import match_boxes

    rng = np.random.default_rng(seed)
    kept = detections[detections["score"] >= cutoff].reset_index(drop=True)
    if kept.empty or truth.empty:
        return 0.0
    sizes = {p: image_size(p) for p in kept["path"].unique()}
    height = kept["path"].map(lambda p: sizes[p][0]).to_numpy(float)
    width = kept["path"].map(lambda p: sizes[p][1]).to_numpy(float)
    box_w = (kept["x2"] - kept["x1"]).to_numpy()
    box_h = (kept["y2"] - kept["y1"]).to_numpy()
    paths = images["path"].tolist()
    recalls = []
    for _ in range(draws):
        moved = kept.copy()
        moved["x1"] = rng.uniform(0, np.maximum(width - box_w, 0))
        moved["y1"] = rng.uniform(0, np.maximum(height - box_h, 0))
        moved["x2"], moved["y2"] = moved["x1"] + box_w, moved["y1"] + box_h
        matched = match_boxes(moved[["path", "x1", "y1", "x2", "y2", "score"]], truth, paths, cutoff,
                              iou_threshold=iou, by_class=False)
        recalls.append(matched.tp / matched.n_truth if matched.n_truth else 0.0)
    return float(np.mean(recalls))


def run_pelvis_demo(out: str | Path, *, n_skeleton: int = 200, n_pelvis: int = 300, seed: int = 0,
                    epochs: int | None = None, generic_epochs: int = 3, say: Callable[[str], None] = print) -> DemoResult:
    from ..config import load_recipe
    from ..data.manifest import load_manifest
    from ..data.synth import synthesize
    from ..scoring.batch import box_path, score_folder
    from ..scoring.detections import evaluate_detector_runs
    from ..training.trainer import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    step = StepTimer()
    say(f"[1/6] synthesising {n_skeleton} skeleton (wrist, ankle, knee, hand, shoulder) and {n_pelvis} pelvis "
        f"phantoms (seed {seed})")
    skeleton_dir, pelvis_dir = fresh(out / "data" / "skeleton"), fresh(out / "data" / "pelvis")
    # 192 px: half again the recipe's 128 px input (the wrist demo draws twice its input; this is cheaper)
    synthesize(skeleton_dir, task="skeleton", n=n_skeleton, seed=seed, fmt="png", size=PHANTOM_SIZE)
    synthesize(pelvis_dir, task="pelvis", n=n_pelvis, seed=seed + 1, fmt="png", size=PHANTOM_SIZE)
    step("synthesise")

    base = [(["train", "seed"], seed)] + ([(["train", "epochs"], epochs)] if epochs else [])
    say("[2/6] training the generic fracture detector on the skeleton set")
    # the generic detector only has to give the fine-tuning a start: fewer epochs than the recipe's
    generic = load_recipe("demo-pelvis", base + [(["data", "split"], [0.85, 0.15, 0.0]),
                                                 (["train", "epochs"], epochs or generic_epochs)])
    generic_dir = fresh(out / "generic")
    train(generic, load_manifest(skeleton_dir / "manifest.csv", classes=generic.classes), generic_dir, verbose=2)
    step("train generic")

    say("[3/6] fine-tuning it on pelvis (patient-grouped 60:15:25 split) with hard-positive mining")
    recipe = load_recipe("demo-pelvis", base + [(["train", "init"], str(generic_dir)),
                                                 (["train", "hard_positives"], True)])
    run_dir = fresh(out / "femoral-neck")
    pelvis = load_manifest(pelvis_dir / "manifest.csv", classes=recipe.classes)
    train(recipe, pelvis, run_dir, verbose=2)
    mined = pd.read_csv(run_dir / "mined.csv")
    step("fine-tune")

    say("[4/6] evaluating before and after fine-tuning on the held-out test patients")
    evaluation_dir = fresh(out / "evaluation")
    result = evaluate_detector_runs([generic_dir, run_dir], run_dir / "test.csv", out=evaluation_dir,
                                    progress=False, say=lambda line: say("  " + line))
    before, after = result.reports
    finetuned = result.runs[1]
    chance = random_box_recall(finetuned.detections, finetuned.manifest.boxes, finetuned.manifest.images,
                               finetuned.cutoff, finetuned.iou, seed=seed)
    step("evaluate")

    say("[5/6] scoring a folder (test images, plus a broken file and a note) into scores.csv and boxes.csv")
    inbox = make_inbox(out / "inbox", finetuned.manifest.images["path"], pelvis_dir / "images")
    scores_csv = out / "scores.csv"
    for stale in (scores_csv, box_path(scores_csv)):
        stale.unlink(missing_ok=True)
    # no --overlays here: the evaluation's TP/FN/FP panels already show the boxes, and drawing every image
    # is a tenth of the demo's time
    summary = score_folder(run_dir, inbox, scores_csv, progress=False)
    for line in summary.lines():
        say("  " + line)
    step("score")

    say("[6/6] writing the report")
    names = result.names
    demo_report = {
        "auc": after["auc"],
        "auc_ci95": [after["auc_ci"]["lower"], after["auc_ci"]["upper"]],
        "auc_before": before["auc"],
        "box_recall": after["box_recall"],
        "box_recall_ci95": [after["box_recall_ci"]["lower"], after["box_recall_ci"]["upper"]],
        "box_recall_random_boxes": chance,
        "box_precision": after["box_precision"],
        "ap50": after["ap50"],
        "froc_score": after["froc_score"],
        "sensitivity": after["sensitivity"],
        "specificity": after["specificity"],
        "cutoff": finetuned.cutoff,
        "comparison": result.comparison,
        "mined": {"images": int(len(mined)), "kinds": mined["kind"].value_counts().to_dict() if len(mined) else {}},
        "n_test_images": int(len(finetuned.manifest.images)),
        "n_test_patients": int(finetuned.manifest.images["patient_id"].nunique()),
        "scoring": {"files": summary.total, "scored": summary.scored, "errors": summary.errors,
                    "skipped": summary.skipped, "boxes": summary.boxes},
        "seconds": step.seconds,
        "files": {
            "generic_run": str(generic_dir), "run_dir": str(run_dir), "mined_csv": str(run_dir / "mined.csv"),
            "evaluation_before": str(evaluation_dir / names[0]), "evaluation_after": str(evaluation_dir / names[1]),
            "comparison": str(evaluation_dir / "comparison.md"), "scores_csv": str(scores_csv),
            "boxes_csv": str(box_path(scores_csv)),
            "history_png": str(run_dir / "history.png"),
        },
    }
    atomic_write_json(out / "report.json", demo_report)
    atomic_write_text(out / "report.md", _markdown(demo_report, out))
    return DemoResult(out, demo_report)


def _markdown(report: dict, out: Path) -> str:
    def rel(path) -> str:
        return Path(path).relative_to(out).as_posix()

    files, comparison = report["files"], report["comparison"] or {}
    auc_test = (comparison.get("auc") or {})
    ci, rci = report["auc_ci95"], report["box_recall_ci95"]
    after_dir, before_dir = rel(files["evaluation_after"]), rel(files["evaluation_before"])
    lines = [
        "# tfxray detector demo report",
        "",
        "Synthetic pelvis phantoms; a generic fracture detector (skeleton phantoms) fine-tuned on pelvis with "
        "hard-positive mining, as in Mu et al. 2021, at CPU scale (small CNN from random weights, 128 px).",
        "",
        f"- Per-image AUC after fine-tuning: **{report['auc']:.3f}** (95% CI {ci[0]:.3f}-{ci[1]:.3f}); before: "
        f"{report['auc_before']:.3f}; {report['n_test_images']} test images of {report['n_test_patients']} patients",
        f"- Paired DeLong test, before vs after: p = {auc_test.get('p', float('nan')):.4g}"
        if auc_test.get("p") is not None else "- Paired DeLong test: not computable on this test set",
        f"- At the cut-off {report['cutoff']:g}: sensitivity {report['sensitivity']:.3f}, specificity "
        f"{report['specificity']:.3f}",
        f"- Box recall {report['box_recall']:.3f} (95% CI {rci[0]:.3f}-{rci[1]:.3f}) vs "
        f"{report['box_recall_random_boxes']:.3f} for the same boxes placed at random; box precision "
        f"{report['box_precision'] if report['box_precision'] is None else round(report['box_precision'], 3)}; "
        f"AP50 {report['ap50']:.3f}; FROC score {report['froc_score']:.3f}",
        f"- Hard-positive mining: {report['mined']['images']} training image(s) added again "
        f"([mined.csv]({rel(files['mined_csv'])}))",
        f"- Folder scoring: {report['scoring']['files']} files, {report['scoring']['scored']} scored, "
        f"{report['scoring']['errors']} error(s), {report['scoring']['skipped']} skipped, "
        f"{report['scoring']['boxes']} boxes ([scores.csv]({rel(files['scores_csv'])}), "
        f"[boxes.csv]({rel(files['boxes_csv'])}))",
        "",
        f"Reports: [after]({after_dir}/report.md), [before]({before_dir}/report.md), "
        f"[comparison]({rel(files['comparison'])}); overlay panels in {after_dir}/overlays/.",
        "",
        f"![FROC after]({after_dir}/froc.png)",
        f"![PR after]({after_dir}/pr.png)",
        f"![training curves]({rel(files['history_png'])})",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in report["seconds"].items()],
        "",
    ]
    return "\n".join(lines)
