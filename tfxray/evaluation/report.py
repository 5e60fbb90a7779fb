"""Evaluate a scores table: every number in one dict, then report.json, report.md and PNGs.

``evaluate_table`` is the entry point (the CLI and the demo call it); ``write_report`` writes
the files; ``format_summary`` gives the one-screen text. Conventions are pROC's (see roc.py,
delong.py, thresholds.py) and the table rules are in table.py. The report is plain JSON data:
NaN is written as null and infinite thresholds as the strings "inf" / "-inf".

How the numbers are set up, and said so in the report:
- direction (``settings.direction``): ``higher`` or ``lower`` is fixed in advance and used for
  every model, level and fold, so that a model worse than chance reads an AUC below 0.5 (a
  model's score is "higher = positive" by construction: the default for runs). ``auto`` is pROC's
  direction="auto", chosen from the class medians per model and level (the pooled out-of-fold
  scores' choice is then used in every fold), with pROC's warning when it picks "lower";
- a threshold chosen on the evaluated data (youden, sensitivity:X, specificity:X) is flagged
  exploratory, and its sensitivity and specificity get CIs that bootstrap the choice
  (``operating_point.with_threshold_choice``, bootstrap.py) besides the exact ones at the fixed
  threshold;
- the ROC band is pointwise (pROC's ``ci.se``) and checked against the curve it surrounds;
- the warnings pROC would give, and a few it does not (see ``WARNING``), are notes starting with
  "warning: ", printed in full by ``format_summary``;
- clinical usefulness (clinical.py), per two-class model: PPV/NPV and likelihood ratios at the
  operating point (and PPV/NPV at each deployment ``prevalence``), AUPRC with a bootstrap CI, and,
  only for scores that read as probabilities (in [0, 1], higher = positive), the decision curve
  and the calibration fit; other scores get a note instead.

- the unit of analysis: with a patient column the images of one patient are not independent, so
  the image-level AUC's CI (``auc_ci``) is cluster-aware (``auc_cis["clustered"]``: Obuchowski
  1997 with --ci delong, the cluster bootstrap with --ci bootstrap; clustered.py), DeLong's and
  the stratified bootstrap's are kept, labelled as assuming independent images, with the variance
  ratio (the design effect); two models on the same images are compared by Obuchowski's clustered
  test; the patient level is the headline (``report["headline"]``), first in report.md and the
  summary. ``report["auc"]`` stays the image-level AUC of the first score column;
- several pairwise tests in one level (model comparisons) are Holm-adjusted (``p_adjusted``
  beside the raw ``p``; subgroups.adjust_report_comparisons), as are the pairwise tests between
  subgroups within each model and level (subgroups.subgroup_table);
- the flow of cases (STARD 2015 item 19, ``report["flow"]``, flow.py): rows read, the rows left
  out before the table with their reasons (``excluded_rows``), images and patients analysed;
- ``subgroups``: each column's per-group metrics with CIs and the tests of AUC differences across
  the groups, per model and level (``report["subgroups"][column]``), the patient level only when
  the column is constant within each patient.

A reads table (one row per case x reader x modality) is analysed by ``reader_study`` (mrmc.py:
Obuchowski-Rockette with Hillis' ddf); its headline goes under ``report["mrmc"]``.
"""

from __future__ import annotations

import itertools
import math
from numbers import Real
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from . import binomial, bootstrap, clinical, clustered, delong, roc, thresholds
from . import subgroups as subgroup_stats
from .choices import CI_METHODS, DEFAULT_AGGREGATION, DIRECTION_FOR_TABLES, DIRECTIONS
from .table import (LevelData, binary_labels, build_levels, check_aggregate, check_columns, class_columns,
                    class_names, class_of_column, label_values, readers_table)

SCHEMA = "tfxray.evaluation/1"
LEVEL = 0.95
ROC_POINTS_KEPT = 2000  # the curve stored in report.json is thinned beyond this; AUC uses every point
BAND_WORK_LIMIT = 5e7  # bootstrap resamples x distinct scores for the ROC band when ci=delong
CALIBRATION_BINS = 10
OPERATING_METRICS = ("sensitivity", "specificity", "accuracy", "ppv", "npv", "f1")
MIN_CLASS = 10  # fewer cases or controls than this in a level: a warning
# Notes that start with WARNING are pROC's warnings and their kin: comparing curves of opposite
# directions, an automatic direction that reads "lower", an AUC of 0 or 1 or a CI with no width, a
# band with no width, fewer than MIN_CLASS images in a class, a data-chosen threshold of +/-inf,
# and an AUC below 0.5 in a direction fixed in advance.
WARNING = "warning: "


# ---------------------------------------------------------------------------------------------
# entry point


