"""Scores for the images of a manifest, with the run's saved preprocessing and classes.

``predict_manifest`` scores one manifest with one run. ``evaluate_runs`` is what
``tfxray evaluate RUN... --data M | --split test`` runs: each run scores the same cases (the
manifest given, or each run's own held-out rows, ``RUN/test.csv`` or ``RUN/val.csv``), and the
scores become one table with a score column per run, ready for ``evaluate_table`` (a DeLong
comparison when there are several). ``worst_gallery`` draws the Grad-CAM panels of the worst
cases.

Images outside a model's training profile (``data.profile``) are not scored: they are left out
of the analysis (for every run, so that the comparison stays paired), listed with their
reason, and counted (``RunsEvaluation.excluded``, and ``excluded_rows`` for the flow of cases).
A file that cannot be read still stops the evaluation (``RunError``): a manifest names images
that should be there.

The scored table keeps the manifest's own columns (sex, site, difficulty, ...: whatever a CSV
manifest holds besides tfxray's), one value per image, for ``--subgroup``; a column whose rows
(boxes) of one image disagree is left out and named (``RunsEvaluation.left_out_columns``).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.inputs import OK, OUTSIDE
from ..data.manifest import BOX_COLUMNS, IMAGE_COLUMNS, Manifest, canonical_columns, load_manifest
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
    ``allow_modality``) and ``info["excluded_rows"]`` holds their rows (path, label, ids and
    the manifest's other columns, no score); ``info["note"]`` says when the model has no profile
    to check against; ``info["manifest"]`` is the loaded manifest. The table also holds the
    manifest's other columns (``manifest_columns``); ``info["left_out_columns"]`` names those
    left out and why.
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
    extra, left_out = manifest_columns(manifest, reserved=set(table.columns) | set(columns))
    if extra is not None:
        values = extra.set_index("path").reindex(table["path"])
        for column in values.columns:
            table[column] = values[column].to_numpy()
    excluded_rows = table[statuses == OUTSIDE].reset_index(drop=True)
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
        "excluded_rows": excluded_rows,
        "note": profile_note(bundle.meta, not allow_modality),
        "manifest": manifest,
        "left_out_columns": left_out,
    }
    return table[kept].reset_index(drop=True), info


def manifest_columns(manifest: Manifest, reserved=()) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """(path + the CSV manifest's columns tfxray does not read itself, one row per image; {column
    left out: why}). ``Manifest.images`` keeps tfxray's columns only; sex, site, difficulty and
    the like are read here from the manifest file, the paths resolved as ``load_manifest`` does.
    A column whose rows (boxes) of one image disagree is left out, as is one named like a column
    of the scored table (``reserved``). A folder manifest has none: (None, {})."""
    source = Path(manifest.source)
    if not source.is_file():
        return None, {}
    try:
        header = pd.read_csv(source, nrows=0).columns
        raw = pd.read_csv(source, dtype=str).rename(columns=canonical_columns(header, source))
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{source}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    known = set(IMAGE_COLUMNS) | set(BOX_COLUMNS)
    names = [c for c in raw.columns if c not in known]
    if not names or "path" not in raw.columns:
        return None, {}
    left_out = {c: "named like a column of the scored table" for c in names if c in reserved}
    names = [c for c in names if c not in left_out]
    raw["path"] = [os.path.abspath(p if Path(p).is_absolute() else (source.parent / p)) for p in raw["path"].astype(str)]
    per_image = raw.groupby("path", sort=False)
    for column in names:
        if (per_image[column].nunique(dropna=False) > 1).any():
            left_out[column] = "its rows (boxes) of one image disagree: not an attribute of the image"
    names = [c for c in names if c not in left_out]
    if not names:
        return None, left_out
    return raw[["path", *names]].drop_duplicates("path").reset_index(drop=True), left_out


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
    excluded_rows: pd.DataFrame | None = None  # one row per excluded image (the table's columns, no score), reason
    left_out_columns: dict[str, str] = field(default_factory=dict)  # manifest columns not in the table, and why

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
                  allow_modality: bool = False, direction: str | None = None, subgroups=()) -> RunsEvaluation:
    """Score the same cases with each run and settle ``evaluate_table``'s arguments.

    Cases: ``manifest`` (a file, folder or ``Manifest``), or with ``split`` ('test' or 'val')
    each run's own held-out rows, which must be the same images for every run. One run gives
    the column ``score`` (``score_<class>`` for more classes); several runs give a column per
    run named after it (``run_names``), two-class runs with the same classes only, and each
    keeps its saved threshold. What the caller leaves as None comes from the models (label
    column, positive class, thresholds, and the direction ``higher``: a model's score is its
    positive-class probability, so the curve is never flipped unless ``direction`` says so) and
    from the first run's recipe (``evaluate.patient_level``, ``evaluate.aggregate``), whose
    section is checked before any image is scored; so are the ``subgroups`` columns, which the
    manifest must hold.
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
    _check_subgroups(manifests[names[0]], subgroups)
    tables, notes, excluded = {}, [], []
    excluded_rows, left_out = None, {}
    for name, bundle in zip(names, bundles):
        table, info = predict_manifest(bundle, manifests[name], batch_size=batch_size, progress=progress,
                                       allow_modality=allow_modality)
        tables[name] = table
        manifests[name] = info.get("manifest", manifests[name])
        if excluded_rows is None:  # the first run's: every case it was given, with the manifest's columns
            excluded_rows = info.get("excluded_rows")
            left_out = info.get("left_out_columns") or {}
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
    return RunsEvaluation(table, arguments, notes, excluded, dict(zip(names, bundles)), manifests,
                          _excluded_rows(tables[names[0]], excluded_rows, excluded), left_out)


def _check_subgroups(manifest, subgroups) -> None:
    """Refuse, before scoring, a subgroup column the manifest does not hold (one line naming those it has)."""
    if not subgroups:
        return
    if isinstance(manifest, Manifest):
        source = Path(manifest.source)
        columns = list(manifest.images.columns)
    else:
        source = Path(manifest)
        columns = ["path", "label"]
    if source.is_file():
        header = pd.read_csv(source, nrows=0).columns
        names = canonical_columns(header, source)
        columns = list(dict.fromkeys(names.get(h, h) for h in header))
    columns = [c for c in columns if c not in BOX_COLUMNS]
    for column in subgroups:
        if column not in columns:
            raise UserError(f"--subgroup {column!r}: the manifest {source} has no such column (columns:"
                            f" {', '.join(columns)})")


def _excluded_rows(first: pd.DataFrame, outside: pd.DataFrame | None, excluded: pd.DataFrame) -> pd.DataFrame | None:
    """One row per image left out of the analysis (outside a run's training profile), with the
    scored table's columns where known and the ``reason`` "outside training profile"; None when none."""
    if excluded.empty:
        return None
    paths = pd.Index(pd.unique(excluded["path"]), name="path")
    known = [t for t in (outside, first) if t is not None and len(t)]
    if not known:
        return pd.DataFrame({"path": paths, "reason": "outside training profile"})
    # an image the first run left out is in its excluded rows; one only another run left out, in its scored table
    columns = (list(outside.columns) if outside is not None else
               [c for c in first.columns if c != "score" and not c.startswith("score_")])
    rows = pd.concat([t.reindex(columns=columns) for t in known]).drop_duplicates("path").set_index("path")
    return rows.reindex(paths).reset_index().assign(reason="outside training profile")


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
    clash = [n for n in names if n in table.columns and n != "score"]
    if clash:
        raise UserError(f"{clash[0]}: a run directory named like a column of the manifest; rename or copy it")
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
