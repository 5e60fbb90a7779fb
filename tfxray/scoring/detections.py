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
from ..models.inference import detect_paths
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