def evaluate_table(
    df: pd.DataFrame,
    *,
    label_column: str,
    positive,
    score_columns: list[str],
    patient_column: str | None = None,
    aggregate: str = DEFAULT_AGGREGATION,
    threshold: str = "youden",
    model_threshold: float | dict | None = None,
    model_threshold_rule: str | dict | None = None,
    ci: str = "delong",
    n_bootstrap: int = 2000,
    seed: int = 0,
    fold_column: str | None = None,
    readers: pd.DataFrame | None = None,
    classes: list[str] | None = None,
    direction: str = DIRECTION_FOR_TABLES,
    prevalence=None,
    subgroups=None,
    excluded_rows: pd.DataFrame | None = None,
    rows_source: str | None = None,
) -> dict:
    """Evaluate each score column against the label column, per image and (with
    ``patient_column``) per patient; see the module docstrings for every convention.

    ``direction``: higher (a higher score means positive), lower, or auto (pROC's
    direction="auto", the default for a table of any markers; a model's runs pass higher).

    ``prevalence``: deployment prevalence(s) at which each two-class model's PPV and NPV are also
    given (Bayes' theorem from its sensitivity and specificity, logit CIs): a number in (0, 1), a
    list of them, or text such as "0.05,0.1" (the CLI's repeatable --prevalence).

    ``classes`` (optional) forces a multi-class evaluation when it lists more than two classes.
    ``model_threshold`` (rule ``model``): the saved threshold, or {score column: threshold} when
    the columns come from several models; ``model_threshold_rule`` likewise names the rule that
    chose it at training (``thresholds.model_rule_text``).
    ``subgroups``: columns of ``df`` (a name or a list) whose groups get every metric with CIs and
    the tests of AUC differences (two-class only; ``report["subgroups"]``).
    ``excluded_rows``: the rows left out before ``df`` (the CLI's screen of a scores table, the
    images outside a model's profile), with a ``reason`` column and, where known, the label and
    patient columns: counted in the flow of cases (``report["flow"]``), whose first stage
    ``rows_source`` names (default "rows of the scores table").
    Returns plain JSON data (NaN as None, infinite thresholds as "inf"/"-inf");
    ``report["auc"]`` is the image-level AUC of the first score column; ``report["headline"]``
    names the level to read first (the patient level when there is one).
    """
    score_columns = [score_columns] if isinstance(score_columns, str) else list(score_columns)
    if not score_columns:
        raise UserError("score column: give at least one")
    check_columns(df, label_column=label_column, score_column=score_columns, patient_column=patient_column,
                  fold_column=fold_column)
    if label_column in score_columns:
        raise UserError(f"score column {label_column!r} is the label column")
    if len(df) == 0:
        raise UserError("scores table: no rows")
    check_aggregate(aggregate)
    if ci not in CI_METHODS:
        raise UserError(f"ci: {ci!r} is not one of {', '.join(CI_METHODS)}")
    if int(n_bootstrap) < 100:
        raise UserError(f"bootstrap: {n_bootstrap} resamples are too few for a 95% interval (use 100 or more)")
    try:
        direction = roc.DIRECTION_NAMES[roc.direction_symbol(direction)]
    except ValueError:
        raise UserError(f"direction: {direction!r} is not one of {', '.join(DIRECTIONS)}") from None
    rule = thresholds.parse_rule(threshold)
    if rule.kind == "model":
        model_threshold = _model_thresholds(model_threshold, score_columns)
    prevalences = parse_prevalences(prevalence)
    subgroup_columns = _subgroup_columns(df, subgroups, label_column, score_columns, patient_column)

    labels = label_values(df, label_column)
    # Multi-class when told so, or when every one of more than two label values has its score column;
    # otherwise the binary checks below explain what is wrong with the labels.
    column_classes = {class_of_column(c) for c in score_columns} | set(score_columns)
    multiclass = (classes is not None and len(classes) > 2) or (
        labels.nunique() > 2 and set(labels.astype(str)) <= column_classes)
    settings = {
        "label_column": label_column,
        "score_columns": score_columns,
        "patient_column": patient_column,
        "aggregate": aggregate if patient_column else None,
        "fold_column": fold_column,
        "threshold_rule": str(rule),
        "threshold_exploratory": rule.kind in thresholds.DATA_RULES,
        "direction": direction,
        "model_threshold": model_threshold,
        "model_threshold_rule": model_threshold_rule,
        "ci": ci,
        "n_bootstrap": int(n_bootstrap),
        "seed": int(seed),
        "level": LEVEL,
        "task": "multiclass" if multiclass else "binary",
        "prevalence": prevalences,
        "subgroups": subgroup_columns,
        "clustered_ci": (CLUSTERED_CI[ci] if patient_column else None),
        "multiplicity": "holm",
    }
    if multiclass:
        if subgroup_columns:
            raise UserError("subgroup: per-group metrics and tests are for a two-class evaluation; this one is"
                            " multi-class (one-vs-rest)")
        if prevalences:
            raise UserError("prevalence: PPV and NPV at a deployment prevalence are for a two-class evaluation; this"
                            " one is multi-class (one-vs-rest)")
        if positive is not None and not any(str(v) == str(positive) for v in pd.unique(labels)):
            raise UserError(f"positive {str(positive)!r} is not a value of label column {label_column!r}")
        settings["class_columns"] = class_columns(labels, label_column, score_columns, classes)
        settings["positive"] = None if positive is None else str(positive)
    else:
        _, settings["positive"], settings["negative"] = binary_labels(labels, label_column, positive)

    notes: list[str] = []
    levels = build_levels(df, settings)
    report: dict = {"schema": SCHEMA, "auc": None, "task": settings["task"], "settings": settings, "levels": {}}
    for name, data in levels.items():
        if multiclass:
            report["levels"][name] = _multiclass_level(data, settings, notes)
        else:
            report["levels"][name] = _binary_level(data, settings, rule, notes)
    image = report["levels"]["image"]
    if multiclass:
        first_class = next(iter(settings["class_columns"]))
        report["auc"] = image["classes"][first_class]["auc"]
        report["macro_auc"] = image["macro_auc"]
    else:
        report["auc"] = image["models"][score_columns[0]]["auc"]
    report["headline"] = headline(settings, report["levels"])
    report["readers"] = readers_table(readers)
    if not multiclass:
        _clinical_skipped_note(report["levels"], notes)
        report = subgroup_stats.adjust_report_comparisons(report, settings["multiplicity"], family="level")
        if subgroup_columns:
            report["subgroups"] = {c: _subgroup_entry(df, c, levels, report, settings, notes)
                                   for c in subgroup_columns}
    report["flow"] = case_flow(df, excluded_rows, settings, levels, report, rows_source)
    if report["flow"]["n_excluded"]:
        why = ", ".join(f"{s['n']} {s['reason']}" for s in report["flow"]["excluded"])
        notes.append(f"{report['flow']['n_excluded']} of {report['flow']['rows_read']['n']} rows left out of the"
                     f" analysis before any number was computed ({why}): see the flow of cases")
    report["notes"] = notes
    return json_ready(report)


CLUSTERED_CI = {"delong": clustered.METHOD_OBUCHOWSKI, "bootstrap": clustered.METHOD_BOOTSTRAP}
INDEPENDENT = "independent images (every image its own sampling unit)"
MAX_SUBGROUPS = 20  # more distinct values than this: a continuous column, refused (make bands first)


def _subgroup_columns(df: pd.DataFrame, given, label_column: str, score_columns: list[str],
                      patient_column: str | None) -> list[str]:
    """The subgroup columns, checked: present in the table, given once, not the label or a score column."""
    if given is None:
        return []
    columns = [given] if isinstance(given, str) else list(given)
    check_columns(df, subgroup=columns)
    for column in columns:
        if columns.count(column) > 1:
            raise UserError(f"subgroup {column!r}: given twice")
        if column == label_column or column in score_columns:
            what = "the label column" if column == label_column else "a score column"
            raise UserError(f"subgroup {column!r}: it is {what}; give a column that describes the cases (sex, site,"
                            " age band, ...)")
        distinct = df[column].dropna().astype(str).nunique()
        if distinct > MAX_SUBGROUPS:
            raise UserError(f"subgroup {column!r}: {distinct} distinct values; a subgroup column holds a few categories"
                            f" (at most {MAX_SUBGROUPS}): make bands first (e.g. an age_band column of 18-39, 40-59,"
                            " 60+)")
    return columns


def headline(settings: dict, levels: dict) -> dict:
    """report.json's ``headline``: the level to read first and why (the patient level when there is one)."""
    if "patient" not in levels:
        return {"level": "image", "why": None}
    unit = settings["patient_column"]
    method = settings.get("clustered_ci") or clustered.METHOD_OBUCHOWSKI
    return {"level": "patient",
            "why": (f"the patient level (rows grouped by {unit}) is the headline: the images of one patient are not"
                    " independent (they share the patient's anatomy, disease and acquisition) and the patient is the"
                    f" unit a diagnosis is made for; the image-level AUC follows with a CI clustered by {unit}"
                    f" ({method}) and, for comparison only, DeLong's CI that assumes {INDEPENDENT}")}


def level_order(report: dict) -> list[str]:
    """The report's level names, the headline level first."""
    names = list(report.get("levels", {}))
    first = (report.get("headline") or {}).get("level")
    return ([first] if first in names else []) + [n for n in names if n != first]


