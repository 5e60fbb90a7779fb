"""A detector run over a manifest: its boxes for ``tfxray evaluate RUN_DIR`` (one run, or two compared).

The boxes come from ``models.inference.detect_paths`` (original-image pixels); the statistics,
figures and overlays from ``evaluation.detection`` and ``explain.overlays``. Images outside the
model's training profile are left out and listed, as for classifiers; a file that cannot be read
stops the evaluation (its reason named), since a case silently missing would change the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..data.inputs import OK, OUTSIDE
from ..data.manifest import Manifest, load_manifest
from ..errors import UserError
from ..models.bundle import Bundle, load_bundle
from ..models.inference import BOX_COLUMNS_OUT, box_fields, detect_paths
from .predict import split_manifest_path


@dataclass
class RunDetections:
    bundle: Bundle
    manifest: Manifest  # the cases scored (images outside the training profile taken out)
    detections: pd.DataFrame  # path, frame, x1, y1, x2, y2, score, class
    excluded: pd.DataFrame  # path, reason

    @property
    def cutoff(self) -> float:
        return float(self.bundle.meta.threshold)

    @property
    def iou(self) -> float:
        return float(self.bundle.meta.detection.get("iou", 0.5))


def detect_manifest(run, manifest=None, *, split: str | None = None, batch_size: int = 8, progress: bool = True,
                    allow_modality: bool = False) -> RunDetections:
    """Run a detector over a manifest (or its own ``split``: 'test' or 'val')."""
    bundle = run if isinstance(run, Bundle) else load_bundle(run)
    if not bundle.meta.is_detection:
        raise UserError(f"{bundle.path}: a classifier run; this path evaluates detectors")
    if (manifest is None) == (split is None):
        raise UserError("give the cases to evaluate: --data MANIFEST or --split test|val")
    if split is not None:
        manifest = split_manifest_path(bundle.path, split)
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest, classes=bundle.meta.classes)
    paths = manifest.images["path"].astype(str).tolist()
    detections, statuses, reasons = detect_paths(bundle, paths, batch_size, progress, check_profile=not allow_modality)
    failed = [(p, r) for p, s, r in zip(paths, statuses, reasons) if s not in (OK, OUTSIDE)]
    if failed:
        raise UserError(f"{len(failed)} image(s) of the manifest could not be read (first: {failed[0][0]}: "
                        f"{failed[0][1]}); fix or remove them")
    excluded = pd.DataFrame([(p, r) for p, s, r in zip(paths, statuses, reasons) if s == OUTSIDE],
                            columns=["path", "reason"])
    if len(excluded):
        if len(excluded) == len(paths):
            raise UserError(f"all {len(paths)} images lie outside the model's training profile (first: "
                            f"{excluded['reason'].iloc[0]}); --allow-modality evaluates them anyway")
        manifest = manifest.subset(~manifest.images["path"].isin(excluded["path"]).to_numpy())
    return RunDetections(bundle, manifest, detections, excluded)


def require_same_cases(runs: list[RunDetections]) -> None:
    """A comparison is paired: every run must have scored the same images."""
    first = set(runs[0].manifest.images["path"])
    for other in runs[1:]:
        if set(other.manifest.images["path"]) != first:
            raise UserError(f"{runs[0].bundle.path} and {other.bundle.path} scored different images (one left some "
                            f"out of its training profile?); a paired comparison needs the same cases")


def run_label(bundle: Bundle) -> str:
    return Path(bundle.path).name or str(bundle.path)


@dataclass
class DetectorEvaluation:
    reports: list[dict]  # one per run
    runs: list[RunDetections]
    names: list[str]
    comparison: dict | None  # two runs: compare_detections' result


def _boxes_csv(detections: pd.DataFrame) -> str:
    """boxes.csv as ``tfxray score`` writes it (``box_fields``)."""
    rows = [[path, frame, *box_fields(x1, y1, x2, y2, score), kind]
            for path, frame, x1, y1, x2, y2, score, kind in detections[BOX_COLUMNS_OUT].itertuples(index=False,
                                                                                                    name=None)]
    return pd.DataFrame(rows, columns=BOX_COLUMNS_OUT).to_csv(index=False)


def evaluate_detector_runs(runs: list, manifest=None, *, split: str | None = None, out: Path, overlays: bool = True,
                           roc_only: bool = False, ci: str = "delong", n_bootstrap: int = 2000, seed: int = 0,
                           allow_modality: bool = False, progress: bool = True, say=print) -> DetectorEvaluation:
    """One detector run: its boxes (OUT/boxes.csv), report and figures in OUT. Two runs on the same cases:
    each in OUT/<run name>/, and the paired comparison (DeLong on the per-image AUCs, McNemar on sensitivity
    and specificity at each run's cut-off) in OUT/comparison.json and .md."""
    from ..evaluation.detection import (compare_detections, detection_image_table, evaluate_detections,
                                        format_comparison, format_detection_summary, write_comparison,
                                        write_detection_report)
    from ..explain.overlays import write_overlay_panels
    from ..io import atomic_write_text

    if not 1 <= len(runs) <= 2:
        raise UserError("detector runs are evaluated one at a time or compared two at a time (RUN_A RUN_B)")
    done = [detect_manifest(r, manifest, split=split, allow_modality=allow_modality, progress=progress)
            for r in runs]
    names = ["score"]
    if len(done) == 2:
        require_same_cases(done)
        names = [run_label(r.bundle) for r in done]
        if names[0] == names[1]:
            names = ["A", "B"]
    out = Path(out)
    reports = []
    for i, run in enumerate(done):
        folder = out if len(done) == 1 else out / names[i]
        folder.mkdir(parents=True, exist_ok=True)
        meta = run.bundle.meta
        images, boxes = run.manifest.images, run.manifest.boxes
        atomic_write_text(folder / "boxes.csv", _boxes_csv(run.detections))
        if len(run.excluded):
            atomic_write_text(folder / "excluded.csv", run.excluded.to_csv(index=False))
            say(f"{len(run.excluded)} image(s) outside {run.bundle.path}'s training profile left out "
                f"({folder / 'excluded.csv'}); --allow-modality keeps them")
        report = evaluate_detections(run.detections, images, boxes, positive=meta.positive, cutoff=run.cutoff,
                                     iou_threshold=run.iou, ci=ci, n_bootstrap=n_bootstrap, seed=seed)
        panels = write_overlay_panels(run.detections, images, boxes, run.cutoff, folder / "overlays",
                                      iou_threshold=run.iou) if overlays else None
        paths = write_detection_report(report, folder, run.detections, images, boxes, roc_only=roc_only,
                                       overlays=panels)
        if len(done) == 2:
            say(f"{names[i]} ({run.bundle.path}):")
        say(format_detection_summary(report))
        say(f"report: {paths['report.md']} and {paths['report.json']}; boxes: {folder / 'boxes.csv'}")
        reports.append(report)
    comparison = None
    if len(done) == 2:
        images = done[0].manifest.images
        tables = [detection_image_table(r.detections, images) for r in done]
        labels = (images["label"].astype(str) == done[0].bundle.meta.positive).to_numpy()
        comparison = compare_detections(tables[0].iloc[:, 2], tables[1].iloc[:, 2], labels, done[0].cutoff,
                                        done[1].cutoff, names=tuple(names))
        written = write_comparison(comparison, out)
        say(format_comparison(comparison))
        say(f"comparison: {', '.join(str(p) for p in written.values())}")
    return DetectorEvaluation(reports, done, names, comparison)
