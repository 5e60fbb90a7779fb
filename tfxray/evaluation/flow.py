"""The flow of cases through an evaluation (STARD 2015 item 19): rows read, rows excluded with
their reasons, images analysed and patients analysed, each with its counts per class.

``flow_table`` takes counts; ``flow_from_rows`` counts them from one entry per row (the class as
read, the reason a row was left out or None, the patient). The table is JSON-ready;
``flow_markdown`` renders it for report.md and ``plot_flow`` draws it as the boxes-and-arrows
diagram STARD asks for (PNG at 300 dpi and an SVG beside it, both written atomically).

A row whose label could not be read is counted under the class ``unknown`` (UNKNOWN); such a row
cannot be analysed, so it must be among the excluded rows. The usual reasons are in REASONS; any
other text is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from ..errors import UserError
from ..io import atomic_save_figure

UNKNOWN = "unknown"
MIXED = "mixed"
REASONS = ("no score", "unreadable", "unknown label", "outside training profile")
DPI = 300
FONT_PT = 9
TITLE_PT = 10
LINE_IN = 0.2  # height of one text line in the diagram, inches
CHAR_IN = 0.075  # about the width of one character at FONT_PT, inches (for wrapping)
MAIN_EDGE = "#0072B2"  # Okabe-Ito blue
EXCLUDED_EDGE = "#D55E00"  # Okabe-Ito vermillion


def _count(value, where: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"flow of cases: {where} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number) or number < 0:
        raise UserError(f"flow of cases: {where} must be a whole number >= 0, got {value!r}")
    return int(number)


def _stage(by_class: Mapping, classes: list[str]) -> dict:
    counts = {c: int(by_class.get(c, 0)) for c in classes}
    return {"n": sum(counts.values()), "by_class": counts}


def flow_table(rows_read: Mapping[str, int], excluded: Sequence[tuple[str, Mapping[str, int]]] = (),
               patients: Mapping[str, int] | None = None, classes: Sequence[str] | None = None) -> dict:
    """The flow of cases from counts.

    ``rows_read``: {class: rows} as read (UNKNOWN for rows without a usable label);
    ``excluded``: [(reason, {class: rows}), ...] in the order the exclusions were applied;
    ``patients``: {class: patients analysed} (the patient-level class, e.g. positive when any of
    its images is), or None when there is no patient column; ``classes``: the order of the
    classes (default: as in ``rows_read``, UNKNOWN last).

    Returns {"classes", "rows_read": {n, by_class}, "excluded": [{reason, n, by_class}],
    "n_excluded", "images_analysed": {n, by_class}, "patients_analysed": {n, by_class} or None}.
    Images analysed = rows read - every exclusion, class by class.
    """
    read = {str(c): _count(v, f"rows read of class {c!r}") for c, v in rows_read.items()}
    order = [str(c) for c in classes] if classes is not None else [c for c in read if c != UNKNOWN]
    order += [c for c in read if c not in order and c != UNKNOWN]
    if UNKNOWN in read and UNKNOWN not in order:
        order.append(UNKNOWN)
    steps, seen = [], set()
    remaining = dict.fromkeys(order, 0) | read
    for item in excluded:
        try:
            reason, counts = item
        except (TypeError, ValueError):
            raise UserError(f"flow of cases: an exclusion is (reason, {{class: count}}), got {item!r}") from None
        reason = str(reason).strip()
        if not reason:
            raise UserError("flow of cases: an exclusion has an empty reason")
        if reason in seen:
            raise UserError(f"flow of cases: the exclusion reason {reason!r} is given twice")
        seen.add(reason)
        counts = {str(c): _count(v, f"excluded ({reason}) of class {c!r}") for c, v in counts.items()}
        for c, v in counts.items():
            if c not in remaining:
                raise UserError(f"flow of cases: excluded ({reason}) has class {c!r}, which no row read has")
            remaining[c] -= v
            if remaining[c] < 0:
                raise UserError(f"flow of cases: more {c!r} rows excluded than read (after {reason!r})")
        steps.append({"reason": reason, **_stage(counts, order)})
    if remaining.get(UNKNOWN, 0):
        raise UserError(f"flow of cases: {remaining[UNKNOWN]} rows with an unknown label are not among the"
                        " excluded rows")
    patient_stage = None
    if patients is not None:
        counts = {str(c): _count(v, f"patients of class {c!r}") for c, v in patients.items()}
        patient_order = [c for c in order if c != UNKNOWN] + [c for c in counts if c not in order]
        patient_stage = _stage(counts, patient_order)
    analysed = _stage({c: v for c, v in remaining.items() if c != UNKNOWN}, [c for c in order if c != UNKNOWN])
    return {
        "classes": order,
        "rows_read": _stage(read, order),
        "excluded": steps,
        "n_excluded": sum(s["n"] for s in steps),
        "images_analysed": analysed,
        "patients_analysed": patient_stage,
    }


def flow_from_rows(classes, reasons=None, patients=None, positive: str | None = None,
                   class_order: Sequence[str] | None = None) -> dict:
    """The flow of cases counted from one entry per row.

    ``classes``: each row's class as read (None/NaN: unknown label, counted as UNKNOWN);
    ``reasons``: each row's exclusion reason, None/NaN/'' for a row that is analysed (a row with
    an unknown label and no reason is excluded as 'unknown label'); ``patients``: each row's
    patient id, or None. A patient's class is ``positive`` when any of its analysed images is
    positive; otherwise the class its analysed images share, or MIXED when they differ.
    Exclusion reasons keep their order of first appearance.
    """
    labels = pd.Series(np.asarray(classes, dtype=object))
    unknown = labels.isna().to_numpy()
    labels = labels.where(~unknown, UNKNOWN).astype(str)
    n = len(labels)
    if reasons is None:
        why = pd.Series([None] * n, dtype=object)
    else:
        why = pd.Series(np.asarray(reasons, dtype=object))
        if len(why) != n:
            raise UserError(f"flow of cases: {len(why)} exclusion reasons for {n} rows")
    why = why.where(~why.isna(), "").astype(str).str.strip()
    why[(why == "") & unknown] = "unknown label"
    kept = (why == "").to_numpy()
    rows_read = labels.value_counts(sort=False).to_dict()
    order = list(class_order) if class_order is not None else sorted(c for c in rows_read if c != UNKNOWN)
    excluded = [(reason, labels[(why == reason).to_numpy()].value_counts(sort=False).to_dict())
                for reason in dict.fromkeys(why[~kept])]
    patient_counts = None
    if patients is not None:
        ids = pd.Series(np.asarray(patients, dtype=object))
        if len(ids) != n:
            raise UserError(f"flow of cases: {len(ids)} patient ids for {n} rows")
        if ids[kept].isna().any():
            raise UserError(f"flow of cases: {int(ids[kept].isna().sum())} analysed rows have no patient id")
        frame = pd.DataFrame({"patient": ids[kept].astype(str).to_numpy(), "label": labels[kept].to_numpy()})

        def patient_class(values: pd.Series) -> str:
            if positive is not None and (values == positive).any():
                return positive
            distinct = values.unique()
            return distinct[0] if len(distinct) == 1 else MIXED

        per_patient = frame.groupby("patient", sort=False)["label"].agg(patient_class)
        patient_counts = per_patient.value_counts(sort=False).to_dict()
    return flow_table(rows_read, excluded, patient_counts, order)


def _class_parts(stage: dict, skip_zero: bool = False) -> list[str]:
    """['fracture 12', 'normal 30']: every class (zeros too, unless ``skip_zero``), unknown only when counted."""
    return [f"{'unknown label' if c == UNKNOWN else c} {v}" for c, v in stage["by_class"].items()
            if v or (c != UNKNOWN and not skip_zero)]


def _wrap(parts: list[str], max_chars: int, sep: str = ", ", prefix: str = "", suffix: str = "") -> list[str]:
    """Join ``parts`` with ``sep`` into lines of at most about ``max_chars``, never breaking a part."""
    tokens = [part + (sep.rstrip() if i < len(parts) - 1 else "") for i, part in enumerate(parts)]
    tokens[0] = prefix + tokens[0]
    tokens[-1] += suffix
    lines, current = [], ""
    for token in tokens:
        if current and len(current) + 1 + len(token) > max_chars:
            lines.append(current)
            current = token
        else:
            current = f"{current} {token}" if current else token
    lines.append(current)
    return lines


def flow_markdown(table: dict, heading: str | None = "## Flow of cases (STARD 2015 item 19)") -> str:
    """The flow of cases as a Markdown table: one row per stage, a column per class."""
    classes = list(table["classes"])
    patient_extra = []
    if table["patients_analysed"] is not None:
        patient_extra = [c for c in table["patients_analysed"]["by_class"] if c not in classes]
    columns = classes + patient_extra
    names = ["unknown label" if c == UNKNOWN else c for c in columns]

    def row(stage_name: str, stage: dict) -> str:
        cells = [str(stage["by_class"][c]) if c in stage["by_class"] else "–" for c in columns]
        return "| " + " | ".join([stage_name, str(stage["n"]), *cells]) + " |"

    out = [heading, ""] if heading else []
    out += ["| Stage | Total | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(columns)]
    out.append(row("Rows read", table["rows_read"]))
    for step in table["excluded"]:
        out.append(row(f"Excluded: {step['reason']}", step))
    out.append(row("**Images analysed**", table["images_analysed"]))
    if table["patients_analysed"] is not None:
        out.append(row("**Patients analysed**", table["patients_analysed"]))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# the diagram


def _box(ax, x: float, y_top: float, width: float, lines: list[str], edge: str, bold_first: bool = True) -> float:
    """A rounded box whose top edge is at y_top, centred on x, one text line per entry; returns its bottom."""
    height = LINE_IN * len(lines) + 0.22
    ax.add_patch(FancyBboxPatch((x - width / 2, y_top - height), width, height,
                                boxstyle="round,pad=0,rounding_size=0.06", linewidth=1.2, edgecolor=edge,
                                facecolor="white"))
    for i, text in enumerate(lines):
        ax.text(x, y_top - 0.11 - LINE_IN * (i + 0.5), text, ha="center", va="center", fontsize=FONT_PT,
                fontweight="bold" if (i == 0 and bold_first) else "normal")
    return y_top - height


def _arrow(ax, start, end) -> None:
    ax.annotate("", xy=end, xytext=start,
                arrowprops={"arrowstyle": "-|>", "color": "0.2", "linewidth": 1.1, "shrinkA": 0, "shrinkB": 0,
                            "mutation_scale": 12})


def plot_flow(path, table: dict, title: str | None = "Flow of cases") -> Path:
    """The flow diagram: rows read -> images analysed -> patients analysed down the left, the
    exclusions (each reason with its counts per class) in a box to the right. PNG (300 dpi) at
    ``path``, SVG (text kept as text) beside it; both atomic. Returns the PNG path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    main_w, side_w, gap = 3.1, 3.3, 0.45
    width = main_w + gap + side_w + 0.2
    main_x, side_x = 0.1 + main_w / 2, 0.1 + main_w + gap + side_w / 2

    main_chars, side_chars = int(main_w / CHAR_IN), int(side_w / CHAR_IN)
    stages = [("Rows read", table["rows_read"]), ("Images analysed", table["images_analysed"])]
    if table["patients_analysed"] is not None:
        stages.append(("Patients analysed", table["patients_analysed"]))
    main = [[name, f"n = {stage['n']}", *_wrap(_class_parts(stage), main_chars)] for name, stage in stages]
    side = [f"Excluded: n = {table['n_excluded']}"]
    for step in table["excluded"]:
        side += _wrap(f"{step['reason']}: {step['n']}".split(), side_chars, sep=" ")
        side += _wrap(_class_parts(step, skip_zero=True) or ["none"], side_chars, prefix="(", suffix=")")
    if not table["excluded"]:
        side.append("none")

    side_h = LINE_IN * len(side) + 0.22
    spacing = max(0.75, side_h + 0.3)  # the exclusion box sits between the first two main boxes
    heights = [LINE_IN * len(lines) + 0.22 for lines in main]
    total_h = sum(heights) + spacing + 0.6 * (len(main) - 2) + (0.55 if title else 0.1) + 0.15
    fig = Figure(figsize=(width, total_h))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, total_h)
    ax.axis("off")
    y = total_h - 0.1
    if title:
        ax.text(width / 2, y - 0.15, title, ha="center", va="center", fontsize=TITLE_PT, fontweight="bold")
        y -= 0.45
    bottom = _box(ax, main_x, y, main_w, main[0], MAIN_EDGE)
    next_top = bottom - spacing
    _arrow(ax, (main_x, bottom), (main_x, next_top))
    middle = (bottom + next_top) / 2
    side_top = middle + side_h / 2
    _box(ax, side_x, side_top, side_w, side, EXCLUDED_EDGE)
    _arrow(ax, (main_x, middle), (side_x - side_w / 2, middle))
    bottom = _box(ax, main_x, next_top, main_w, main[1], MAIN_EDGE)
    if len(main) > 2:
        next_top = bottom - 0.6
        _arrow(ax, (main_x, bottom), (main_x, next_top))
        _box(ax, main_x, next_top, main_w, main[2], MAIN_EDGE)
    atomic_save_figure(fig, path, dpi=DPI)
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        atomic_save_figure(fig, path.with_suffix(".svg"), dpi=DPI)
    return path
