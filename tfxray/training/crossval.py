"""K-fold cross-validation: K trainings on patient-grouped stratified folds.

Layout under the run directory:
  folds.csv            fold number of every image (grouped by patient, stratified by label)
  fold-1/ ... fold-K/  a full run directory each (model bundle, history, split.csv)
  oof_scores.csv       out-of-fold scores: every image scored by the model that never saw it

Within fold k, fold k is the test side; the validation side (for the saved threshold and
early stopping) is carved out of the other folds' patients by the recipe's split ratios.
Each fold's folder holds its test.csv (the held-out fold) and val.csv as a training's does.
A fold whose bundle already exists is skipped, so an interrupted cross-validation resumes; one
that fails before any fold has finished an epoch removes what it made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Recipe, save_recipe
from ..data.manifest import Manifest
from ..data.splits import (GROUP_COLUMN, GROUP_COLUMNS, check_user_split, group_unit, holdout_assignments,
                           kfold_assignments, read_split_table)
from ..errors import RunError
from ..io import atomic_write_text
from ..models.bundle import META_FILE

FOLDS_FILE = "folds.csv"
OOF_FILE = "oof_scores.csv"


def fold_table(manifest: Manifest, k: int, seed: int, allow_leaks: bool = False) -> pd.DataFrame:
    images = manifest.images
    if "fold" in images.columns and images["fold"].notna().all():
        check_user_split(images, "fold", allow_leaks=allow_leaks)
        folds = pd.factorize(images["fold"], sort=True)[0]
    else:
        folds = kfold_assignments(images, k, seed=seed)
    table = images[["path", "label", *(c for c in GROUP_COLUMNS if c in images.columns)]].copy()
    table["fold"] = folds + 1  # 1-based, as papers number them
    table[GROUP_COLUMN] = group_unit(images)
    return table


def cross_validate(
    recipe: Recipe, manifest: Manifest, run_dir: str | Path, *, allow_leaks: bool = False, verbose: int = 1,
    budget_source: str = "",
) -> pd.DataFrame:
    """Train one model per fold; return (and write) the out-of-fold scores."""
    from .preflight import check_training
    from .rundir import removed_unless

    check_training(recipe)
    run_dir = Path(run_dir)
    resumed = (run_dir / FOLDS_FILE).is_file()
    with removed_unless(run_dir, lambda: resumed or any(run_dir.glob("fold-*/history.csv"))):
        return _cross_validate(recipe, manifest, run_dir, allow_leaks=allow_leaks, verbose=verbose,
                               budget_source=budget_source)


def _cross_validate(recipe: Recipe, manifest: Manifest, run_dir: Path, *, allow_leaks: bool, verbose: int,
                    budget_source: str) -> pd.DataFrame:
    from ..models.bundle import load_bundle
    from ..models.inference import predict_paths
    from .trainer import train

    run_dir.mkdir(parents=True, exist_ok=True)
    save_recipe(recipe, run_dir / "recipe.yaml")
    folds_path = run_dir / FOLDS_FILE
    if folds_path.is_file():  # resuming: keep the assignment the first attempt made
        table = read_split_table(folds_path)  # ids and labels stay text
    else:
        table = fold_table(manifest, recipe.data.folds, recipe.train.seed, allow_leaks)
        atomic_write_text(folds_path, table.to_csv(index=False))

    k = int(table["fold"].max())
    parts = []
    for fold in range(1, k + 1):
        fold_dir = run_dir / f"fold-{fold}"
        held_out = table["fold"] == fold
        if not (fold_dir / META_FILE).is_file():
            if verbose:
                print(f"fold {fold}/{k}: {int((~held_out).sum())} images for training and validation, "
                      f"{int(held_out.sum())} held out")
            rest = manifest.images[~held_out.to_numpy()]
            inner = holdout_assignments(rest, _inner_ratios(recipe), seed=recipe.train.seed + fold)
            split = np.full(len(table), "test", dtype=object)
            split[np.flatnonzero(~held_out.to_numpy())] = inner
            fold_manifest = Manifest(manifest.images.assign(split=split), manifest.boxes, manifest.classes, manifest.source)
            train(recipe, fold_manifest, fold_dir, resume=(fold_dir / "split.csv").is_file(), verbose=verbose,
                  budget_source=budget_source)
        bundle = load_bundle(fold_dir)
        # the held-out images belong to the data set the folds were cut from: no profile check
        paths = table.loc[held_out, "path"].tolist()
        scores, errors = predict_paths(bundle, paths, manifest=manifest, check_profile=False)
        failed = [(p, e) for p, e in zip(paths, errors) if e]
        if failed:  # a blank image's score must never stand in for an out-of-fold score
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise RunError(f"fold {fold}: {failed[0][0]}: {failed[0][1]}{more}; out-of-fold scores need every "
                           "held-out image scored")
        part = table[held_out].copy()
        if scores.shape[1] == 1:
            part["score"] = scores[:, 0]
        else:
            for j, name in enumerate(bundle.meta.classes):
                part[f"score_{name}"] = scores[:, j]
        part["threshold"] = bundle.meta.threshold
        parts.append(part)
    oof = pd.concat(parts).sort_index()
    atomic_write_text(run_dir / OOF_FILE, oof.to_csv(index=False))
    return oof


def _inner_ratios(recipe: Recipe) -> tuple[float, float, float]:
    """Train/validation proportions inside the training folds (no test side there)."""
    train_share, val_share, _ = recipe.data.split
    total = train_share + val_share
    return (train_share / total, val_share / total, 0.0)
