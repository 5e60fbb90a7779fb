"""Scores for the images of a manifest, with the run's saved preprocessing and classes.

``predict_manifest`` scores one manifest with one run. ``evaluate_runs`` is what
``tfxray evaluate RUN... --data M | --split test`` runs: each run scores the same cases (the
manifest given, or each run's own held-out rows, ``RUN/test.csv`` or ``RUN/val.csv``), and the
scores become one table with a score column per run, ready for ``evaluate_table`` (a DeLong
comparison when there are several). ``worst_gallery`` draws the Grad-CAM panels of the worst
cases.

Images outside a model's training profile (``data.profile``) are not scored: they are left out
of the analysis (for every run, so that the comparison stays paired), listed with their
reason, and counted. A file that cannot be read still stops the evaluation (``RunError``): a
manifest names images that should be there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.inputs import OK, OUTSIDE
from ..data.manifest import Manifest, load_manifest
from ..errors import RunError, UserError
from ..models.bundle import Bundle, load_bundle
from ..models.inference import predict_statuses, profile_note, score_columns

SPLIT_FILES = {"test": "test.csv", "val": "val.csv"}  # written by training into the run directory
SPLIT_ROWS = {"test": "test", "val": "validation"}  # their rows' split in RUN/split.csv
CASE_COLUMNS = ("path", "label", "patient_id", "study_id", "split", "fold")


def predict_manifest(run: str | Path | Bundle, manifest: str | Path | Manifest, batch_size: int = 32,
                     progress: bool = True, allow_modality: bool = False):
    """Score every image of a manifest: (table with path, label, patient_id, study_id, scores; info).

    ``run``: a run directory or its loaded bundle; ``manifest``: a manifest file or folder, or a
    loaded ``Manifest`` (e.g. a run's test split). Images outside the model's training profile
    are not in the table: ``info["excluded"]`` lists them as (path, reason) (none with
    ``allow_modality``); ``info["note"]`` says when the model has no profile to check against;
    ``info["manifest"]`` is the loaded manifest.
    """
    bundle = run if isinstance(run, Bundle) else load_bundle(run)
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest, classes=bundle.meta.classes)
    images = manifest.images
    scores, statuses, reasons = predict_statuses(bundle, images["path"].tolist(), batch_size, progress=progress,
                                                 manifest=manifest, check_profile=not allow_modality)
    failed = [(p, r) for p, s, r in zip(images["path"], statuses, reasons) if s not in (OK, OUTSIDE)]
    if failed:
        path, error = failed[0]
        raise RunError(f"{path}: {error}" + (f" (and {len(failed) - 1} more unreadable files)" if len(failed) > 1 else ""))
    kept = statuses == OK
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
        "excluded": [(p, r) for p, s, r in zip(images["path"], statuses, reasons) if s == OUTSIDE],
        "note": profile_note(bundle.meta, not allow_modality),
        "manifest": manifest,
    }
    return table[kept].reset_index(drop=True), info


def split_manifest_path(run_dir: str | Path, split: str) -> Path:
    """``RUN/test.csv`` or ``RUN/val.csv``: the run's held-out rows, written when it was trained."""
    if split not in SPLIT_FILES:
        raise UserError(f"--split: expected one of {', '.join(SPLIT_FILES)}, got {split!r}")
    path = Path(run_dir) / SPLIT_FILES[split]
    if not path.is_file():
        raise UserError(f"{run_dir}: no {SPLIT_FILES[split]} (runs trained before tfxray wrote their held-out rows have"
                        f" none); make one from {Path(run_dir) / 'split.csv'}, keeping its rows whose split is"
                        f" {SPLIT_ROWS[split]}, and give it with --data")
    return path


def run_names(runs: list[Path]) -> list[str]:
    """A score column name per run: its folder's name, with the parent folder when two runs share it."""
    paths = [Path(r).resolve() for r in runs]
    names = [p.name for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.parent.name}/{p.name}" for p in paths]
    if len(set(names)) < len(names):
        raise UserError(f"the same run given twice: {', '.join(map(str, runs))}")
    clash = [n for n in names if n in CASE_COLUMNS]
    if clash:
        raise UserError(f"{clash[0]}: a run directory named like a column of the scores table; rename or copy it")
    return names


@dataclass
class RunsEvaluation:
    """What ``evaluate_runs`` settled: the scored table and ``evaluate_table``'s arguments."""

    table: pd.DataFrame
    arguments: dict
    notes: list[str]  # lines to say once: the profile check, what the recipe decided
    excluded: pd.DataFrame  # path, run, reason: images outside a training profile, left out of the analysis
    bundles: dict[str, Bundle]  # score column -> its run's bundle
    manifests: dict[str, Manifest] = field(default_factory=dict)  # score column -> the cases it scored

    def excluded_summary(self, file: str = "excluded.csv") -> dict | None:
        """report.json's ``excluded`` entry: how many images, by reason, and the file listing them."""
        if self.excluded.empty:
            return None
        images = self.excluded.drop_duplicates("path")
        return {"n": int(len(images)), "file": file, "reasons": dict(Counter(self.excluded["reason"]).most_common())}

    def excluded_line(self, file: str) -> str:
        """One line: how many images were left out, where they are listed, the commonest reasons."""
        summary = self.excluded_summary()
        if summary is None:
            return ""
        reasons = "; ".join(f"{count} x {reason}" for reason, count in list(summary["reasons"].items())[:3])
        more = f"; and {len(summary['reasons']) - 3} other reasons" if len(summary["reasons"]) > 3 else ""
        return (f"excluded {summary['n']} image(s) outside the model's training profile from the analysis (listed in"
                f" {file}; --allow-modality evaluates them): {reasons}{more}")


def evaluate_runs(runs: list, manifest=None, *, split: str | None = None, label_column: str | None = None,
                  positive=None, threshold: str | None = None, patient_column: str | None = None,
                  aggregate: str | None = None, batch_size: int = 32, progress: bool = True,
                  allow_modality: bool = False, direction: str | None = None) -> RunsEvaluation:
    """Score the same cases with each run and settle ``evaluate_table``'s arguments.

    Cases: ``manifest`` (a file, folder or ``Manifest``), or with ``split`` ('test' or 'val')
    each run's own held-out rows, which must be the same images for every run. One run gives
    the column ``score`` (``score_<class>`` for more classes); several runs give a column per
    run named after it (``run_names``), two-class runs with the same classes only, and each
    keeps its saved threshold. What the caller leaves as None comes from the models (label
    column, positive class, thresholds, and the direction ``higher``: a model's score is its
    positive-class probability, so the curve is never flipped unless ``direction`` says so) and
    from the first run's recipe (``evaluate.patient_level``, ``evaluate.aggregate``), whose
    section is checked before any image is scored.
    """
    from ..config import evaluate_config
    from ..evaluation.model_table import model_arguments, models_arguments, patient_level

    if (manifest is None) == (split is None):
        raise UserError("give the cases to evaluate: --data MANIFEST or --split test|val")
    bundles = [r if isinstance(r, Bundle) else load_bundle(r) for r in runs]
    if not bundles:
        raise UserError("RUN_DIR: give at least one run directory")
    names = ["score"] if len(bundles) == 1 else run_names([b.path for b in bundles])
    recipes = [evaluate_config(b.meta.recipe, where=f"{b.path}: recipe") for b in bundles]
    infos = {n: {"positive": b.meta.positive, "classes": b.meta.classes, "threshold": b.meta.threshold,
                 "threshold_rule": b.meta.threshold_rule} for n, b in zip(names, bundles)}
    # refuse what cannot be compared or contradicts a model before scoring anything
    if len(bundles) > 1:
        models_arguments(infos, label_column=label_column, positive=positive, threshold=threshold, direction=direction)
    else:
        model_arguments(infos["score"], label_column=label_column, positive=positive, threshold=threshold,
                        direction=direction)

    manifests = {n: _cases(b, manifest, split) for n, b in zip(names, bundles)}
    if split is not None and len(bundles) > 1:
        _require_same_cases(manifests, split)
    tables, notes, excluded = {}, [], []
    for name, bundle in zip(names, bundles):
        table, info = predict_manifest(bundle, manifests[name], batch_size=batch_size, progress=progress,
                                       allow_modality=allow_modality)
        tables[name] = table
        manifests[name] = info.get("manifest", manifests[name])
        excluded += [(p, name if len(bundles) > 1 else str(bundle.path), r) for p, r in info.get("excluded", [])]
        if info.get("note"):
            notes.append(f"{bundle.path}: {info['note']}" if len(bundles) > 1 else info["note"])
    excluded = pd.DataFrame(excluded, columns=["path", "run", "reason"])
    table = _merged(tables, set(excluded["path"]))

    if len(bundles) > 1:
        arguments = models_arguments(infos, label_column=label_column, positive=positive, threshold=threshold,
                                     direction=direction)
    else:
        arguments = model_arguments(infos["score"], label_column=label_column, positive=positive, threshold=threshold,
                                    direction=direction)
    patients = patient_level(patient_column, aggregate, recipe_patient_level=recipes[0].patient_level,
                             recipe_aggregate=recipes[0].aggregate, columns=table.columns)
    arguments.update(patient_column=patients.column, aggregate=patients.aggregate)
    if patients.note:
        notes.append(patients.note + (f" of {bundles[0].path}" if len(bundles) > 1 else ""))
    if table.empty and len(excluded):
        raise UserError(f"all {excluded['path'].nunique()} images lie outside the model's training profile (first:"
                        f" {excluded['reason'].iloc[0]}); --allow-modality evaluates them anyway")
    return RunsEvaluation(table, arguments, notes, excluded, dict(zip(names, bundles)), manifests)


def _cases(bundle: Bundle, manifest, split: str | None):
    """The cases a run scores: the manifest given (loaded when scored), or its own held-out rows, loaded now."""
    if split is None:
        return manifest
    return load_manifest(split_manifest_path(bundle.path, split), classes=bundle.meta.classes)


def _require_same_cases(manifests: dict[str, Manifest], split: str) -> None:
    """A paired comparison needs the same images: refuse runs whose held-out rows differ."""
    names = list(manifests)
    first = set(manifests[names[0]].images["path"])
    for name in names[1:]:
        other = set(manifests[name].images["path"])
        if other != first:
            raise UserError(f"{name}: its {SPLIT_FILES[split]} holds other images than {names[0]}'s ({len(first & other)}"
                            f" in common of {len(first)} and {len(other)}); compare the runs on the same cases with"
                            f" --data MANIFEST")


def _merged(tables: dict[str, pd.DataFrame], excluded: set) -> pd.DataFrame:
    """One table, the cases of the first, a score column per run (renamed after it when several)."""
    names = list(tables)
    first = tables[names[0]]
    table = first[~first["path"].isin(excluded)].reset_index(drop=True)
    if len(names) == 1:
        return table
    table = table.rename(columns={"score": names[0]})
    for name in names[1:]:
        scores = tables[name].drop_duplicates("path").set_index("path")["score"]
        table[name] = scores.reindex(table["path"]).to_numpy()
    return table


def evaluate_run(run: str | Path | Bundle, manifest: str | Path | Manifest, *, label_column: str | None = None,
                 positive=None, threshold: str | None = None, patient_column: str | None = None,
                 aggregate: str | None = None, batch_size: int = 32, progress: bool = True,
                 allow_modality: bool = False, direction: str | None = None):
    """One run on one manifest (``evaluate_runs``): (table, arguments, note).

    ``note`` is the one line saying what the recipe decided ('' when nothing); images outside
    the training profile are left out of the table.
    """
    result = evaluate_runs([run], manifest, label_column=label_column, positive=positive, threshold=threshold,
                           patient_column=patient_column, aggregate=aggregate, batch_size=batch_size,
                           progress=progress, allow_modality=allow_modality, direction=direction)
    patient_notes = [n for n in result.notes if n.startswith("per patient")]
    return result.table, result.arguments, patient_notes[0] if patient_notes else ""


def worst_gallery(evaluation: RunsEvaluation, out_dir: Path, n: int, *, folder: str = "worst",
                  method: str = "gradcam") -> dict:
    """Grad-CAM panels of each run's worst cases into ``out_dir/folder`` (``/<run>`` when several);
    returns report.json's ``worst`` entry (paths and panels relative to ``out_dir``)."""
    from ..evaluation.worst import worst_cases
    from ..explain.gradcam import panel_name
    from ..explain.panels import common_folder, relative_name, write_case_panels
    from ..models.inference import call

    arguments = evaluation.arguments
    if arguments.get("classes") is not None:
        raise UserError("--worst: the worst cases need a two-class model (highest-scoring negatives, lowest-scoring"
                        " positives)")
    if n < 1:
        raise UserError(f"--worst: must be at least 1, got {n}")
    table, positive = evaluation.table, arguments["positive"]
    labels = table[arguments["label_column"]].astype(str)
    negatives = sorted(set(labels) - {str(positive)})
    several = len(evaluation.bundles) > 1
    root = common_folder(table["path"])
    entry = {"n": int(n), "folder": folder, "positive": str(positive), "negative": "/".join(negatives) or "negative",
             "models": {}}
    for column, bundle in evaluation.bundles.items():
        cases = worst_cases(table, label_column=arguments["label_column"], positive=positive, score_column=column,
                            n=n)
        subfolder = Path(folder) / column.replace("/", "__") if several else Path(folder)
        prefix = {"false_positives": "fp", "false_negatives": "fn"}
        names = [f"{prefix[k]}{r:02d}_{panel_name(relative_name(p, root))}" for k, r, p in
                 zip(cases["kind"], cases["rank"], cases["path"])]
        written = write_case_panels(bundle, list(zip(cases["path"], names)), out_dir / subfolder,
                                    manifest=evaluation.manifests.get(column), method=method)
        groups = {"false_positives": [], "false_negatives": []}
        for (_, case), name in zip(cases.iterrows(), names):
            panel = written.get(case["path"])
            record = {"rank": int(case["rank"]), "path": relative_name(case["path"], root), "label": str(case[arguments[
                "label_column"]]), "score": float(case[column]), "call": call(bundle.meta, [case[column]])[1]}
            if isinstance(panel, Path):
                record["panel"] = (subfolder / name).as_posix()
            else:
                record["note"] = f"no panel: {panel}"
            groups[case["kind"]].append(record)
        entry["models"][column] = groups
    return entry
