"""PNG figures of a detector's report: the FROC curve and the boxes' precision-recall curve.

Drawn from the report's sections (``evaluate_detections``'s ``detection`` dict), one curve per
detector given, so the same functions draw one detector or a comparison. Built on
``matplotlib.figure.Figure`` (the Agg canvas) as plots.py, each saved atomically.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .plots import fmt, number, save_figure

COLORS = ["#1f4e9a", "#c0392b", "#27ae60", "#8e44ad", "#e67e22", "#16a085", "#7f8c8d"]
FROC_LIMITS = (1 / 8, 8)


def _figure(width: float = 6.4, height: float = 5.2):
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots()


def _rate_text(rate: float) -> str:
    fraction = Fraction(rate).limit_denominator(64)
    return str(fraction.numerator) if fraction.denominator == 1 else f"{fraction.numerator}/{fraction.denominator}"


def plot_froc(path: Path, sections: dict[str, dict], title: str) -> Path:
    """FROC: lesion sensitivity against mean false positives per image, x on a log2 axis from 1/8
    to 8, the sensitivities at the FROC rates marked, the cut-off's operating point a diamond.

    ``sections``: {detector name: the report's ``detection["froc"]``}. The curve is a step that
    holds each operating point's sensitivity until the next (the FROC score's reading); points
    with no false positive sit at the left edge.
    """
    fig, ax = _figure()
    low, high = FROC_LIMITS[0] / 1.25, FROC_LIMITS[1] * 1.25
    for i, (name, froc) in enumerate(sections.items()):
        color = COLORS[i % len(COLORS)]
        curve = froc["curve"]
        x = np.array([number(v) for v in curve["fp_per_image"]], dtype=float)
        y = np.array([number(v) for v in curve["sensitivity"]], dtype=float)
        # Points left of the axis (no or few false positives) collapse onto its edge: keep the last (best) of them.
        first = max(int(np.searchsorted(x, low, side="right")) - 1, 0)
        x, y = np.clip(x[first:], low, None), y[first:]
        x = np.append(x, max(high, x.max(initial=0)))
        y = np.append(y, y[-1] if len(y) else 0.0)
        ax.plot(x, y, drawstyle="steps-post", color=color, linewidth=2,
                label=f"{name}: FROC score {fmt(froc['score'])} (IoU ≥ {froc['iou_threshold']:g})")
        rates, sens = np.array(froc["rates"], dtype=float), np.array([number(s) for s in froc["sensitivities"]])
        ax.plot(rates, sens, linestyle="none", marker="o", markersize=7, color=color, markeredgecolor="black",
                zorder=3)
        for rate, value in zip(rates, sens):
            ax.annotate(fmt(value, 2), (rate, value), textcoords="offset points", xytext=(0, 8), ha="center",
                        fontsize=8, color=color)
        at = froc.get("at_cutoff")
        if at is not None:
            fp_rate = max(number(at["fp_per_image"]), low)
            ax.plot([fp_rate], [number(at["sensitivity"])], linestyle="none", marker="D", markersize=8,
                    color="#e67e22", markeredgecolor="black", zorder=4,
                    label=f"{name} at the cut-off: sensitivity {fmt(at['sensitivity'], 2)},"
                          f" {fmt(at['fp_per_image'], 2)} FP/image")
    ax.set_xscale("log", base=2)
    ax.set_xlim(low, high)
    ticks = [FROC_LIMITS[0] * 2**k for k in range(7)]
    ax.set_xticks(ticks, [_rate_text(t) for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(-0.01, 1.05)
    ax.set_xlabel("mean false positives per image")
    ax.set_ylabel("lesion sensitivity (box recall)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    return save_figure(fig, path)


def plot_pr(path: Path, sections: dict[str, dict], title: str) -> Path:
    """Precision against recall of the boxes (IoU 0.5, every confidence): the interpolated
    precision COCO's AP integrates (solid), the raw precision (thin), AP50 in the legend and the
    cut-off's operating point a diamond. ``sections``: {detector name: the report's ``detection``}."""
    fig, ax = _figure()
    for i, (name, section) in enumerate(sections.items()):
        color = COLORS[i % len(COLORS)]
        pr = section["pr"]
        curve = pr["curve"]
        recall = np.array([number(v) for v in curve["recall"]], dtype=float)
        precision = np.array([number(v) for v in curve["precision"]], dtype=float)
        envelope = np.array([number(v) for v in curve["interpolated_precision"]], dtype=float)
        if len(recall):
            ax.plot(np.append(0.0, recall), np.append(envelope[0], envelope), drawstyle="steps-pre", color=color,
                    linewidth=2, label=f"{name}: AP50 {fmt(section['ap50'])}")
            ax.plot(recall, precision, color=color, linewidth=0.8, alpha=0.5)
        else:
            ax.plot([], [], color=color, label=f"{name}: AP50 {fmt(section['ap50'])} (no boxes)")
        at = pr.get("at_cutoff")
        if at is not None and not np.isnan(number(at["precision"])):
            ax.plot([number(at["recall"])], [number(at["precision"])], linestyle="none", marker="D", markersize=8,
                    color="#e67e22", markeredgecolor="black", zorder=4,
                    label=f"{name} at the cut-off {section['cutoff']:g}: recall {fmt(at['recall'], 2)},"
                          f" precision {fmt(at['precision'], 2)}")
    ax.plot([], [], color="0.5", linewidth=0.8, alpha=0.6, label="raw precision (thin)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.05)
    ax.set_aspect("equal")
    ax.set_xlabel("recall (reference boxes found, IoU ≥ 0.5)")
    ax.set_ylabel("precision (predicted boxes that are right)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    return save_figure(fig, path)

