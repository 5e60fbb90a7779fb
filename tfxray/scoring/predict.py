"""Scores for the images of a manifest, with the run's saved preprocessing and classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.manifest import Manifest, load_manifest
from ..errors import RunError
from ..models.bundle import Bundle, load_bundle
from ..models.inference import predict_paths, score_columns


def predict_manifest(run: str | Path | Bundle, manifest: str | Path | Manifest, batch_size: int = 32,
                     progress: bool = True):
    """Score every image of a manifest: (table with path, label, patient_id, study_id, scores; info).

    ``run``: a run directory or its loaded bundle; ``manifest``: a manifest file or folder, or a
    loaded ``Manifest`` (e.g. a run's test split).
    """
    bundle = run if isinstance(run, Bundle) else load_bundle(run)
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest, classes=bundle.meta.classes)
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


def evaluate_run(run: str | Path | Bundle, manifest: str | Path | Manifest, *, label_column: str | None = None,
                 positive=None, threshold: str | None = None, patient_column: str | None = None,
                 aggregate: str | None = None, batch_size: int = 32, progress: bool = True):
    """Score a manifest with a run's model and settle ``evaluate_table``'s arguments: (table, arguments, note).

    What the caller leaves as None comes from the model (label column, positive class, saved
    threshold) and from the run's recipe (``evaluate.patient_level``, ``evaluate.aggregate``);
    ``note`` is the one line saying what the recipe decided ('' when nothing). The recipe's
    section is checked before any image is scored.
    """
    from ..config import evaluate_config
    from ..evaluation.model_table import model_arguments, patient_level

    bundle = run if isinstance(run, Bundle) else load_bundle(run)
    recipe = evaluate_config(bundle.meta.recipe, where=f"{bundle.path}: recipe")
    table, info = predict_manifest(bundle, manifest, batch_size=batch_size, progress=progress)
    arguments = model_arguments(info, label_column=label_column, positive=positive, threshold=threshold)
    patients = patient_level(patient_column, aggregate, recipe_patient_level=recipe.patient_level,
                             recipe_aggregate=recipe.aggregate, columns=table.columns)
    arguments.update(patient_column=patients.column, aggregate=patients.aggregate)
    return table, arguments, patients.note
