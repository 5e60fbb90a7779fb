"""Figures of a report: ROC with CI band and operating point, score histograms, confusion
matrix, per-fold ROC curves (PNG), and from clinical_plots.py the precision-recall curve, the
decision curve and the smoothed calibration curve (PNG at 300 dpi and SVG).

Figures are built on ``matplotlib.figure.Figure`` (the Agg canvas) rather than pyplot, so that
drawing never touches a global backend or a display, and each is saved atomically.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..io import atomic_save_figure
from . import clinical, clinical_plots, roc
from .table import LevelData

CURVE_COLOR = "#1f4e9a"
CASE_COLOR = "#c0392b"
CONTROL_COLOR = "#2471a3"
DPI = 120


def number(value) -> float:
    """A report value back to a float (the report writes infinities as text and NaN as None)."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        return float(value)
    return float(value)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "score"


def fmt(value, digits: int = 3) -> str:
    value = number(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def fmt_threshold(value) -> str:
    value = number(value)
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:.6g}"


def _new_figure(width: float = 6.0, height: float = 6.0):
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots()


def _roc_axes(ax, title: str) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 − specificity (false-positive rate)")
    ax.set_ylabel("Sensitivity (true-positive rate)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, color="0.9", linewidth=0.8)


def _ci_text(model: dict) -> str:
    ci = model["auc_ci"]
    method = "DeLong" if ci["method"] == "delong" else "bootstrap"
    return f"AUC {fmt(model['auc'])} (95% CI {fmt(ci['lower'])}–{fmt(ci['upper'])}, {method})"


def _level_title(level: dict) -> str:
    if level["unit"] == "image":
        return f"image level, n = {level['n']}"
    return f"per {level['group_column']} ({level['aggregate']} over images), n = {level['n']}"


def plot_roc(path: Path, curve: roc.RocCurve, model: dict, title: str, readers: list[dict], positive: str) -> Path:
    fig, ax = _new_figure()
    band = model["roc_band"]
    grid = np.array(band["specificity"])
    if band.get("no_width"):
        # Every resample gave this same curve: a band of no width would read as certainty.
        ax.plot([], [], linestyle="none", label="pointwise 95% CI band: none (no width: every bootstrap resample gives"
                                                " this curve)")
    else:
        # Straight lines between the band's specificities, which include the curve's own points:
        # the curve, drawn with straight lines between its points, is compared point for point.
        ax.fill_between(1 - grid, band["sensitivity_lower"], band["sensitivity_upper"], step=None, color=CURVE_COLOR,
                        alpha=0.18, linewidth=0,
                        label=f"pointwise 95% CI of sensitivity (stratified bootstrap, {band['n_bootstrap']}"
                              " resamples, as pROC's ci.se)")
    ax.plot(1 - curve.specificity, curve.sensitivity, color=CURVE_COLOR, linewidth=2,
            label=f"{model['score_column']}: {_ci_text(model)}")
    op = model["operating_point"]
    sens, spec = number(op["sensitivity"]["value"]), number(op["specificity"]["value"])
    threshold = model["threshold"]
    ax.plot([1 - spec], [sens], marker="o", markersize=9, color="#e67e22", markeredgecolor="black", linestyle="none",
            label=f"threshold {fmt_threshold(threshold['value'])} ({threshold['rule']}"
                  f"{', exploratory' if threshold.get('exploratory') else ''}): "
                  f"sens {fmt(sens, 2)}, spec {fmt(spec, 2)}")
    for point in readers:
        ax.plot([1 - point["specificity"]], [point["sensitivity"]], marker="^", markersize=8, color="#27ae60",
                markeredgecolor="black", linestyle="none")
        ax.annotate(point["name"], (1 - point["specificity"], point["sensitivity"]), textcoords="offset points",
                    xytext=(6, -10), fontsize=8)
    if readers:
        ax.plot([], [], marker="^", color="#27ae60", markeredgecolor="black", linestyle="none", label="readers")
    _roc_axes(ax, title)
    if model["direction"] == ">":
        ax.text(0.98, 0.02, f"lower score = {positive}", transform=ax.transAxes, ha="right", fontsize=8, color="0.3")
    ax.legend(loc="lower right", fontsize=7.5, framealpha=0.9, bbox_to_anchor=(1.0, 0.06))
    return _save(fig, path)


def plot_roc_overlay(path: Path, curves: dict[str, roc.RocCurve], models: dict, title: str) -> Path:
    fig, ax = _new_figure()
    colors = ["#1f4e9a", "#c0392b", "#27ae60", "#8e44ad", "#e67e22", "#16a085", "#7f8c8d"]
    for i, (name, curve) in enumerate(curves.items()):
        ax.plot(1 - curve.specificity, curve.sensitivity, color=colors[i % len(colors)], linewidth=2,
                label=f"{name}: {_ci_text(models[name])}")
    _roc_axes(ax, title)
    ax.legend(loc="lower right", fontsize=7.5, framealpha=0.9)
    return _save(fig, path)


def _bin_edges(scores: np.ndarray) -> np.ndarray:
    """One bin per value for discrete scores (e.g. a 1-5 grade), else up to 40 equal bins."""
    distinct = np.unique(scores)
    if len(distinct) <= 20:
        if len(distinct) == 1:
            return np.array([distinct[0] - 0.5, distinct[0] + 0.5])
        mids = (distinct[1:] + distinct[:-1]) / 2
        first, last = distinct[0] - (mids[0] - distinct[0]), distinct[-1] + (distinct[-1] - mids[-1])
        return np.concatenate(([first], mids, [last]))
    return np.histogram_bin_edges(scores, bins=int(np.clip(np.sqrt(len(scores)) * 2, 20, 40)))


def plot_histograms(path: Path, labels: np.ndarray, scores: np.ndarray, model: dict, title: str, positive: str,
                    negative: str, unit: str) -> Path:
    fig, ax = _new_figure(7.0, 4.5)
    ax.hist(scores[~labels], bins=_bin_edges(scores), color=CONTROL_COLOR, alpha=0.45, edgecolor=CONTROL_COLOR,
            linewidth=1, label=f"{negative} (n = {int((~labels).sum())})")
    ax.hist(scores[labels], bins=_bin_edges(scores), color=CASE_COLOR, alpha=0.45, edgecolor=CASE_COLOR,
            linewidth=1, label=f"{positive} (n = {int(labels.sum())})")
    threshold = number(model["threshold"]["value"])
    if math.isfinite(threshold):
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1.5,
                   label=f"threshold {fmt_threshold(threshold)} ({model['threshold']['rule']})")
    ax.set_xlabel(f"score ({model['score_column']})")
    ax.set_ylabel(f"number of {unit}s")
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", color="0.9")
    return _save(fig, path)