def _subgroup_entry(df: pd.DataFrame, column: str, levels: dict[str, LevelData], report: dict, settings: dict,
                    notes: list[str]) -> dict:
    """report.json's ``subgroups.<column>``: subgroups.subgroup_table per level and model, at each
    model's operating threshold and in its direction; the patient level only when the column holds
    one value per patient (``headline_level``: the level the figure and the summary show)."""
    values = df[column].reset_index(drop=True)
    entry = {"column": column, "levels": {}, "notes": []}
    image_labels = levels["image"].labels
    given = values.notna().to_numpy()
    for holds, lacks in ((settings["positive"], settings["negative"]), (settings["negative"], settings["positive"])):
        own = image_labels if holds == settings["positive"] else ~image_labels
        if given[own].any() and not given[~own].any():
            entry["notes"].append(f"{column} is given for {holds} images only (an attribute of the {holds} class, such"
                                  f" as a fracture grade): no group holds both classes, so no group has an AUC; compare"
                                  f" each group's {holds} images with all {lacks} images instead")
    for name, data in levels.items():
        if name == "image":
            groups = values.to_numpy(dtype=object)
        else:
            per_patient = pd.Series(values.to_numpy(dtype=object)).groupby(levels["image"].groups)
            varying = per_patient.nunique(dropna=False) > 1
            if varying.any():
                entry["notes"].append(f"{column} varies within {int(varying.sum())} {settings['patient_column']}"
                                      f" group(s) (e.g. {varying[varying].index[0]}): per-image attribute, image level"
                                      " only")
                continue
            groups = per_patient.first().reindex(data.ids).to_numpy(dtype=object)
        models = {}
        for model_name, model in report["levels"][name]["models"].items():
            present = ~np.isnan(data.scores[model_name].to_numpy())
            threshold = model["threshold"]
            table = subgroup_stats.subgroup_table(data.labels[present], data.scores[model_name].to_numpy()[present],
                                                  groups[present], threshold["value"], model["direction"], LEVEL,
                                                  settings["multiplicity"])
            table["pooled_auc"] = model["auc"]
            table["threshold_rule"] = threshold["rule"]
            applied = "<" if threshold["applied_as"].startswith("score >=") else ">"
            if applied != model["direction"]:
                text = (f"the threshold is applied in the curve's direction ('{model['direction']}') here, while the"
                        f" operating point applies it as {threshold['applied_as']}")
                table["notes"].append(text)
                notes.append(f"subgroups by {column}, {name} level, {model_name}: {text}")
            models[model_name] = table
        level = {"unit": name, "models": models}
        if name == "image" and data.groups is not None:
            level["note"] = (f"image level: each group's DeLong CI and the tests treat its images as independent"
                             f" (the patient level is the one to read)")
        entry["levels"][name] = level
    entry["headline_level"] = "patient" if "patient" in entry["levels"] else "image"
    headline_tables = entry["levels"][entry["headline_level"]]["models"]
    left_out = sorted({g["group"] for t in headline_tables.values() for g in t["groups"] if not g["in_test"]})
    if left_out:
        shown = ", ".join(left_out[:5]) + (f" and {len(left_out) - 5} more" if len(left_out) > 5 else "")
        notes.append(f"subgroups by {column}, {entry['headline_level']} level: group(s) {shown} left out of the tests of"
                     " equal AUCs (one class only, too few cases or controls, or an AUC of 0 or 1: report.md's"
                     " subgroup table says which)")
    notes += [f"subgroups by {column}: {n}" for n in entry["notes"]]
    return entry


def case_flow(df: pd.DataFrame, excluded_rows: pd.DataFrame | None, settings: dict, levels: dict[str, LevelData],
              report: dict, rows_source: str | None = None) -> dict:
    """report.json's ``flow`` (flow.flow_from_rows): the rows of ``df`` (all analysed) and the
    ``excluded_rows`` (with their ``reason``), classes named as in the report, patients by the
    patient column; plus ``source`` (what a row read is) and, when several models are compared,
    ``not_scored`` (rows analysed that a model did not score, per model and level)."""
    from .flow import flow_from_rows

    label_column, patient_column = settings["label_column"], settings["patient_column"]
    binary = settings["task"] == "binary"
    order = [settings["positive"], settings["negative"]] if binary else list(settings["class_columns"])
    data = levels["image"]
    kept = ([order[0] if v else order[1] for v in data.labels] if binary else [str(v) for v in data.labels])
    excluded = excluded_rows if excluded_rows is not None else pd.DataFrame({"reason": []})
    if "reason" not in excluded.columns:
        raise UserError("excluded rows: a 'reason' column is needed (why each row was left out)")
    if excluded["reason"].isna().any() or (excluded["reason"].astype(str).str.strip() == "").any():
        raise UserError("excluded rows: every excluded row needs a reason")
    n_out = len(excluded)
    classes = kept + (class_names(excluded[label_column], order) if label_column in excluded.columns
                      else [None] * n_out)
    reasons = [None] * len(kept) + excluded["reason"].astype(str).tolist()
    patients = None
    if patient_column:
        outside = (excluded[patient_column].tolist() if patient_column in excluded.columns else [None] * n_out)
        patients = list(data.groups) + outside
    table = flow_from_rows(classes, reasons, patients, positive=settings["positive"] if binary else None,
                           class_order=order)
    table["source"] = rows_source or "rows of the scores table"
    table["patient_column"] = patient_column
    if binary and len(settings["score_columns"]) > 1:
        missing = {name: {c: m["n_missing"] for c, m in level["models"].items() if m["n_missing"]}
                   for name, level in report["levels"].items()}
        if any(missing.values()):
            table["not_scored"] = {name: v for name, v in missing.items() if v}
    return table


def parse_prevalences(given) -> list[float]:
    """Deployment prevalences as a sorted list of distinct floats in (0, 1): from None, a number,
    text ("0.05" or "0.05,0.1"), or a list of either."""
    if given is None:
        return []
    items = [given] if isinstance(given, (str, Real)) else list(given)
    values: list[float] = []
    for item in items:
        parts = item.split(",") if isinstance(item, str) else [item]
        for part in parts:
            text = part.strip() if isinstance(part, str) else part
            if isinstance(text, str) and not text:
                raise UserError(f"prevalence: an empty value in {item!r} (give numbers such as 0.05 or 0.05,0.1)")
            try:
                value = float(text)
            except (TypeError, ValueError):
                raise UserError(f"prevalence: {part!r} is not a number (give a proportion such as 0.05)") from None
            if not 0 < value < 1:
                raise UserError(f"prevalence: {value:g} is not a proportion strictly between 0 and 1 (5% is 0.05)")
            values.append(value)
    return sorted(set(values))


def _model_thresholds(given, score_columns: list[str]):
    """The model's saved threshold as a float, or {score column: float} for several models; checked finite."""
    def finite(value, where: str) -> float:
        if value is None or not math.isfinite(float(value)):
            raise UserError(f"threshold: rule 'model' needs the model's saved threshold{where}, and none was given")
        return float(value)

    if isinstance(given, dict):
        return {c: finite(given.get(c), f" of score column {c!r}") for c in score_columns}
    return finite(given, "")


def per_column(value, column: str):
    """A setting given once, or per score column as a dict."""
    return value.get(column) if isinstance(value, dict) else value


def ci_caveat(auc, lower, upper, n_cases: int, n_controls: int) -> str | None:
    """A caveat for an interval with no width (lower == upper) or an AUC of exactly 0 or 1, else None.

    At perfect separation the DeLong variance is zero and every bootstrap resample separates too:
    the interval collapses to a point, which says nothing about how sure the estimate is.
    """
    if auc is None or lower is None or upper is None or any(map(_isnan, (auc, lower, upper))):
        return None
    if not (lower == upper or auc in (0.0, 1.0)):
        return None
    why = (f"the scores separate all {n_cases} cases from all {n_controls} controls, where the CI has no width"
           if auc in (0.0, 1.0) else "the interval has no width")
    return (f"degenerate 95% CI {lower:.3f}-{upper:.3f}: {why}; it does not mean the AUC"
            " is known exactly (a small or easy test set cannot rule out a lower AUC on new images)")


# ---------------------------------------------------------------------------------------------
# binary task


def _warn(notes: list[str], text: str) -> None:
    """A warning note, once (the same words from two models or levels are said once)."""
    if WARNING + text not in notes:
        notes.append(WARNING + text)


def _direction(labels: np.ndarray, scores: np.ndarray, settings: dict) -> str:
    """'<' or '>': the direction given, or pROC's automatic choice on these labels and scores."""
    return roc.resolve_direction(labels, scores, roc.direction_symbol(settings["direction"]))


