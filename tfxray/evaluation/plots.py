"""Figures of a report, drawn for a journal: ROC with its pointwise CI band, the operating point and
reader points with CI whiskers, several models' curves with the difference in AUC and its p-value
in the legend, score densities by class (step outlines), confusion matrix, per-fold ROC curves,
the subgroup forest plots and the flow of cases (flow.py); and from clinical_plots.py the
precision-recall curve, the decision curve and the smoothed calibration curve.

Every figure is written twice, atomically (``save_figure``): a PNG at 300 dpi and an SVG beside it (text
kept as text). Legends are at least 8 pt; series differ by line style (or marker) as well as by
colour, from the Okabe-Ito palette (clinical_plots.OKABE_ITO: safe for colour-blind readers and
legible in greyscale). Figures are built on ``matplotlib.figure.Figure`` (the Agg canvas) rather
than pyplot, so that drawing never touches a global backend or a display.
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..io import atomic_save_figure
from . import binomial, clinical, clinical_plots, roc
from .clinical_plots import LABEL_PT, LEGEND_PT, OKABE_ITO, SERIES_COLORS, SERIES_STYLES, TITLE_PT
from .table import LevelData

CURVE_COLOR = OKABE_ITO["blue"]
CASE_COLOR = OKABE_ITO["vermillion"]
CONTROL_COLOR = OKABE_ITO["blue"]
POINT_COLOR = OKABE_ITO["orange"]
READER_COLOR = OKABE_ITO["green"]
CHANCE_COLOR = "0.55"
DPI = 300
MARKERS = ["o", "s", "D", "^", "v", "P"]


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
    ax.plot([0, 1], [0, 1], linestyle=(0, (4, 3)), color=CHANCE_COLOR, linewidth=1, label="chance (AUC 0.5)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 − specificity (false-positive rate)", fontsize=LABEL_PT)
    ax.set_ylabel("Sensitivity (true-positive rate)", fontsize=LABEL_PT)
    ax.tick_params(labelsize=LEGEND_PT)
    ax.set_title(title, fontsize=TITLE_PT)
    ax.grid(True, color="0.9", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


LEGEND_CHARS = 78  # a legend line's length at LEGEND_PT across a figure about 6 in wide


LEGEND_LINE_IN = 0.2  # height of one legend line at LEGEND_PT, inches


def _legend_below(fig, ax, width: int = LEGEND_CHARS, plot_height: float | None = 6.2, **options):
    """The figure's legend under the axes (long CI labels never hide the curves), at least 8 pt,
    each label wrapped to ``width`` characters; the chance line last. ``plot_height``: the inches
    the axes, their labels and the title take; the figure is made that tall plus the legend."""
    handles, labels = options.pop("entries", None) or ax.get_legend_handles_labels()
    ncols = options.pop("ncols", 1)
    width = width // ncols
    order = sorted(range(len(labels)), key=lambda i: labels[i].startswith("chance"))
    wrapped = [textwrap.fill(labels[i], width, break_on_hyphens=False, subsequent_indent="  ") for i in order]
    if plot_height is not None:
        lines = sum(label.count("\n") + 1 for label in wrapped)
        fig.set_figheight(plot_height + LEGEND_LINE_IN * math.ceil(lines / ncols) + 0.35)
    return fig.legend([handles[i] for i in order], wrapped, loc="outside lower center", fontsize=LEGEND_PT,
                      framealpha=0.95, handlelength=2.6, ncols=ncols, **options)


def ci_label(ci: dict) -> str:
    """The method of an AUC CI in a few words, for legends."""
    method = ci["method"]
    if method == "delong":
        return "DeLong"
    if method.startswith("Obuchowski"):
        return f"Obuchowski, clustered by {ci.get('unit')}"
    if method.startswith("cluster bootstrap"):
        return f"cluster bootstrap by {ci.get('unit')}"
    return "bootstrap"


def _ci_text(model: dict) -> str:
    ci = model["auc_ci"]
    return f"AUC {fmt(model['auc'])} (95% CI {fmt(ci['lower'])}–{fmt(ci['upper'])}, {ci_label(ci)})"


def _level_title(level: dict) -> str:
    if level["unit"] == "image":
        return f"image level, n = {level['n']}"
    return f"per {level['group_column']} ({level['aggregate']} over images), n = {level['n']}"


def _whiskers(value: float, lower, upper) -> list[float]:
    """[below, above] for an error bar, 0 where a limit is unknown."""
    lower, upper = number(lower), number(upper)
    return [value - lower if math.isfinite(lower) else 0.0, upper - value if math.isfinite(upper) else 0.0]


def _operating_cis(model: dict) -> tuple[dict, dict, str]:
    """(sensitivity, specificity) entries with CIs at the operating point, and what the CIs are."""
    op = model["operating_point"]
    chosen = op.get("with_threshold_choice")
    if chosen:
        return chosen["sensitivity"], chosen["specificity"], "95% CIs bootstrap the threshold choice"
    return op["sensitivity"], op["specificity"], "exact 95% CIs"


def reader_limits(point: dict, n_cases: int, n_controls: int, level: float = 0.95) -> tuple[list, list, bool]:
    """A reader point's (sensitivity [lower, upper], specificity [lower, upper], given): the limits
    given in the readers table, else Clopper-Pearson limits with the reader's proportions read as
    round(p x n) of this level's cases and controls (``given`` False)."""
    keys = ("sensitivity_lower", "sensitivity_upper", "specificity_lower", "specificity_upper")
    if any(k in point for k in keys):
        return ([point.get("sensitivity_lower"), point.get("sensitivity_upper")],
                [point.get("specificity_lower"), point.get("specificity_upper")], True)
    sens = list(binomial.clopper_pearson(round(point["sensitivity"] * n_cases), n_cases, level))
    spec = list(binomial.clopper_pearson(round(point["specificity"] * n_controls), n_controls, level))
    return sens, spec, False