def _matrix_axes(ax, matrix: np.ndarray, names: list[str], title: str) -> None:
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{matrix[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=11,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=11)


def plot_confusion(path: Path, model: dict, title: str, positive: str, negative: str) -> Path:
    op = model["operating_point"]
    matrix = np.array([[op["tp"], op["fn"]], [op["fp"], op["tn"]]])
    fig, ax = _new_figure(4.8, 4.4)
    _matrix_axes(ax, matrix, [positive, negative], title)
    return _save(fig, path)


def _with_svg(keep, png: Path) -> None:
    """Record a clinical_plots figure: its PNG and the SVG written beside it."""
    keep(png)
    keep(png.with_suffix(".svg"))


def plot_clinical(out_dir: Path, stem: str, labels: np.ndarray, scores: np.ndarray, model: dict, column: str,
                  level_name: str, keep) -> None:
    """pr_<stem>, and for probabilities decision_<stem> and calibration_<stem> (smoothed), each as
    PNG (300 dpi) and SVG. The precision-recall curve is recomputed from the scores (report.json
    keeps only its AUPRC and CI); the decision curve and calibration from report.json."""
    auprc = model["auprc"]
    ranked = scores if model["direction"] == "<" else -scores
    curve = clinical.precision_recall(labels, ranked, n_bootstrap=0)
    curve["ci"] = {"lower": auprc["lower"], "upper": auprc["upper"], "n_bootstrap": auprc["n_bootstrap"]}
    _with_svg(keep, clinical_plots.plot_pr(out_dir / f"pr_{stem}.png", {column: curve},
                                           f"Precision–recall — {column}, {level_name} level"))
    if model.get("clinical_skipped"):
        return
    table = clinical.decision_curve(labels, scores)
    _with_svg(keep, clinical_plots.plot_decision_curve(out_dir / f"decision_{stem}.png", {column: table},
                                                       f"Decision curve — {column}, {level_name} level"))
    _with_svg(keep, clinical_plots.plot_calibration_smooth(out_dir / f"calibration_{stem}.png",
                                                           model["calibration_fit"],
                                                           f"Calibration — {column}, {level_name} level"))


def plot_fold_rocs(path: Path, fold_curves: dict[str, roc.RocCurve], pooled: roc.RocCurve, model: dict,
                   title: str) -> Path:
    fig, ax = _new_figure()
    folds = model["folds"]
    aucs = {f["fold"]: f.get("auc") for f in folds["per_fold"]}
    for name, curve in fold_curves.items():
        ax.plot(1 - curve.specificity, curve.sensitivity, linewidth=1.2, alpha=0.8,
                label=f"fold {name}: AUC {fmt(aucs.get(name))}")
    ax.plot(1 - pooled.specificity, pooled.sensitivity, color="black", linewidth=2.4,
            label=f"pooled out-of-fold: AUC {fmt(model['auc'])}")
    mean, sd = folds["mean"]["auc"], folds["sd"]["auc"]
    _roc_axes(ax, f"{title}\nper-fold AUC {fmt(mean)} ± {fmt(sd)} (mean ± SD), direction '{model['direction']}' in"
                  " every fold")
    ax.legend(loc="lower right", fontsize=7.5, framealpha=0.9)
    return _save(fig, path)


def plot_multiclass_roc(path: Path, level: dict, data: LevelData, mapping: dict, title: str) -> Path:
    fig, ax = _new_figure()
    for cls, column in mapping.items():
        record = level["classes"][cls]
        if record["auc"] is None:
            continue
        curve = roc.roc_curve(data.labels == cls, data.scores[column].to_numpy(), record["direction"])
        ci = record["auc_ci"]
        ax.plot(1 - curve.specificity, curve.sensitivity, linewidth=2,
                label=f"{cls} vs rest: AUC {fmt(record['auc'])} ({fmt(ci['lower'])}–{fmt(ci['upper'])})")
    _roc_axes(ax, f"{title}\nmacro-average AUC {fmt(level['macro_auc'])}")
    ax.legend(loc="lower right", fontsize=7.5, framealpha=0.9)
    return _save(fig, path)


def plot_multiclass_confusion(path: Path, level: dict, title: str) -> Path:
    confusion = level["argmax"]["confusion"]
    names = confusion["classes"]
    fig, ax = _new_figure(1.2 * len(names) + 2.5, 1.1 * len(names) + 2.2)
    _matrix_axes(ax, np.array(confusion["matrix"]), names, title)
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    atomic_save_figure(fig, path, dpi=DPI)
    return path


def draw_all(report: dict, levels: dict[str, LevelData], out_dir: Path, roc_only: bool = False) -> dict[str, Path]:
    """Every figure of the report, or with ``roc_only`` the ROC figures only (roc_*.png and
    folds_roc_*.png: no score histograms, confusion matrices, precision-recall, decision or
    calibration curves); returns {file name: path} (the SVG twins of the clinical figures too)."""
    settings = report["settings"]
    paths: dict[str, Path] = {}

    def keep(path: Path) -> None:
        paths[path.name] = path

    for level_name, level in report["levels"].items():
        data = levels[level_name]
        base = _level_title(level)
        if report["task"] == "multiclass":
            keep(plot_multiclass_roc(out_dir / f"roc_{level_name}.png", level, data, settings["class_columns"],
                                     f"One-vs-rest ROC — {base}"))
            if not roc_only:
                keep(plot_multiclass_confusion(out_dir / f"confusion_{level_name}.png", level,
                                               f"Argmax confusion — {level_name} level"))
            continue
        positive, negative = settings["positive"], settings["negative"]
        curves = {}
        for column, model in level["models"].items():
            present = ~np.isnan(data.scores[column].to_numpy())
            y, s = data.labels[present], data.scores[column].to_numpy()[present]
            curve = roc.roc_curve(y, s, model["direction"])
            curves[column] = curve
            stem = f"{level_name}_{safe_name(column)}"
            readers = [r for r in report.get("readers", []) if r.get("level", level_name) == level_name]
            keep(plot_roc(out_dir / f"roc_{stem}.png", curve, model,
                          f"ROC — {column}, {base}\n({model['n_cases']} {positive} / {model['n_controls']} {negative})",
                          readers, positive))
            if not roc_only:
                keep(plot_histograms(out_dir / f"scores_{stem}.png", y, s, model,
                                     f"Scores by class — {column}, {level_name} level", positive, negative, level_name))
                thr = model["threshold"]
                keep(plot_confusion(out_dir / f"confusion_{stem}.png", model,
                                    f"{column}, {level_name} level\nthreshold {fmt_threshold(thr['value'])} ({thr['rule']})",
                                    positive, negative))
                if "auprc" in model:  # reports written before the clinical statistics have none
                    plot_clinical(out_dir, stem, y, s, model, column, level_name, keep)
            if "folds" in model:
                folds = data.folds[present]
                fold_curves = {}
                for fold in [f["fold"] for f in model["folds"]["per_fold"] if f.get("auc") is not None]:
                    inside = folds == fold
                    # the model's one direction in every fold, as the fold table's AUCs
                    fold_curves[fold] = roc.roc_curve(y[inside], s[inside], model["direction"])
                keep(plot_fold_rocs(out_dir / f"folds_roc_{stem}.png", fold_curves, curve, model,
                                    f"Cross-validation — {column}, {level_name} level"))
        if len(curves) > 1:
            keep(plot_roc_overlay(out_dir / f"roc_{level_name}_all.png", curves, level["models"],
                                  f"ROC — all models, {base}"))
    return paths