def _direction_note(direction: str, where: str, positive: str, settings: dict) -> str | None:
    """pROC's message when direction='auto' picks '>' (lower scores mean positive), else None."""
    if direction != ">" or settings["direction"] != "auto":
        return None
    return (f"{where}: Setting direction: controls > cases (pROC's direction='auto': the median score of the controls"
            f" is above that of the cases), so lower scores mean {positive} and the AUC is that of the reversed"
            " scores; --direction higher keeps the scores' own direction")


def _setup_warnings(where: str, level_name: str, auc: float, direction: str, m: int, n: int, caveat: str | None,
                    positive: str, negative: str, settings: dict, notes: list[str]) -> None:
    """The warnings about one curve: few images in a class, a degenerate CI, below chance in a fixed direction."""
    if m < MIN_CLASS or n < MIN_CLASS:
        _warn(notes, f"{level_name} level: only {m} {positive} and {n} {negative} (fewer than {MIN_CLASS} in a"
                     " class): the AUC, its CI and any threshold rest on very few images, and the large-sample"
                     " approximations behind the CIs may not hold")
    if caveat:
        _warn(notes, f"{where}: {caveat}")
    if settings["direction"] != "auto" and auc < 0.5:
        word = "higher" if direction == "<" else "lower"
        _warn(notes, f"{where}: AUC {auc:.3f} is below 0.5 in the direction fixed in advance ({word} score ="
                     f" {positive}): the scores rank {negative} above {positive} more often than not; check the labels"
                     " and --positive (a model evaluated with its classes swapped reads 1 - AUC); --direction auto"
                     " would flip the curve, as pROC's direction='auto' does, but that is not the model's rule")


def _infinite_threshold_warning(choice: thresholds.ThresholdChoice, where: str, unit: str, notes: list[str]) -> None:
    """A threshold chosen on the data that is +/-inf: every unit, or none, is called positive."""
    if not choice.exploratory or math.isfinite(choice.threshold):
        return
    everything = (choice.threshold < 0) == (choice.direction == "<")
    called = f"every {unit} is called positive (specificity 0)" if everything else \
        f"no {unit} is called positive (sensitivity 0)"
    sign = "+" if choice.threshold > 0 else "-"
    _warn(notes, f"{where}: the threshold chosen by {choice.rule} is {sign}inf: {called}; the rule's point on these"
                 " data is an end of the curve, which says nothing about a usable cut-off")


def _ci(method: str, lower: float, upper: float, **extra) -> dict:
    return {"method": method, "level": LEVEL, "lower": lower, "upper": upper, **extra}