def plot_roc(path: Path, curve: roc.RocCurve, model: dict, title: str, readers: list[dict], positive: str) -> Path:
    fig, ax = _new_figure(6.0, 7.6)
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
    ax.plot(1 - curve.specificity, curve.sensitivity, color=CURVE_COLOR, linewidth=2, linestyle="-",
            label=f"{model['score_column']}: {_ci_text(model)}")
    sens_ci, spec_ci, what = _operating_cis(model)
    sens, spec = number(sens_ci["value"]), number(spec_ci["value"])
    threshold = model["threshold"]
    ax.errorbar([1 - spec], [sens], xerr=np.array([_whiskers(spec, spec_ci["lower"], spec_ci["upper"])[::-1]]).T,
                yerr=np.array([_whiskers(sens, sens_ci["lower"], sens_ci["upper"])]).T, marker="o", markersize=8,
                color=POINT_COLOR, markeredgecolor="black", ecolor="black", elinewidth=1.1, capsize=3,
                linestyle="none", zorder=5,
                label=f"threshold {fmt_threshold(threshold['value'])} ({threshold['rule']}"
                      f"{', exploratory' if threshold.get('exploratory') else ''}): "
                      f"sens {fmt(sens, 2)}, spec {fmt(spec, 2)} ({what})")
    given_any = False
    for point in readers:
        sens_lim, spec_lim, given = reader_limits(point, model["n_cases"], model["n_controls"])
        given_any = given_any or given
        rs, rp = point["sensitivity"], point["specificity"]
        ax.errorbar([1 - rp], [rs], xerr=np.array([_whiskers(rp, *spec_lim)[::-1]]).T,
                    yerr=np.array([_whiskers(rs, *sens_lim)]).T, marker="^", markersize=8, color=READER_COLOR,
                    markeredgecolor="black", ecolor=READER_COLOR, elinewidth=1.1, capsize=3, linestyle="none",
                    zorder=4)
        ax.annotate(point["name"], (1 - rp, rs), textcoords="offset points", xytext=(6, -11), fontsize=LEGEND_PT)
    if readers:
        source = ("95% CIs as given" if given_any else
                  f"exact 95% CIs as if each read these {model['n_cases']} cases and {model['n_controls']} controls")
        ax.plot([], [], marker="^", markersize=8, color=READER_COLOR, markeredgecolor="black", linestyle="none",
                label=f"readers ({source})")
    _roc_axes(ax, title)
    if model["direction"] == ">":
        ax.text(0.98, 0.02, f"lower score = {positive}", transform=ax.transAxes, ha="right", fontsize=LEGEND_PT,
                color="0.3")
    _legend_below(fig, ax)
    return save_figure(fig, path)


