"""Journal-ready figures of the clinical statistics (clinical.py): precision-recall curves,
decision curves and the smoothed calibration curve.

Each figure is written twice, atomically: a PNG at 300 dpi at ``path`` and an SVG beside it
(``path.with_suffix(".svg")``, text kept as editable text). The figures are drawn at their
printed size (5.5 x 4.6 in, about one and a half journal columns) with legends of at least 8 pt,
and every series differs by line style as well as by colour, from the Okabe-Ito palette (safe for
colour-blind readers, and legible in greyscale). Like plots.py, they use
``matplotlib.figure.Figure`` (the Agg canvas), never pyplot's global state.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


DPI = 300  # as plots.save_figure writes every figure
WIDTH, HEIGHT = 5.5, 4.6
LEGEND_PT = 8.5
LABEL_PT = 10
TITLE_PT = 10.5

# Okabe & Ito (2008), "Color Universal Design"
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
SERIES_COLORS = [OKABE_ITO[name] for name in ("blue", "vermillion", "green", "purple", "orange", "sky_blue")]
SERIES_STYLES = ["-", (0, (6, 2, 1, 2)), (0, (1, 1.5)), (0, (8, 2)), (0, (3, 1, 1, 1, 1, 1)), (0, (4, 1))]
GRID = "0.9"


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}".replace("-", "\u2212")


def _ci(lower, upper, digits: int = 3) -> str:
    """'a–b', or 'a to b' when a limit is negative (an en dash next to a minus sign misreads)."""
    negative = any(v is not None and float(v) < 0 for v in (lower, upper))
    return f"{_fmt(lower, digits)}{' to ' if negative else '–'}{_fmt(upper, digits)}"


def _new_figure(width: float = WIDTH, height: float = HEIGHT, **subplots):
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(**subplots)


def _style(ax, title: str | None, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel, fontsize=LABEL_PT)
    ax.set_ylabel(ylabel, fontsize=LABEL_PT)
    ax.tick_params(labelsize=LEGEND_PT)
    if title:
        ax.set_title(title, fontsize=TITLE_PT)
    ax.grid(True, color=GRID, linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _save(fig: Figure, path) -> Path:
    from .plots import save_figure  # the one saver: PNG at 300 dpi and an SVG beside it

    return save_figure(fig, path)


def _level_pct(level) -> str:
    return f"{float(level) * 100:g}%"


def plot_pr(path, curves: dict, title: str) -> Path:
    """Precision-recall curves (steps, as scikit-learn draws them), one per ``curves`` entry
    ({name: clinical.precision_recall(...) result}); the legend gives each AP with its bootstrap
    CI; the prevalence baseline (the precision of a random ranking) is dashed."""
    if not curves:
        raise ValueError("plot_pr needs at least one curve")
    fig, ax = _new_figure()
    prevalences = []
    for i, (name, result) in enumerate(curves.items()):
        color, style = SERIES_COLORS[i % len(SERIES_COLORS)], SERIES_STYLES[i % len(SERIES_STYLES)]
        curve = result["curve"]
        ci = result.get("ci")
        ci_text = (f" ({_level_pct(result.get('level', 0.95))} CI {_ci(ci['lower'], ci['upper'])})"
                   if ci else "")
        ax.plot(curve["recall"], curve["precision"], drawstyle="steps-post", color=color, linestyle=style,
                linewidth=1.8, label=f"{name}: AP {_fmt(result['average_precision'])}{ci_text}")
        prevalences.append((name, float(result["prevalence"]), color))
    distinct = {round(p, 12) for _, p, _ in prevalences}
    if len(distinct) == 1:
        prevalence = prevalences[0][1]
        ax.axhline(prevalence, color="0.35", linestyle="--", linewidth=1.2,
                   label=f"prevalence baseline (no skill): {_fmt(prevalence)}")
    else:
        for name, prevalence, color in prevalences:
            ax.axhline(prevalence, color=color, linestyle="--", linewidth=1.0, alpha=0.9,
                       label=f"{name} baseline (prevalence {_fmt(prevalence)})")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.02)
    _style(ax, title, "Recall (sensitivity)", "Precision (positive predictive value)")
    bootstrap = next((r["ci"] for r in curves.values() if r.get("ci")), None)
    ax.legend(loc="lower left", fontsize=LEGEND_PT, framealpha=0.92, alignment="left",
              title=(f"AP = average precision; CI: stratified percentile bootstrap, "
                     f"{bootstrap['n_bootstrap']} resamples" if bootstrap else None),
              title_fontsize=LEGEND_PT)
    return _save(fig, path)


def plot_decision_curve(path, table, title: str) -> Path:
    """Net benefit against threshold probability (clinical.decision_curve): the model (or several:
    pass {name: table}), treat-all and treat-none, each with its own line style. The y axis runs
    from a little below zero to a little above the largest net benefit, so the steep fall of
    treat-all at high thresholds does not squash the curves that matter."""
    tables = table if isinstance(table, dict) else {"model": table}
    if not tables or not all(isinstance(t, pd.DataFrame) for t in tables.values()):
        raise ValueError("plot_decision_curve needs a decision_curve DataFrame or a dict of them")
    first = next(iter(tables.values()))
    fig, ax = _new_figure()
    x = first["threshold"].to_numpy()
    prevalence = first.attrs.get("prevalence")
    label_all = "treat all" + (f" (prevalence {_fmt(prevalence)})" if prevalence is not None else "")
    ax.plot(x, first["treat_all"], color=OKABE_ITO["vermillion"], linestyle=(0, (6, 2)), linewidth=1.5,
            label=label_all)
    ax.plot(x, first["treat_none"], color=OKABE_ITO["black"], linestyle=(0, (1, 1.5)), linewidth=1.5,
            label="treat none")
    model_styles = ["-", (0, (6, 2, 1, 2)), (0, (8, 2)), (0, (3, 1, 1, 1, 1, 1))]
    model_colors = [OKABE_ITO[c] for c in ("blue", "green", "purple", "orange")]
    highest = max(float(np.nanmax(first["treat_all"])), 0.0)
    for i, (name, t) in enumerate(tables.items()):
        ax.plot(t["threshold"], t["net_benefit"], color=model_colors[i % 4], linestyle=model_styles[i % 4],
                linewidth=2.0, label=name)
        highest = max(highest, float(np.nanmax(t["net_benefit"])))
    top = highest * 1.1 if highest > 0 else 0.05
    ax.set_ylim(-0.15 * top if top > 0 else -0.05, top)
    ax.set_xlim(float(x.min()) - 0.01, float(x.max()) + 0.01)
    ax.axhline(0, color="0.6", linewidth=0.6)
    _style(ax, title, "Threshold probability", "Net benefit")
    ax.text(0.99, 0.98, "net benefit = TP/n − FP/n × pt/(1 − pt)", transform=ax.transAxes, ha="right", va="top",
            fontsize=LEGEND_PT - 0.5, color="0.35")
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.93), fontsize=LEGEND_PT, framealpha=0.92)
    return _save(fig, path)


def plot_calibration_smooth(path, fit: dict, title: str) -> Path:
    """Smoothed (LOWESS) calibration curve from clinical.calibration_fit, the ideal diagonal,
    calibration slope and intercept (with CIs) in the legend, and below it the distribution of the
    predictions (positives drawn upwards, negatives downwards)."""
    fig, (ax, hist) = _new_figure(WIDTH, HEIGHT + 1.0, nrows=2, sharex=True,
                                  gridspec_kw={"height_ratios": [4.2, 1.0]})
    ax.plot([0, 1], [0, 1], color="0.45", linestyle="--", linewidth=1.2, label="ideal calibration")
    smooth = fit["smooth"]
    level = _level_pct(fit.get("level", 0.95))
    slope, intercept = fit["slope"], fit["intercept"]
    ax.plot(smooth["predicted"], smooth["observed"], color=OKABE_ITO["blue"], linestyle="-", linewidth=2.0,
            label=f"LOWESS (span {smooth['span']:.2g}), n = {fit['n']}")
    ax.plot([], [], linestyle="none",
            label=f"calibration slope {_fmt(slope['value'], 2)} ({level} CI {_ci(slope['lower'], slope['upper'], 2)})")
    ax.plot([], [], linestyle="none",
            label=f"calibration-in-the-large {_fmt(intercept['value'], 2)} "
                  f"({level} CI {_ci(intercept['lower'], intercept['upper'], 2)})")
    ax.plot([], [], linestyle="none",
            label=f"mean predicted {_fmt(fit['mean_predicted'])}, observed {_fmt(fit['observed_rate'])}")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("auto")
    _style(ax, title, "", "Observed proportion with fracture")
    ax.legend(loc="upper left", fontsize=LEGEND_PT, framealpha=0.92, handlelength=2.2)

    histogram = fit["histogram"]
    edges = np.asarray(histogram["edges"])
    positives, negatives = np.asarray(histogram["positives"]), np.asarray(histogram["negatives"])
    widths = np.diff(edges)
    scale = max(int(positives.max(initial=0)), int(negatives.max(initial=0)), 1)
    hist.bar(edges[:-1], positives / scale, width=widths, align="edge", color=OKABE_ITO["vermillion"],
             edgecolor="white", linewidth=0.3, label="positive")
    hist.bar(edges[:-1], -negatives / scale, width=widths, align="edge", color=OKABE_ITO["sky_blue"],
             edgecolor="white", linewidth=0.3, hatch="///", label="negative")
    hist.axhline(0, color="0.3", linewidth=0.6)
    hist.set_ylim(-1.05, 1.05)
    hist.set_yticks([])
    _style(hist, None, "Predicted probability", "")
    hist.set_ylabel("count", fontsize=LEGEND_PT)
    hist.legend(loc="upper right", fontsize=LEGEND_PT, ncols=2, framealpha=0.92, handlelength=1.4)
    hist.text(0.01, 0.95, f"tallest bar = {scale}", transform=hist.transAxes, fontsize=LEGEND_PT - 0.5,
              color="0.35", va="top")
    return _save(fig, path)