def _band_resamples(n_bootstrap: int, distinct: int, ci: str) -> int:
    if ci == "bootstrap" or n_bootstrap * distinct <= BAND_WORK_LIMIT:
        return n_bootstrap
    return int(max(100, BAND_WORK_LIMIT // distinct))


def _curve_dict(curve: roc.RocCurve, keep: int | None = None) -> dict:
    """The curve for report.json; beyond ROC_POINTS_KEPT points, evenly spaced ones (plus ``keep``)."""
    count = len(curve)
    index = np.arange(count)
    if count > ROC_POINTS_KEPT:
        index = np.unique(np.concatenate((np.linspace(0, count - 1, ROC_POINTS_KEPT).round().astype(int),
                                          [] if keep is None else [keep])))
    return {
        "n_points": count,
        "thinned": bool(count > ROC_POINTS_KEPT),
        "threshold": curve.thresholds[index].tolist(),
        "sensitivity": curve.sensitivity[index].tolist(),
        "specificity": curve.specificity[index].tolist(),
    }


def calibration(labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """Reliability curve over equal-width bins of [0, 1], each bin's observed rate with its exact CI,
    and the Brier score. sklearn.calibration.calibration_curve gives the same bin means, but
    neither the bins' counts nor their intervals, hence this function."""
    if scores.min() < 0 or scores.max() > 1:
        return {"skipped": "scores outside [0, 1] are not probabilities: no reliability curve"}
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        if count == 0:
            continue
        positives = int(labels[inside].sum())
        low, high = binomial.clopper_pearson(positives, count, LEVEL)
        rows.append({"bin_low": float(edges[b]), "bin_high": float(edges[b + 1]), "n": count,
                     "mean_score": float(scores[inside].mean()), "observed": positives / count,
                     "observed_lower": low, "observed_upper": high})
    return {"bins": rows, "brier": float(np.mean((scores - labels) ** 2))}


def probability_scores(scores: np.ndarray, direction: str) -> str | None:
    """None when the scores read as probabilities of the positive class (all in [0, 1], higher =
    positive), else why not: decision curves and calibration need probabilities."""
    if direction != "<":
        return "lower scores mean positive here, so they are not probabilities of the positive class"
    if scores.min() < 0 or scores.max() > 1:
        return f"scores from {scores.min():.4g} to {scores.max():.4g} lie outside [0, 1] and are not probabilities"
    return None


DECISION_CURVE_METHOD = ("net benefit = TP/n - FP/n x pt/(1 - pt) at each threshold probability pt, a case treated"
                         " when its probability >= pt (Vickers & Elkin 2006); treat all = prevalence - (1 -"
                         " prevalence) x pt/(1 - pt); treat none = 0 at every pt. Reads the scores as calibrated"
                         " probabilities, and the prevalence is the sample's")


def _decision_entry(labels: np.ndarray, scores: np.ndarray) -> dict:
    """report.json's ``decision_curve``: clinical.decision_curve's columns as lists (treat none, 0
    everywhere, and n, the same in every row, said once)."""
    table = clinical.decision_curve(labels, scores)
    return {"method": DECISION_CURVE_METHOD, "n": int(table.attrs["n"]), "prevalence": table.attrs["prevalence"],
            "threshold": table["threshold"].tolist(), "net_benefit": table["net_benefit"].tolist(),
            "treat_all": table["treat_all"].tolist(),
            "interventions_avoided_per_100": table["interventions_avoided_per_100"].tolist(),
            "tp": table["tp"].astype(int).tolist(), "fp": table["fp"].astype(int).tolist()}


def _clinical_entries(labels: np.ndarray, scores: np.ndarray, direction: str, operating: dict,
                      settings: dict) -> dict:
    """PPV, NPV, LR+ and LR- at the operating point (and PPV/NPV at each deployment prevalence),
    AUPRC with its bootstrap CI, and for probabilities the decision curve and the calibration fit.

    The precision-recall curve ranks by the model's direction (scores negated when lower =
    positive). ``clinical_skipped`` says why a model has no decision curve or calibration fit."""
    pv = clinical.predictive_values(operating["tp"], operating["fp"], operating["fn"], operating["tn"],
                                    prevalence=settings.get("prevalence") or None, level=LEVEL)
    ranked = scores if direction == "<" else -scores
    pr = clinical.precision_recall(labels, ranked, n_bootstrap=settings["n_bootstrap"], seed=settings["seed"],
                                   level=LEVEL)
    ci = pr["ci"]
    out = {
        "ppv": pv["ppv"],
        "npv": pv["npv"],
        "lr_positive": pv["lr_positive"],
        "lr_negative": pv["lr_negative"],
        "deployment": pv["deployment"],
        "predictive_values_note": ("at the operating point's threshold; ppv and npv at the sample prevalence"
                                   f" ({pv['sample_prevalence']['value']:.4g}), meaningful only for a consecutive"
                                   " (cohort) sample; deployment: at each given prevalence by Bayes' theorem, logit"
                                   " CIs (Mercaldo et al. 2007)"),
        "auprc": {"value": pr["average_precision"], "lower": ci["lower"], "upper": ci["upper"], "level": LEVEL,
                  "method": ci["method"], "n_bootstrap": ci["n_bootstrap"], "seed": ci["seed"],
                  "baseline": pr["prevalence"],
                  "definition": "average precision, sum of (R_n - R_(n-1)) P_n (scikit-learn's"
                                " average_precision_score, no interpolation); the baseline (no skill) is the"
                                " prevalence" + ("; ranked by the reversed scores (lower = positive)"
                                                 if direction != "<" else "")},
    }
    why_not = probability_scores(scores, direction)
    if why_not is None:
        out["decision_curve"] = _decision_entry(labels, scores)
        out["calibration_fit"] = clinical.calibration_fit(labels, scores, level=LEVEL)
        out["clinical_skipped"] = None
    else:
        out["decision_curve"] = {"skipped": why_not}
        out["calibration_fit"] = {"skipped": why_not}
        out["clinical_skipped"] = why_not
    return out


def _clinical_skipped_note(levels: dict, notes: list[str]) -> None:
    """One note for every model left without a decision curve and calibration fit (the reason is
    in each model's ``clinical_skipped`` and in report.md)."""
    columns = list(dict.fromkeys(column for level in levels.values() for column, model in level["models"].items()
                                 if model.get("clinical_skipped")))
    if columns:
        notes.append(f"no decision curve or calibration fit for {', '.join(columns)}: the scores are not"
                     " probabilities (report.md says why)")


def _operating(labels: np.ndarray, scores: np.ndarray, choice: thresholds.ThresholdChoice) -> dict:
    counts = roc.confusion_at(labels, scores, choice.threshold, choice.direction)
    return binomial.operating_point(**counts, level=LEVEL)


def _fold_summary(per_fold: list[dict], keys: list[str]) -> dict:
    out = {"mean": {}, "sd": {}}
    for key in keys:
        values = np.array([f[key] for f in per_fold if f.get(key) is not None and not _isnan(f[key])], dtype=float)
        out["mean"][key] = float(values.mean()) if len(values) else None
        out["sd"][key] = float(values.std(ddof=1)) if len(values) > 1 else None
        out.setdefault("n", {})[key] = int(len(values))
    return out


def _isnan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _binary_folds(labels, scores, folds, rule, model_threshold, model_rule=None, direction: str = "<",
                  where: str = "", notes: list[str] | None = None) -> dict:
    """Per-fold AUC (DeLong CI) and operating point, every fold in the one ``direction`` of the model
    (given, or chosen on the pooled out-of-fold scores): a fold is not flipped on its own, so a fold
    where the model ranks worse than chance reads an AUC below 0.5. The threshold rule is applied
    within each fold."""
    per_fold = []
    for fold in sorted(set(folds), key=_natural_key):
        inside = folds == fold
        y, s = labels[inside], scores[inside]
        record = {"fold": fold, "n_cases": int(y.sum()), "n_controls": int((~y).sum())}
        if record["n_cases"] == 0 or record["n_controls"] == 0:
            record["note"] = "one class only: no AUC"
            per_fold.append(record)
            continue
        fit = delong.delong_ci(y, s, LEVEL, direction)
        choice = thresholds.choose_threshold(y, s, rule, direction=direction, model_threshold=model_threshold,
                                             model_rule=model_rule)
        point = _operating(y, s, choice)
        record.update({"direction": direction, "auc": fit.auc, "auc_lower": fit.lower, "auc_upper": fit.upper,
                       "threshold": choice.threshold, **{k: point[k] for k in ("tp", "fp", "tn", "fn")},
                       **{k: point[k]["value"] for k in OPERATING_METRICS}})
        per_fold.append(record)
    summary = _fold_summary(per_fold, ["auc", *OPERATING_METRICS])
    below = [f for f in per_fold if f.get("auc") is not None and f["auc"] < 0.5]
    if below and notes is not None:
        listed = ", ".join(f"fold {f['fold']} {f['auc']:.3f}" for f in below)
        notes.append(f"{where}: {len(below)} fold(s) read an AUC below 0.5 in the model's direction ({listed}); each"
                     " fold keeps that direction rather than choosing its own, which would report 1 - AUC where it"
                     " flips")
    threshold_note = f"threshold rule {rule} applied within each fold"
    if rule.kind in thresholds.DATA_RULES:
        threshold_note += ", on each fold's own data: exploratory"
    return {"n_folds": len(per_fold), "direction": direction,
            "direction_note": f"'{direction}' ({roc.DIRECTION_NAMES[direction]} score = positive) in every fold, the"
                              " model's (pooled) direction", "threshold_note": threshold_note, "per_fold": per_fold,
            **summary}


def _natural_key(text: str):
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _binary_model(data: LevelData, column: str, settings: dict, rule, notes: list[str]) -> dict:
    present = ~np.isnan(data.scores[column].to_numpy())
    y = data.labels[present]
    s = data.scores[column].to_numpy()[present]
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        raise UserError(f"score column {column!r}: the scored {data.name}s hold one class only; AUC is undefined")
    where = f"{data.name} level, {column}"
    direction = _direction(y, s, settings)
    note = _direction_note(direction, where, settings["positive"], settings)
    if note:
        _warn(notes, note)
    curve = roc.roc_curve(y, s, direction)
    fit = delong.delong_ci(y, s, LEVEL, direction)
    resamples = _band_resamples(settings["n_bootstrap"], len(curve) - 1, settings["ci"])
    boot = bootstrap.stratified_bootstrap(y, s, resamples, settings["seed"], LEVEL, direction,
                                          grid=bootstrap.band_grid(curve), rule=rule)
    boot_low, boot_high = boot.auc_ci()
    cis = {
        "delong": _ci("delong", fit.lower, fit.upper, se=fit.se, variance=fit.variance),
        "bootstrap": _ci("stratified bootstrap, percentile", boot_low, boot_high, n_bootstrap=boot.n_bootstrap,
                         seed=settings["seed"]),
    }
    chosen_ci = cis[settings["ci"]]
    cluster_record = None
    if data.groups is not None:
        chosen_ci, cluster_record = _clustered_cis(y, s, data.groups[present], direction, settings, cis, where, notes)
    model_threshold = per_column(settings["model_threshold"], column)
    model_rule = per_column(settings.get("model_threshold_rule"), column)
    choice = thresholds.choose_threshold(y, s, rule, direction=direction, model_threshold=model_threshold,
                                         model_rule=model_rule, curve=curve)
    if len(choice.ties) > 1:
        notes.append(f"{data.name} level, {column}: {len(choice.ties)} thresholds tie for the best Youden index;"
                     " all are listed in report.json, the one with the highest sensitivity is used")
    if rule.kind == "model" and direction == ">":
        notes.append(f"{data.name} level, {column}: the model's threshold is applied as score >= threshold (the"
                     " model's rule) although lower scores mean positive on these data")
    _infinite_threshold_warning(choice, where, data.name, notes)
    on_curve = np.flatnonzero(curve.thresholds == choice.threshold)  # kept when the stored curve is thinned
    chosen_index = int(on_curve[0]) if len(on_curve) else None
    caveat = ci_caveat(curve.auc, chosen_ci["lower"], chosen_ci["upper"], m, n)
    _setup_warnings(where, data.name, curve.auc, direction, m, n, caveat, settings["positive"], settings["negative"],
                    settings, notes)
    operating = _operating(y, s, choice)
    if choice.exploratory:
        operating["with_threshold_choice"] = _choice_entry(boot, choice, operating)
    result = {
        "score_column": column,
        "n": int(present.sum()),
        "n_cases": m,
        "n_controls": n,
        "n_missing": int((~present).sum()),
        "direction": direction,
        "direction_note": note,
        "auc": curve.auc,
        "auc_ci": chosen_ci,
        "auc_cis": cis,
        "ci_caveat": caveat,
        "threshold": choice.as_dict(),
        "operating_point": operating,
        "roc": _curve_dict(curve, chosen_index),
        "roc_band": _band_entry(curve, boot, s, where, notes),
        "calibration": calibration(y, s),
        **_clinical_entries(y, s, direction, operating, settings),
    }
    if cluster_record is not None:
        result["clustered"] = cluster_record
    if boot.n_bootstrap < settings["n_bootstrap"]:
        notes.append(f"{where}: the ROC band{' and the threshold-choice CIs' if choice.exploratory else ''} use"
                     f" {boot.n_bootstrap} bootstrap resamples ({len(curve) - 1} distinct scores)")
    if data.folds is not None:
        result["folds"] = _binary_folds(y, s, data.folds[present], rule, model_threshold, model_rule, direction,
                                        where, notes)
    return result


def _clustered_cis(y: np.ndarray, s: np.ndarray, clusters: np.ndarray, direction: str, settings: dict, cis: dict,
                   where: str, notes: list[str]) -> tuple[dict, dict]:
    """The image-level AUC's cluster-aware CI (Obuchowski 1997 with ci=delong, the cluster bootstrap
    with ci=bootstrap), added to ``cis`` as "clustered"; DeLong's and the stratified bootstrap's
    CIs are labelled as assuming independent images. Returns (the clustered CI, report.json's
    ``clustered``: Obuchowski's variance components, the design effect, the bootstrap's counts)."""
    unit = settings["patient_column"]
    fit = clustered.clustered_auc(y, s, clusters, LEVEL, direction)
    for ci in cis.values():
        ci["assumes"] = INDEPENDENT
    record = {"unit": unit, "method": settings["clustered_ci"],
              "obuchowski": {k: fit[k] for k in ("auc", "se", "variance", "ci", "ci_unclipped", "method", "components",
                                                 "delong_se", "variance_ratio", "note")},
              "variance_ratio": fit["variance_ratio"],
              "variance_ratio_note": ("Obuchowski's clustered variance over DeLong's with every image independent (the"
                                      " design effect): above 1, images of one patient move together and the naive CI"
                                      " is too narrow"),
              **{k: fit[k] for k in ("n_images", "n_clusters", "n_clusters_with_cases", "n_clusters_with_controls",
                                     "images_per_cluster")}}
    if settings["ci"] == "bootstrap":
        boot = clustered.cluster_bootstrap_auc(y, s, clusters, settings["n_bootstrap"], settings["seed"], LEVEL,
                                               direction)
        record["bootstrap"] = {k: boot[k] for k in ("ci", "se", "method", "n_bootstrap", "n_used", "n_degenerate",
                                                    "seed", "note")}
        chosen = _ci(boot["method"], boot["ci"][0], boot["ci"][1], se=boot["se"], n_bootstrap=boot["n_bootstrap"],
                     seed=boot["seed"], n_used=boot["n_used"])
        note = boot["note"]
    else:
        chosen = _ci(fit["method"], fit["ci"][0], fit["ci"][1], se=fit["se"], variance=fit["variance"])
        note = fit["note"]
    chosen.update(unit=unit, n_clusters=fit["n_clusters"], variance_ratio=fit["variance_ratio"])
    cis["clustered"] = chosen
    if note:
        notes.append(f"{where}: clustered by {unit}: {note}")
    if fit["note"] and settings["ci"] == "bootstrap":
        notes.append(f"{where}: Obuchowski's clustered variance: {fit['note']} (no variance ratio)")
    return chosen, record


def _choice_entry(boot: bootstrap.BootstrapResult, choice: thresholds.ThresholdChoice, operating: dict) -> dict:
    """report.json's ``operating_point.with_threshold_choice``: sensitivity and specificity with
    percentile CIs from resamples in which the threshold is chosen again by the same rule."""
    interval = boot.choice_ci()
    return {
        "method": ("stratified bootstrap of the threshold choice: in each resample the threshold is chosen again by"
                   f" {choice.rule} and the sensitivity and specificity are read at it; percentile CIs (as pROC's"
                   " ci.coords(x = \"best\"))"),
        "rule": choice.rule,
        "n_bootstrap": boot.n_bootstrap,
        "seed": boot.seed,
        "level": boot.level,
        **{key: {"value": operating[key]["value"], "lower": interval[key][0], "upper": interval[key][1]}
           for key in ("sensitivity", "specificity")},
    }


def _band_entry(curve: roc.RocCurve, boot: bootstrap.BootstrapResult, scores: np.ndarray, where: str,
                notes: list[str]) -> dict:
    """report.json's ``roc_band``: pROC's ci.se over the band's grid, the curve at the same
    specificities, and whether the two agree; a band with no width is a warning."""
    grid = boot.specificity
    observed = roc.interpolated_sensitivity(curve.tn, curve.tp, curve.n_controls, curve.n_cases, grid)
    outside = (observed < boot.sensitivity_lower - 1e-12) | (observed > boot.sensitivity_upper + 1e-12)
    own_points = len(grid) > len(bootstrap.DEFAULT_GRID)
    entry = {
        "method": ("stratified bootstrap, pointwise percentile interval of the sensitivity at each specificity (pROC's"
                   " ci.se: in each resample the sensitivity is interpolated between the ROC points)"),
        "pointwise": True,
        "n_bootstrap": boot.n_bootstrap,
        "seed": boot.seed,
        "level": boot.level,
        "grid": f"{len(bootstrap.DEFAULT_GRID)} evenly spaced specificities"
                + (" and the curve's own points" if own_points else ""),
        "specificity": grid.tolist(),
        "sensitivity": observed.tolist(),
        "sensitivity_lower": boot.sensitivity_lower.tolist(),
        "sensitivity_upper": boot.sensitivity_upper.tolist(),
        "no_width": boot.band_has_no_width(),
        "curve_outside": int(outside.sum()),
    }
    if entry["no_width"]:
        why = ("the score is constant" if np.ptp(scores) == 0 else
               "the scores separate the classes completely" if curve.auc in (0.0, 1.0) else "")
        _warn(notes, f"{where}: the pointwise ROC band has no width: every bootstrap resample gives the same curve"
                     + (f" ({why})" if why else "") + "; it does not mean the curve is known exactly, and the figure"
                     " draws no band")
    if entry["curve_outside"]:
        notes.append(f"{where}: the ROC curve lies outside its pointwise band at {entry['curve_outside']} of"
                     f" {len(grid)} specificities (a percentile band need not hold the estimate where the resampled"
                     " sensitivities are skewed)")
    return entry


def _comparison(data: LevelData, a: str, b: str, models: dict, notes: list[str]) -> dict | None:
    va = ~np.isnan(data.scores[a].to_numpy())
    vb = ~np.isnan(data.scores[b].to_numpy())
    directions = (models[a]["direction"], models[b]["direction"])
    header = {"models": [a, b]}
    if directions[0] != directions[1]:
        _warn(notes, f"{data.name} level, {a} vs {b}: DeLong's test should not be applied to ROC curves with a"
                     f" different direction (pROC's warning): {a} reads '{directions[0]}' and {b} '{directions[1]}', so"
                     " the test compares one model's AUC with the other's reversed scores; fix one direction with"
                     " --direction higher or lower")
    if not (va & vb).any():
        result = delong.unpaired_test(data.labels[va], data.scores[a].to_numpy()[va], data.labels[vb],
                                      data.scores[b].to_numpy()[vb], LEVEL, directions)
        if data.groups is not None:
            result["assumes"] = INDEPENDENT
            notes.append(f"{data.name} level, {a} vs {b}: the unpaired DeLong test treats images as independent (no"
                         " clustered unpaired test); the patient-level comparison is the one to read")
        return {**header, "cases": "different", **result}
    both = va & vb
    y = data.labels[both]
    if y.sum() < 2 or (~y).sum() < 2:
        notes.append(f"{data.name} level, {a} vs {b}: fewer than 2 cases or controls scored by both; no test")
        return None
    score_a, score_b = data.scores[a].to_numpy()[both], data.scores[b].to_numpy()[both]
    result = delong.paired_test(y, score_a, score_b, LEVEL, directions)
    if data.groups is not None:  # images clustered in patients: Obuchowski's test, DeLong's kept for comparison
        naive = result
        result = clustered.clustered_paired_test(y, score_a, score_b, data.groups[both], LEVEL, directions)
        result["clustered_by"] = models[a].get("clustered", {}).get("unit")
        result["delong_independent"] = {**{k: naive[k] for k in ("test", "difference", "se", "z", "p", "ci_lower",
                                                                 "ci_upper")}, "assumes": INDEPENDENT}
    same = bool((va == vb).all())
    if not same:
        notes.append(f"{data.name} level, {a} vs {b}: paired test on the {int(both.sum())} {data.name}s scored by both")
    return {**header, "cases": "same" if same else "common", "n": int(both.sum()), **result}


def _binary_level(data: LevelData, settings: dict, rule, notes: list[str]) -> dict:
    columns = settings["score_columns"]
    models = {c: _binary_model(data, c, settings, rule, notes) for c in columns}
    comparisons = [c for a, b in itertools.combinations(columns, 2)
                   if (c := _comparison(data, a, b, models, notes)) is not None]
    level = {
        "unit": data.name,
        "group_column": settings["patient_column"] if data.name == "patient" else None,
        "aggregate": settings["aggregate"] if data.name == "patient" else None,
        "n": int(len(data.labels)),
        "n_positive": int(data.labels.sum()),
        "n_negative": int((~data.labels).sum()),
        "models": models,
        "comparisons": comparisons,
    }
    if data.n_images is not None:
        level["images_per_patient"] = {"min": int(data.n_images.min()), "median": float(np.median(data.n_images)),
                                       "max": int(data.n_images.max())}
    return level


# ---------------------------------------------------------------------------------------------
# multi-class task


def _multiclass_level(data: LevelData, settings: dict, notes: list[str]) -> dict:
    """One-vs-rest AUC per class (DeLong CI), their macro average, and the argmax confusion matrix."""
    mapping = settings["class_columns"]
    per_class = {}
    for cls, column in mapping.items():
        y = data.labels == cls
        s = data.scores[column].to_numpy()
        record = {"score_column": column, "n_cases": int(y.sum()), "n_controls": int((~y).sum())}
        if record["n_cases"] == 0 or record["n_controls"] == 0:
            record.update(auc=None, note="one class only: no AUC")
            notes.append(f"{data.name} level, class {cls}: no {'cases' if record['n_cases'] == 0 else 'controls'}; no AUC")
            per_class[cls] = record
            continue
        where = f"{data.name} level, class {cls}"
        direction = _direction(y, s, settings)
        note = _direction_note(direction, where, cls, settings)
        if note:
            _warn(notes, note)
        fit = delong.delong_ci(y, s, LEVEL, direction)
        cis = {"delong": _ci("delong", fit.lower, fit.upper, se=fit.se, variance=fit.variance)}
        if settings["ci"] == "bootstrap":
            low, high = bootstrap.bootstrap_auc_ci(y, s, settings["n_bootstrap"], settings["seed"], LEVEL, direction)
            cis["bootstrap"] = _ci("stratified bootstrap, percentile", low, high, n_bootstrap=settings["n_bootstrap"],
                                   seed=settings["seed"])
        curve = roc.roc_curve(y, s, direction)
        chosen = cis[settings["ci"]]
        if data.groups is not None:
            chosen, record["clustered"] = _clustered_cis(y, s, data.groups, direction, settings, cis, where, notes)
        caveat = ci_caveat(fit.auc, chosen["lower"], chosen["upper"], record["n_cases"], record["n_controls"])
        _setup_warnings(where, data.name, fit.auc, direction, record["n_cases"], record["n_controls"], caveat, cls,
                        "of the other classes", settings, notes)
        record.update(direction=direction, direction_note=note, auc=fit.auc, auc_ci=chosen, auc_cis=cis,
                      ci_caveat=caveat, roc=_curve_dict(curve))
        per_class[cls] = record
    aucs = [r["auc"] for r in per_class.values() if r["auc"] is not None]
    classes = list(mapping)
    score_matrix = data.scores[[mapping[c] for c in classes]].to_numpy()
    predicted = np.array(classes, dtype=object)[np.argmax(score_matrix, axis=1)]
    matrix = [[int(np.sum((data.labels == t) & (predicted == p))) for p in classes] for t in classes]
    correct = int(np.sum(predicted == data.labels))
    level = {
        "unit": data.name,
        "group_column": settings["patient_column"] if data.name == "patient" else None,
        "aggregate": settings["aggregate"] if data.name == "patient" else None,
        "n": int(len(data.labels)),
        "n_per_class": {c: int(np.sum(data.labels == c)) for c in classes},
        "classes": per_class,
        "macro_auc": float(np.mean(aucs)) if aucs else None,
        "macro_auc_note": "unweighted mean of the one-vs-rest AUCs (no CI)",
        "argmax": {"accuracy": binomial.proportion(correct, len(data.labels), LEVEL),
                   "confusion": {"classes": classes, "rows": "true class", "columns": "predicted class",
                                 "matrix": matrix}},
    }
    if data.folds is not None:
        per_fold = []
        for fold in sorted(set(data.folds), key=_natural_key):
            inside = data.folds == fold
            record = {"fold": fold, "n": int(inside.sum())}
            fold_aucs = []
            for cls, column in mapping.items():
                y = data.labels[inside] == cls
                if y.all() or not y.any():
                    record[f"auc_{cls}"] = None
                    continue
                value = roc.auc(y, data.scores[column].to_numpy()[inside], per_class[cls]["direction"])
                record[f"auc_{cls}"] = value
                fold_aucs.append(value)
            record["macro_auc"] = float(np.mean(fold_aucs)) if fold_aucs else None
            per_fold.append(record)
        keys = ["macro_auc", *[f"auc_{c}" for c in classes]]
        directions = {cls: r["direction"] for cls, r in per_class.items() if r.get("auc") is not None}
        level["folds"] = {"n_folds": len(per_fold), "directions": directions,
                          "direction_note": "each class keeps its (pooled) direction in every fold",
                          "per_fold": per_fold, **_fold_summary(per_fold, keys)}
    return level


# ---------------------------------------------------------------------------------------------
# output


def json_ready(value):
    """Plain JSON: numpy scalars to Python, NaN to null, infinities to "inf"/"-inf"."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Path):
        return str(value)
    return value


def write_report(report: dict, df: pd.DataFrame, out_dir, roc_only: bool = False,
                 study: dict | None = None) -> dict[str, Path]:
    """Write report.json, report.md and the figures into ``out_dir``, each atomically.

    ``study``: a reader study (``reader_study``) whose mrmc.* files are written too (report.md
    links them; ``add_reader_study`` puts its headline into the report).

    ``df`` is the table given to evaluate_table: the plots are drawn from its scores (the
    report.json curve may be thinned). ``roc_only``: draw the ROC figures only (see
    plots.draw_all); the numbers in report.json and report.md are the same either way.
    Returns {name: path}.
    """
    import json

    from ..io import atomic_write_text
    from .markdown import render_markdown
    from .plots import draw_all

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    levels = build_levels(df, report["settings"])
    paths = draw_all(report, levels, out_dir, roc_only=roc_only)
    if study is not None:
        paths.update(write_reader_study(study, out_dir))
    paths = {"report.json": out_dir / "report.json", "report.md": out_dir / "report.md", **paths}
    atomic_write_text(paths["report.json"], json.dumps(json_ready(report), indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["report.md"], render_markdown(report, {k: v.name for k, v in paths.items()}))
    return paths


def format_summary(report: dict) -> str:
    from .markdown import render_summary

    return render_summary(report)


# ---------------------------------------------------------------------------------------------
# reader studies (MRMC): a reads table, with or without a model's scores


MRMC_FILES = {"json": "mrmc.json", "md": "mrmc.md", "png": "mrmc.png", "svg": "mrmc.svg"}
WITH_MODEL_FOLDER = "with_model"


def model_readers(table: pd.DataFrame, report: dict, reads: pd.DataFrame, case_column: str) -> dict[str, pd.Series]:
    """Each score column of a two-class report as a model "reader": {column: score per case id},
    higher = positive (negated where the model's image-level direction is lower = positive).

    ``case_column`` of the scores table holds the reads table's case ids (matched as text); every
    case of the reads table needs a score and one label that agrees with its truth there."""
    if report.get("task") != "binary":
        raise UserError("model as reader: needs a two-class evaluation (the reads table's truth is 0/1)")
    if case_column not in table.columns:
        shown = ", ".join(map(str, table.columns[:20])) + (" ..." if len(table.columns) > 20 else "")
        raise UserError(f"model as reader: the scores table has no case column {case_column!r} to match the reads"
                        f" table's case ids (--case-column names it; columns: {shown})")
    settings = report["settings"]
    labels, _, _ = binary_labels(label_values(table, settings["label_column"]), settings["label_column"],
                                 settings["positive"])
    cases = table[case_column].astype(str).to_numpy()
    first = reads.drop_duplicates("case")
    truth = pd.Series(first["truth"].to_numpy() == 1, index=first["case"].astype(str).to_numpy())
    known = pd.Index(truth.index).get_indexer(cases) >= 0
    bad = np.flatnonzero(known & (labels != truth.reindex(cases, fill_value=False).to_numpy(dtype=bool)))
    if len(bad):
        row = int(bad[0])
        raise UserError(f"model as reader: case {cases[row]!r} is {'positive' if labels[row] else 'negative'} in the"
                        f" scores table (label column {settings['label_column']!r}) but has truth"
                        f" {int(truth[cases[row]])} in the reads table ({len(bad)} row(s) disagree)")
    out = {}
    for column in settings["score_columns"]:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        present = ~np.isnan(values)
        direction = report["levels"]["image"]["models"][column]["direction"]
        out[column] = pd.Series(values[present] if direction == "<" else -values[present], index=cases[present])
    return out


def reader_study(reads: pd.DataFrame, *, reader_cutoff=None, source: str = "reads table",
                 models: dict[str, pd.Series] | None = None) -> dict:
    """The MRMC analysis of a reads table (mrmc.mrmc_report: OR RRRC with Hillis' ddf, FRRC, RRFC,
    McNemar of the readers' calls with ``reader_cutoff`` or 0/1 ratings).

    ``models`` ({name: score per case}, see ``model_readers``): the same analysis is also run
    with each model added as one more reader in every modality, with the same scores in each (a
    model reads the same way with or without assistance; mrmc.add_model_reader), returned under
    ``with_model``. The readers' own analysis is never changed by a model."""
    from . import mrmc

    study = mrmc.mrmc_report(reads, reader_cutoff=reader_cutoff, source=source)
    study["source"] = source
    if models:
        combined = reads
        for name, scores in models.items():
            combined = mrmc.add_model_reader(combined, scores, name)
        # No McNemar here: the readers' cut-off does not apply to a model's scores, and a model with the same
        # scores in every modality has no discordant calls.
        with_model = mrmc.mrmc_report(combined, source=source)
        with_model["mcnemar"] = None
        with_model["source"] = source
        with_model["model_readers"] = list(models)
        with_model["notes"] = [f"model reader(s) {', '.join(models)} added in every modality with the same scores (a"
                               " model reads the same way with or without assistance); the readers' calls are"
                               " compared (McNemar) in the readers' own analysis only"] + [
            n for n in with_model["notes"] if not n.startswith("no McNemar comparison")]
        study["with_model"] = with_model
    return study


def mrmc_entry(study: dict) -> dict:
    """report.json's ``mrmc``: the headline (f, ndf, ddf, p, auc per modality, ci_difference), the
    design, each reader's AUC and the readers' McNemar comparison; the whole analysis is in
    mrmc.json (and with_model/mrmc.json when a model was added as a reader)."""
    entry = {**study["mrmc"], "source": study.get("source"), "design": study["design"],
             "per_reader": study["per_reader"], "mcnemar": study.get("mcnemar"), "files": dict(MRMC_FILES)}
    if study.get("with_model"):
        other = study["with_model"]
        entry["with_model"] = {**other["mrmc"], "model_readers": other["model_readers"], "design": other["design"],
                               "per_reader": other["per_reader"],
                               "files": {k: f"{WITH_MODEL_FOLDER}/{v}" for k, v in MRMC_FILES.items()}}
    return entry


def add_reader_study(report: dict, study: dict) -> dict:
    """The report with ``mrmc`` set and the study's notes added (prefixed "reader study: ")."""
    report["mrmc"] = json_ready(mrmc_entry(study))
    report["notes"] = list(report.get("notes", [])) + [f"reader study: {n}" for n in study.get("notes", [])]
    if study.get("with_model"):
        report["notes"] += [f"reader study with the model: {n}" for n in study["with_model"]["notes"]]
    return report


def reader_study_report(study: dict) -> dict:
    """report.json of a reads table alone (no model scores): ``task`` "mrmc" and the ``mrmc`` key."""
    report = {"schema": SCHEMA, "task": "mrmc", "auc": None, "settings": {"readers": study.get("source")},
              "notes": []}
    return add_reader_study(report, study)


def write_reader_study(study: dict, out_dir) -> dict[str, Path]:
    """mrmc.json, mrmc.md, mrmc.png and mrmc.svg in ``out_dir`` (and in ``out_dir/with_model/`` for the
    analysis with the model as a reader). Returns {file name relative to out_dir: path}."""
    from .mrmc import write_mrmc_report

    out_dir = Path(out_dir)
    paths = {p.name: p for p in write_mrmc_report({k: v for k, v in study.items() if k != "with_model"},
                                                  out_dir).values()}
    if study.get("with_model"):
        for p in write_mrmc_report(study["with_model"], out_dir / WITH_MODEL_FOLDER).values():
            paths[f"{WITH_MODEL_FOLDER}/{p.name}"] = p
    return paths


def write_reader_study_report(report: dict, study: dict, out_dir) -> dict[str, Path]:
    """A reads table alone: the mrmc.* files, report.json (``reader_study_report``) and report.md."""
    import json

    from ..io import atomic_write_text
    from .markdown import render_reader_markdown

    out_dir = Path(out_dir)
    paths = write_reader_study(study, out_dir)
    paths = {"report.json": out_dir / "report.json", "report.md": out_dir / "report.md", **paths}
    atomic_write_text(paths["report.json"], json.dumps(json_ready(report), indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["report.md"], render_reader_markdown(report, study))
    return paths