def _comparison_label(c: dict) -> str:
    """ΔAUC (a − b) with its CI and p (Holm-adjusted when several tests), for a legend."""
    kind = ("Obuchowski clustered paired" if c.get("delong_independent") else
            "DeLong paired" if c.get("cases") != "different" else "DeLong unpaired")
    adjustment = c.get("adjustment") or {}
    p = f"p = {_p_text(c['p'])}"
    if adjustment.get("method") == "holm" and adjustment.get("family_size", 0) > 1:
        p += f", Holm-adjusted p = {_p_text(c.get('p_adjusted'))}"
    a, b = c["models"]
    return (f"ΔAUC {a} − {b} = {fmt(c['difference'])} (95% CI {fmt(c['ci_lower'])} to {fmt(c['ci_upper'])}),"
            f" {p} ({kind})")


def _p_text(value) -> str:
    value = number(value)
    if math.isnan(value):
        return "n/a"
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}" if value < 0.001 else f"{value:.3f}"


def plot_roc_overlay(path: Path, curves: dict[str, roc.RocCurve], models: dict, title: str,
                     comparisons: list[dict] | None = None) -> Path:
    """Several models' ROC curves (distinct colour and line style each); the legend gives each AUC
    and, for every pair compared, the difference in AUC with its CI and p-value."""
    pairs = [c for c in comparisons or [] if set(c["models"]) <= set(curves)]
    fig, ax = _new_figure(6.0, 7.0 + 0.35 * (len(pairs) + len(curves)))
    for i, (name, curve) in enumerate(curves.items()):
        ax.plot(1 - curve.specificity, curve.sensitivity, color=SERIES_COLORS[i % len(SERIES_COLORS)],
                linestyle=SERIES_STYLES[i % len(SERIES_STYLES)], linewidth=2, label=f"{name}: {_ci_text(models[name])}")
    for c in pairs:
        ax.plot([], [], linestyle="none", label=_comparison_label(c))
    _roc_axes(ax, title)
    _legend_below(fig, ax)
    return save_figure(fig, path)


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
    """The score distribution of each class as a density (area 1 each, so classes of different sizes
    compare), drawn as step outlines that never hide each other, with the operating threshold."""
    fig, ax = _new_figure(6.0, 4.2)
    edges = _bin_edges(scores)
    ax.hist(scores[~labels], bins=edges, density=True, histtype="step", color=CONTROL_COLOR, linewidth=1.8,
            linestyle="-", label=f"{negative} (n = {int((~labels).sum())})")
    ax.hist(scores[labels], bins=edges, density=True, histtype="step", color=CASE_COLOR, linewidth=1.8,
            linestyle=(0, (5, 2)), label=f"{positive} (n = {int(labels.sum())})")
    threshold = number(model["threshold"]["value"])
    if math.isfinite(threshold):
        ax.axvline(threshold, color="black", linestyle=(0, (1, 1.5)), linewidth=1.5,
                   label=f"threshold {fmt_threshold(threshold)} ({model['threshold']['rule']})")
    ax.set_xlabel(f"Score ({model['score_column']})", fontsize=LABEL_PT)
    ax.set_ylabel(f"Density ({unit}s; area 1 per class)", fontsize=LABEL_PT)
    ax.tick_params(labelsize=LEGEND_PT)
    ax.set_title(title, fontsize=TITLE_PT)
    ax.legend(fontsize=LEGEND_PT, framealpha=0.95)
    ax.grid(True, axis="y", color="0.9", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return save_figure(fig, path)


def _matrix_axes(ax, matrix: np.ndarray, names: list[str], title: str) -> None:
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{matrix[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=11,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(names)), names, fontsize=LABEL_PT)
    ax.set_yticks(range(len(names)), names, fontsize=LABEL_PT)
    ax.set_xlabel("Predicted", fontsize=LABEL_PT)
    ax.set_ylabel("True", fontsize=LABEL_PT)
    ax.set_title(title, fontsize=TITLE_PT)


def plot_confusion(path: Path, model: dict, title: str, positive: str, negative: str) -> Path:
    op = model["operating_point"]
    matrix = np.array([[op["tp"], op["fn"]], [op["fp"], op["tn"]]])
    fig, ax = _new_figure(4.8, 4.4)
    _matrix_axes(ax, matrix, [positive, negative], title)
    return save_figure(fig, path)


def _with_svg(keep, png: Path) -> None:
    """Record a clinical_plots figure: its PNG and the SVG written beside it (``keep`` records both)."""
    keep(png)


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
    fig, ax = _new_figure(6.0, 6.8 + 0.12 * len(fold_curves))
    folds = model["folds"]
    aucs = {f["fold"]: f.get("auc") for f in folds["per_fold"]}
    palette = [c for c in SERIES_COLORS if c != OKABE_ITO["black"]]
    for i, (name, curve) in enumerate(fold_curves.items()):
        ax.plot(1 - curve.specificity, curve.sensitivity, linewidth=1.2, color=palette[i % len(palette)],
                linestyle=SERIES_STYLES[i % len(SERIES_STYLES)], label=f"fold {name}: AUC {fmt(aucs.get(name))}")
    ax.plot(1 - pooled.specificity, pooled.sensitivity, color="black", linewidth=2.4,
            label=f"pooled out-of-fold: AUC {fmt(model['auc'])}")
    mean, sd = folds["mean"]["auc"], folds["sd"]["auc"]
    _roc_axes(ax, f"{title}\nper-fold AUC {fmt(mean)} ± {fmt(sd)} (mean ± SD), direction '{model['direction']}' in"
                  " every fold")
    _legend_below(fig, ax, ncols=2 if len(fold_curves) > 5 else 1)
    return save_figure(fig, path)


def plot_multiclass_roc(path: Path, level: dict, data: LevelData, mapping: dict, title: str) -> Path:
    fig, ax = _new_figure(6.0, 6.8 + 0.3 * len(mapping))
    for i, (cls, column) in enumerate(mapping.items()):
        record = level["classes"][cls]
        if record["auc"] is None:
            continue
        curve = roc.roc_curve(data.labels == cls, data.scores[column].to_numpy(), record["direction"])
        ci = record["auc_ci"]
        ax.plot(1 - curve.specificity, curve.sensitivity, linewidth=2, color=SERIES_COLORS[i % len(SERIES_COLORS)],
                linestyle=SERIES_STYLES[i % len(SERIES_STYLES)],
                label=f"{cls} vs rest: AUC {fmt(record['auc'])} ({fmt(ci['lower'])}–{fmt(ci['upper'])}, {ci_label(ci)})")
    _roc_axes(ax, f"{title}\nmacro-average AUC {fmt(level['macro_auc'])}")
    _legend_below(fig, ax)
    return save_figure(fig, path)


def plot_multiclass_confusion(path: Path, level: dict, title: str) -> Path:
    confusion = level["argmax"]["confusion"]
    names = confusion["classes"]
    fig, ax = _new_figure(1.2 * len(names) + 2.5, 1.1 * len(names) + 2.2)
    _matrix_axes(ax, np.array(confusion["matrix"]), names, title)
    return save_figure(fig, path)


def plot_subgroups(path: Path, entry: dict, report: dict) -> Path:
    """Forest plot of one subgroup column at its headline level: each group's AUC with its 95% CI
    (DeLong) per model (distinct colour and marker), each model's AUC on all cases as a vertical
    line (distinct line style), chance at 0.5; the legend gives the test of equal AUCs across the
    groups and the number of Holm-adjusted pairwise tests."""
    name = entry["headline_level"]
    models = entry["levels"][name]["models"]
    groups = list(dict.fromkeys(g["group"] for t in models.values() for g in t["groups"]))
    k = len(models)
    plot_height = 1.5 + 0.45 * len(groups) * max(1, k) ** 0.5
    fig, ax = _new_figure(6.4, plot_height)
    step = 0.6 / max(k, 1)
    lows = [0.5]
    handles, labels, missing = [], [], []
    for i, (model, t) in enumerate(models.items()):
        color, marker = SERIES_COLORS[i % len(SERIES_COLORS)], MARKERS[i % len(MARKERS)]
        offset = ((k - 1) / 2 - i) * step  # the first model on top within each group
        by = {g["group"]: g for g in t["groups"]}
        xs, ys, errs = [], [], []
        for j, group in enumerate(groups):
            g = by.get(group)
            y = len(groups) - 1 - j + offset
            if g is None or not g["auc"]:
                missing.append((y, "no AUC" + (f": {g['note'].split(':')[0]}" if g and g.get("note") else "")))
                continue
            auc = g["auc"]
            xs.append(auc["value"])
            ys.append(y)
            errs.append(_whiskers(auc["value"], auc["lower"], auc["upper"]))
            lows.append(number(auc["lower"]))
        handles.append(ax.errorbar(xs, ys, xerr=np.array(errs).T if errs else None, marker=marker, markersize=7,
                                   color=color, markeredgecolor="black", ecolor=color, elinewidth=1.6, capsize=3,
                                   linestyle="none"))
        labels.append(f"{model}: AUC per group (95% CI, DeLong)")
        # dashed (never solid like the whiskers), a different dash for each model
        handles.append(ax.axvline(number(t["pooled_auc"]), color=color, linewidth=1.3, zorder=1,
                                  linestyle=SERIES_STYLES[(i + 1) % len(SERIES_STYLES)]))
        labels.append(f"{model}: all {name}s, AUC {fmt(t['pooled_auc'])}")
        h = t["homogeneity"]
        test = (f"equal AUCs across groups: Q = {fmt(h['q'], 2)}, df = {h['df']}, p = {_p_text(h['p'])}"
                if h else f"no test of equal AUCs ({t.get('homogeneity_note')})")
        if len(t["pairwise"]) > 1:
            test += f"; {len(t['pairwise'])} pairwise tests, Holm-adjusted (report.md)"
        handles.append(ax.plot([], [], linestyle="none")[0])
        labels.append(f"{model}: {test}")
    ax.axvline(0.5, color=CHANCE_COLOR, linestyle=(0, (1, 2)), linewidth=1)
    counts = {}
    for t in models.values():
        for g in t["groups"]:
            counts.setdefault(g["group"], f"{g['n_cases']}/{g['n_controls']}")
    ax.set_yticks([len(groups) - 1 - j for j in range(len(groups))],
                  [f"{g}\n(n {counts.get(g, '')})" for g in groups], fontsize=LEGEND_PT)
    finite = [v for v in lows if math.isfinite(v)]
    left = max(0.0, min(finite) - 0.05)
    ax.set_xlim(left, 1.01)
    for y, text in missing:  # a group without an AUC says so where its interval would be
        ax.text(left + 0.01, y, text, fontsize=LEGEND_PT, color="0.35", va="center", ha="left")
    ax.set_ylim(-0.7, len(groups) - 0.3)
    settings = report["settings"]
    ax.set_xlabel(f"AUC ({settings['positive']} vs {settings['negative']})", fontsize=LABEL_PT)
    ax.tick_params(axis="x", labelsize=LEGEND_PT)
    ax.set_title(f"Subgroups by {entry['column']} — {name} level\n(each group's n: {settings['positive']} /"
                 f" {settings['negative']})", fontsize=TITLE_PT)
    ax.grid(True, axis="x", color="0.9", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    _legend_below(fig, ax, plot_height=plot_height, entries=(handles, labels))
    return save_figure(fig, path)


def save_figure(fig: Figure, path) -> Path:
    """PNG at 300 dpi at ``path``, SVG (text kept as text) beside it; both atomic. Returns the PNG path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    atomic_save_figure(fig, path, dpi=DPI)
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        atomic_save_figure(fig, path.with_suffix(".svg"), dpi=DPI)
    return path


def draw_all(report: dict, levels: dict[str, LevelData], out_dir: Path, roc_only: bool = False) -> dict[str, Path]:
    """Every figure of the report, or with ``roc_only`` the ROC figures only (roc_*.png and
    folds_roc_*.png: no score densities, confusion matrices, precision-recall, decision or
    calibration curves, subgroup forest plots or flow diagram); returns {file name: path}, the SVG
    beside each PNG included."""
    settings = report["settings"]
    paths: dict[str, Path] = {}

    def keep(png: Path) -> None:
        paths[png.name] = png
        svg = png.with_suffix(".svg")
        if svg.is_file():
            paths[svg.name] = svg

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
                                  f"ROC — all models, {base}", level.get("comparisons")))
    if not roc_only:
        for column, entry in (report.get("subgroups") or {}).items():
            keep(plot_subgroups(out_dir / f"subgroups_{safe_name(column)}.png", entry, report))
        if report.get("flow"):
            from .flow import plot_flow

            keep(plot_flow(out_dir / "flow.png", report["flow"]))
    return paths
