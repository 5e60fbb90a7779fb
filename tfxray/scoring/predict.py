"""Scores for the images of a manifest, with the run's saved preprocessing and classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.manifest import load_manifest
from ..data.pipeline import ImageGeometry, inference_dataset
from ..errors import RunError, UserError
from ..models.bundle import Bundle, load_bundle


def geometry_of(bundle: Bundle) -> ImageGeometry:
    return ImageGeometry(bundle.meta.input_size, bundle.meta.channels, bundle.meta.resize)


def score_columns(classes: list[str]) -> list[str]:
    """``score`` for two classes (probability of the positive class), else ``score_<class>``."""
    return ["score"] if len(classes) == 2 else [f"score_{c}" for c in classes]


def needs_manifest(bundle: Bundle) -> bool:
    """A CT model's input is a box's region and the slice's neighbours: only a manifest gives them."""
    return bool(bundle.meta.roi or bundle.meta.neighbours)


def predict_paths(bundle: Bundle, paths: list[str], batch_size: int = 32, progress: bool = False, manifest=None):
    """(scores array (n, k), error message per path: '' when the file was scored).

    Models trained on CT inputs (ROI, neighbour slices) need ``manifest`` (boxes, series).
    """
    from tqdm import tqdm

    if needs_manifest(bundle):
        from ..data.ct import ct_rows, roi_dataset

        if manifest is None:
            raise UserError("this model reads a region of interest and neighbouring slices: score it from a "
                            "manifest with boxes and series (tfxray evaluate RUN_DIR --data MANIFEST)")
        rows = ct_rows(manifest.images, manifest.boxes, roi=bundle.meta.roi, neighbours=bundle.meta.neighbours,
                       paths=paths)
        dataset = roi_dataset(rows, bundle.meta.input_size, None, batch_size=batch_size, channels=bundle.meta.channels)
    else:
        dataset = inference_dataset(paths, geometry_of(bundle), batch_size)
    from .devices import predictor_for

    predict = predictor_for(bundle.model)  # one traced graph, not eager calls: several times faster on big backbones
    scores, errors = [], []
    with tqdm(total=len(paths), unit="img", desc="scoring", disable=not progress) as bar:
        for images, messages, _ in dataset:
            scores.append(predict(images))
            errors.extend(m.decode() for m in messages.numpy())
            bar.update(len(messages))
    k = bundle.model.output_shape[-1]
    return (np.concatenate(scores) if scores else np.zeros((0, k), np.float32)), errors


def predict_manifest(run_dir: str | Path, manifest_path: str | Path, batch_size: int = 32, progress: bool = True):
    """Score every image of a manifest: (table with path, label, patient_id, study_id, scores; info)."""
    bundle = load_bundle(run_dir)
    manifest = load_manifest(manifest_path, classes=bundle.meta.classes)
    images = manifest.images
    scores, errors = predict_paths(bundle, images["path"].tolist(), batch_size, progress=progress, manifest=manifest)
    failed = [(p, e) for p, e in zip(images["path"], errors) if e]
    if failed:
        path, error = failed[0]
        raise RunError(f"{path}: {error}" + (f" (and {len(failed) - 1} more unreadable files)" if len(failed) > 1 else ""))
    table = pd.DataFrame({"path": images["path"], "label": images["label"]})
    for column in ("patient_id", "study_id", "split", "fold"):
        if column in images.columns:
            table[column] = images[column].to_numpy()
    columns = score_columns(bundle.meta.classes)
    if len(columns) == 1:
        table["score"] = scores[:, 0]
    else:
        for j, column in enumerate(columns):
            table[column] = scores[:, j]
    info = {
        "positive": bundle.meta.positive,
        "classes": bundle.meta.classes,
        "threshold": bundle.meta.threshold,
        "threshold_rule": bundle.meta.threshold_rule,
    }
    return table, info
