"""Evaluate a detector's boxes: per image as a classifier, per box as a detector, and two detectors paired.

Tables in, a report dict out, as report.py. A detections table has one row per predicted box,
``path, x1, y1, x2, y2, score`` (optionally ``frame`` and ``class``) in the original image's
pixels; the images table (a manifest's ``images``) lists every evaluated image with its label, so
an image without any predicted box is a case too; the truth table (a manifest's ``boxes``) holds
the reference boxes, an image without a box row having none.

- Per image: the image's score is its highest box confidence (0 without a box,
  ``boxes.image_scores``); ``report.evaluate_table`` does the rest (AUC with its DeLong or
  bootstrap CI, sensitivity and specificity at the box cut-off with Clopper-Pearson CIs, per
  patient when asked). An image is called positive when it has a box scoring >= the cut-off,
  which is what the detector does; the report is a classifier report (``levels``, ``settings``...)
  with the detection's keys added beside them.
- Per box (``boxes.py``): recall and precision of the boxes scoring >= the cut-off, greedy
  matching by confidence at IoU >= ``iou_threshold``, Clopper-Pearson CIs; COCO AP at IoU 0.5
  over every box (``ap50``); the FROC curve and score at ``iou_threshold`` (mean lesion sensitivity
  at 1/8 ... 8 false positives per image); the precision-recall curve at IoU 0.5.
- Two detectors on the same images (``compare_detections``): the paired DeLong test of the
  per-image AUCs and McNemar's exact test of the per-image sensitivities (on the positive images)
  and specificities (on the negative ones) at each detector's cut-off.

``write_detection_report`` writes report.json, report.md, per_image.csv and the figures.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import UserError
from . import binomial, delong, roc
from .boxes import (COORDINATES, average_precision, box_recall_precision, froc, image_scores, match_boxes)
from .choices import DEFAULT_AGGREGATION
from .report import LEVEL, ROC_POINTS_KEPT, evaluate_table, format_summary, json_ready
from .table import binary_labels, build_levels, label_values, read_table_csv

SCHEMA = "tfxray.detection/1"
DEFAULT_NAME = "max_box_score"  # the image score column: the highest box confidence of an image
DETECTION_COLUMNS = ("path", *COORDINATES, "score")
AP_IOU = 0.5
AP_MAX_DETECTIONS = 100  # COCO's maxDets
CUTOFF_RULE_TEXT = "box cut-off: an image is positive when one of its boxes scores >= the cut-off"


# ---------------------------------------------------------------------------------------------
# reading and aligning


def read_detections_csv(path) -> pd.DataFrame:
    """A boxes.csv (``path, frame, x1, y1, x2, y2, score, class``) as a table; relative paths
    resolve against the CSV's folder. Coordinates and scores must be numbers (one-line error)."""
    path = Path(path)
    table = read_table_csv(path, dtype={"path": str})
    missing = [c for c in DETECTION_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, table.columns))})")
    if table["path"].isna().any():
        first = int(np.flatnonzero(table["path"].isna().to_numpy())[0])
        raise UserError(f"{path}: {int(table['path'].isna().sum())} rows without a path (first: data row {first + 1})")
    for column in (*COORDINATES, "score", *(["frame"] if "frame" in table.columns else [])):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise UserError(f"{path}: column {column}: {int(bad.sum())} values are not finite numbers"
                            f" (first: data row {first + 1}, {table[column].iat[first]!r})")
        table[column] = values.astype(float)
    base = path.parent
    table["path"] = [os.path.abspath(p if os.path.isabs(p) else base / p) for p in table["path"]]
    return table


def align_detections(detections: pd.DataFrame, image_paths, source: str = "detections") -> pd.DataFrame:
    """The detections with each path replaced by the image list's spelling of the same file.

    A path matches an image of ``image_paths`` when it is the same string, else when both resolve
    to the same real file (``os.path.realpath``: symlinks, ``..``). A path that matches no image,
    or two images, is a UserError naming how many and the first. Rows with a ``frame`` other than
    0 are refused: images are keyed by path (single-frame files).
    """
    for column in DETECTION_COLUMNS:
        if column not in detections.columns:
            raise UserError(f"{source}: missing column {column} (found: {', '.join(map(str, detections.columns))})")
    if "frame" in detections.columns:
        frames = pd.to_numeric(detections["frame"], errors="coerce")
        other = ~(frames == 0).to_numpy()
        if other.any():
            first = int(np.flatnonzero(other)[0])
            raise UserError(f"{source}: {int(other.sum())} boxes on a frame other than 0 (first:"
                            f" {detections['path'].iat[first]} frame {detections['frame'].iat[first]}); multi-frame"
                            " files are not evaluated per frame")
    paths = [str(p) for p in image_paths]
    known = set(paths)
    given = detections["path"].astype(str)
    unknown = [p for p in pd.unique(given) if p not in known]
    if not unknown:
        return detections
    real: dict[str, list[str]] = {}
    for p in paths:
        real.setdefault(os.path.realpath(p), []).append(p)
    mapping, unmatched, ambiguous = {}, [], []
    for p in unknown:
        found = real.get(os.path.realpath(p), [])
        if len(found) == 1:
            mapping[p] = found[0]
        elif found:
            ambiguous.append((p, found))
        else:
            unmatched.append(p)
    if unmatched:
        rows = int(given.isin(unmatched).sum())
        raise UserError(f"{source}: {len(unmatched)} path(s) not in the truth manifest ({rows} boxes), first:"
                        f" {unmatched[0]}")
    if ambiguous:
        p, found = ambiguous[0]
        raise UserError(f"{source}: {len(ambiguous)} path(s) name a file the manifest lists under several paths, first:"
                        f" {p} ({', '.join(found[:3])})")
    aligned = detections.copy()
    aligned["path"] = given.map(lambda p: mapping.get(p, p))
    return aligned


def unit_interval(value, name: str, low_open: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name}: {value!r} is not a number") from None
    if not math.isfinite(value) or not (0 < value <= 1 if low_open else 0 <= value <= 1):
        raise UserError(f"{name}: {value:g} is not in {'(0, 1]' if low_open else '[0, 1]'}")
    return value


def _checked(detections: pd.DataFrame, images: pd.DataFrame, truth_boxes: pd.DataFrame, label_column: str):
    """(detections aligned to the images' paths, the image paths, the truth boxes), all checked."""
    for column in ("path", label_column):
        if column not in images.columns:
            raise UserError(f"images table: no column {column!r} (columns: {', '.join(map(str, images.columns))})")
    if len(images) == 0:
        raise UserError("images table: no images")
    paths = images["path"].astype(str)
    if paths.duplicated().any():
        raise UserError(f"images table: {int(paths.duplicated().sum())} duplicated paths (first:"
                        f" {paths[paths.duplicated()].iat[0]})")
    detections = align_detections(detections, paths)
    scores = detections["score"].to_numpy(dtype=float)
    outside = ~((scores >= 0) & (scores <= 1))
    if outside.any():
        raise UserError(f"detections: {int(outside.sum())} box scores outside [0, 1] (first: {scores[outside][0]!r});"
                        " an image without a box scores 0, so confidences must be probabilities")
    if "class" in detections.columns and "class" not in truth_boxes.columns:
        classes = pd.unique(detections["class"].dropna().astype(str))
        if len(classes) > 1:
            raise UserError(f"detections: {len(classes)} classes ({', '.join(sorted(classes)[:5])}) but the reference"
                            " boxes have none; evaluate one class at a time")
    missing = [c for c in ("path", *COORDINATES) if c not in truth_boxes.columns]
    if missing:
        raise UserError(f"truth boxes: missing column(s) {', '.join(missing)}")
    truth = truth_boxes[~truth_boxes[COORDINATES].isna().all(axis=1)]
    if len(truth) == 0:
        raise UserError("the truth manifest has no reference boxes (columns x1, y1, x2, y2): box recall, precision,"
                        " AP and FROC need them")
    return detections, list(paths), truth


def detection_image_table(detections: pd.DataFrame, images: pd.DataFrame, *, label_column: str = "label",
                          name: str = DEFAULT_NAME, columns=()) -> pd.DataFrame:
    """One row per image of ``images`` (its order): ``path``, the label, ``name`` = the image's highest
    box score (0 without a box), and the image columns named in ``columns`` (e.g. the patient)."""
    detections = align_detections(detections, images["path"].astype(str))
    best = image_scores(detections, images["path"].astype(str))
    table = pd.DataFrame({"path": images["path"].astype(str).to_numpy(), label_column: images[label_column].to_numpy(),
                          name: best.to_numpy()})
    for column in columns:
        if column and column not in table.columns:
            if column not in images.columns:
                raise UserError(f"images table: no column {column!r} (columns: {', '.join(map(str, images.columns))})")
            table[column] = images[column].to_numpy()
    return table


# ---------------------------------------------------------------------------------------------
# evaluation


def _thinned(frame: pd.DataFrame, keep: int | None = None) -> dict:
    """A curve table for report.json: every point up to ROC_POINTS_KEPT, else evenly spaced ones (plus ``keep``)."""
    count = len(frame)
    index = np.arange(count)
    if count > ROC_POINTS_KEPT:
        extra = np.array([] if keep is None else [keep], dtype=int)  # an empty list alone would make it float
        index = np.unique(np.concatenate((np.linspace(0, count - 1, ROC_POINTS_KEPT).round().astype(int), extra)))
    out = {"n_points": count, "thinned": bool(count > ROC_POINTS_KEPT)}
    out.update({column: frame[column].to_numpy()[index].tolist() for column in frame.columns})
    return out


def _at_cutoff(curve: pd.DataFrame, cutoff: float) -> int:
    """The row of a FROC curve table (thresholds descending, first inf) that is the cut-off's operating point."""
    return int(np.flatnonzero(curve["threshold"].to_numpy() >= cutoff)[-1])


def _pr_table(curve: pd.DataFrame, n_truth: int) -> pd.DataFrame:
    """Recall and precision at each distinct score (a FROC curve's counts, without its no-detection row),
    and the precision made monotone from the right as COCO's AP integrates it."""
    rows = curve.iloc[1:]
    tp, fp = rows["tp"].to_numpy(dtype=float), rows["fp"].to_numpy(dtype=float)
    precision = tp / np.maximum(tp + fp, 1)
    return pd.DataFrame({
        "threshold": rows["threshold"].to_numpy(),
        "recall": tp / n_truth,
        "precision": precision,
        "interpolated_precision": np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision,
    })


def _ci_entry(entry: dict) -> dict:
    return {"lower": entry["lower"], "upper": entry["upper"], "level": LEVEL, "method": "Clopper-Pearson (exact)",
            "k": entry["k"], "n": entry["n"]}


def evaluate_detections(detections: pd.DataFrame, images: pd.DataFrame, truth_boxes: pd.DataFrame, *,
                        positive, cutoff: float, iou_threshold: float = 0.5, ci: str = "delong",
                        n_bootstrap: int = 2000, seed: int = 0, patient_column: str | None = None,
                        aggregate: str = DEFAULT_AGGREGATION, label_column: str = "label",
                        name: str = DEFAULT_NAME, readers: pd.DataFrame | None = None) -> dict:
    """The detector's report (module docstring): a classifier report of the per-image scores plus
    the per-box results. Plain JSON data; top-level ``auc`` (per image), ``box_recall``,
    ``box_precision``, ``ap50`` and ``froc_score`` are numbers (CIs under ``*_ci``).

    ``images``: one row per image with ``path`` and ``label_column`` (and ``patient_column``);
    ``truth_boxes``: ``path, x1, y1, x2, y2``; ``detections``: ``path, x1, y1, x2, y2, score``, its
    paths matched to the images' (``align_detections``). ``cutoff``: the box confidence cut-off in
    [0, 1]; ``name``: the image score's name in the classifier sections (a run's name when comparing).
    """
    cutoff = unit_interval(cutoff, "cut-off")
    iou_threshold = unit_interval(iou_threshold, "IoU threshold", low_open=True)
    detections, paths, truth = _checked(detections, images, truth_boxes, label_column)
    table = detection_image_table(detections, images, label_column=label_column, name=name,
                                  columns=[patient_column] if patient_column else [])
    arguments = dict(label_column=label_column, positive=positive, score_columns=[name], patient_column=patient_column,
                     aggregate=aggregate, ci=ci, n_bootstrap=n_bootstrap, seed=seed, readers=readers)
    # A detector's image score (its highest box confidence) is "higher = positive" by construction: the
    # curve is never flipped (a detector worse than chance reads an AUC below 0.5), and the cut-off is
    # applied as the detector applies it, score >= cut-off.
    report = evaluate_table(table, threshold=cutoff, direction="higher", **arguments)
    notes = list(report["notes"])
    is_positive, positive_name, negative_name = binary_labels(label_values(table, label_column), label_column, positive)

    # per box
    matched = match_boxes(detections, truth, paths, cutoff, iou_threshold=iou_threshold)
    counts = box_recall_precision(matched, LEVEL)
    ap50 = average_precision(detections, truth, paths, iou_threshold=AP_IOU, max_detections=AP_MAX_DETECTIONS)
    curve = froc(detections, truth, paths, iou_threshold=iou_threshold)
    pr_curve = curve if iou_threshold == AP_IOU else froc(detections, truth, paths, iou_threshold=AP_IOU)
    pr = _pr_table(pr_curve.curve, pr_curve.n_truth)
    pr_row = _at_cutoff(pr_curve.curve, cutoff)
    froc_row = _at_cutoff(curve.curve, cutoff)

    per_image = matched.images
    truth_per_image = per_image["truth"].to_numpy()
    boxes_per_image = np.bincount(pd.Index(paths).get_indexer(detections["path"]), minlength=len(paths))
    unboxed_positive = int(np.sum(is_positive & (truth_per_image == 0)))
    boxed_negative = int(np.sum(~is_positive & (truth_per_image > 0)))
    if unboxed_positive:
        notes.append(f"{unboxed_positive} {positive_name} image(s) have no reference box: a box predicted on them"
                     " counts as a false positive, and they add nothing to box recall")
    if boxed_negative:
        notes.append(f"{boxed_negative} {negative_name} image(s) have reference boxes: they count in box recall and"
                     " FROC, while the per-image results count them as negatives")
    if boxes_per_image.max(initial=0) > AP_MAX_DETECTIONS:
        notes.append(f"AP50 keeps the {AP_MAX_DETECTIONS} highest-scoring boxes of each image (COCO's maxDets);"
                     f" {int(np.sum(boxes_per_image > AP_MAX_DETECTIONS))} image(s) have more")

    model = report["levels"]["image"]["models"][name]
    op = model["operating_point"]
    recall, precision = counts["recall"], counts["precision"]
    ap_at_iou = None
    if iou_threshold != AP_IOU:
        ap_at_iou = average_precision(detections, truth, paths, iou_threshold=iou_threshold,
                                      max_detections=AP_MAX_DETECTIONS)
    detection = {
        "name": name,
        "cutoff": cutoff,
        "iou_threshold": iou_threshold,
        "matching": "greedy by descending confidence per image; a box is a true positive when an unmatched"
                    " reference box of its image has IoU >= the threshold (the highest-IoU one is taken)",
        "counts": None,  # filled below (the same dict as the top level's)
        "box_recall": recall,
        "box_precision": precision,
        "fp_per_image": counts["fp_per_image"],
        "ap50": ap50,
        "ap50_method": f"COCO AP (pycocotools' COCOeval): IoU {AP_IOU}, every box (no cut-off), at most"
                       f" {AP_MAX_DETECTIONS} per image, 101-point interpolated precision",
        "ap_at_iou": ap_at_iou,
        "froc": {
            "iou_threshold": iou_threshold,
            "rates": list(curve.rates),
            "sensitivities": curve.sensitivities.tolist(),
            "score": curve.score,
            "at_cutoff": {"fp_per_image": float(curve.curve["fp_per_image"].iat[froc_row]),
                          "sensitivity": float(curve.curve["sensitivity"].iat[froc_row])},
            "curve": _thinned(curve.curve, froc_row),
        },
        "pr": {
            "iou_threshold": AP_IOU,
            "at_cutoff": {"recall": float(pr["recall"].iat[pr_row - 1]) if pr_row else 0.0,
                          "precision": float(pr["precision"].iat[pr_row - 1]) if pr_row else math.nan},
            "curve": _thinned(pr, pr_row - 1 if pr_row else None),
        },
    }
    count_table = {
        "images": len(paths),
        "positive_images": int(is_positive.sum()),
        "negative_images": int((~is_positive).sum()),
        "images_with_reference_boxes": int(np.sum(truth_per_image > 0)),
        "positive_images_without_boxes": unboxed_positive,
        "negative_images_with_boxes": boxed_negative,
        "reference_boxes": counts["truth"],
        "predicted_boxes": int(len(detections)),
        "predicted_at_cutoff": counts["predicted"],
        "tp": counts["tp"],
        "fp": counts["fp"],
        "fn": counts["fn"],
        "fp_per_image": counts["fp_per_image"],
    }
    detection["counts"] = count_table
    report["settings"]["detection"] = {"name": name, "cutoff": cutoff, "iou_threshold": iou_threshold,
                                       "positive": positive_name, "negative": negative_name}
    out = {
        "schema": SCHEMA,
        "kind": "detection",
        "auc": model["auc"],
        "auc_ci": model["auc_ci"],
        "sensitivity": op["sensitivity"]["value"],
        "sensitivity_ci": _ci_entry(op["sensitivity"]),
        "specificity": op["specificity"]["value"],
        "specificity_ci": _ci_entry(op["specificity"]),
        "box_recall": recall["value"],
        "box_recall_ci": _ci_entry(recall),
        "box_precision": precision["value"],
        "box_precision_ci": _ci_entry(precision),
        "ap50": ap50,
        "froc_score": curve.score,
        "cutoff": cutoff,
        "iou_threshold": iou_threshold,
        "counts": count_table,
        "detection": detection,
        **{k: v for k, v in report.items() if k not in ("schema", "auc", "notes")},
        "notes": notes,
    }
    return json_ready(out)


# ---------------------------------------------------------------------------------------------
# two detectors on the same images


def mcnemar_exact(b: int, c: int) -> float:
    """McNemar's exact two-sided p-value from the discordant pairs b and c: the binomial test of
    b successes out of b + c at 1/2 (scipy.stats.binomtest; 1 when there is no discordant pair)."""
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)


def _mcnemar_section(correct_a: np.ndarray, correct_b: np.ndarray, what: str, names) -> dict:
    both = int(np.sum(correct_a & correct_b))
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    neither = int(np.sum(~correct_a & ~correct_b))
    n = len(correct_a)
    return {
        "test": "McNemar exact (two-sided binomial test of the discordant pairs)",
        "what": what,
        "n": n,
        names[0]: binomial.proportion(both + b, n, LEVEL),
        names[1]: binomial.proportion(both + c, n, LEVEL),
        "difference": ((b - c) / n) if n else math.nan,
        "both_correct": both,
        "b": b,
        "c": c,
        "b_means": f"{names[0]} correct, {names[1]} wrong",
        "c_means": f"{names[0]} wrong, {names[1]} correct",
        "neither_correct": neither,
        "p": mcnemar_exact(b, c),
    }


def compare_detections(scores_a, scores_b, labels, cutoff_a: float, cutoff_b: float, names=("A", "B")) -> dict:
    """Two detectors on the same images: per-image scores (highest box confidence) aligned image by
    image, ``labels`` True (or 1) for positive images.

    - ``auc``: the paired DeLong test of the per-image AUCs (delong.paired_test; both curves
      "higher = positive", the detectors' own direction, as the reports' AUCs), None with fewer
      than 2 positive or negative images (a note says so);
    - ``sensitivity`` (positive images) and ``specificity`` (negative images): McNemar's exact test
      on the images each detector calls right at its cut-off (score >= cut-off is positive):
      ``b`` = A right and B wrong, ``c`` = A wrong and B right, ``p`` two-sided.
    """
    a = np.asarray(scores_a, dtype=float).ravel()
    b = np.asarray(scores_b, dtype=float).ravel()
    y = roc.as_binary_labels(np.asarray(labels).ravel())
    names = [str(n) for n in names]
    if len(names) != 2 or names[0] == names[1]:
        raise UserError(f"compare: need two different names, got {names}")
    if not (len(a) == len(b) == len(y)):
        raise UserError(f"compare: {len(a)} and {len(b)} scores for {len(y)} images; score the same images with both")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise UserError("compare: every image needs a finite score from both detectors")
    cutoff_a = unit_interval(cutoff_a, f"cut-off of {names[0]}")
    cutoff_b = unit_interval(cutoff_b, f"cut-off of {names[1]}")
    called_a, called_b = a >= cutoff_a, b >= cutoff_b
    notes = []
    auc = None
    m, n = int(y.sum()), int((~y).sum())
    if m >= 2 and n >= 2:
        auc = {"models": names, **delong.paired_test(y, a, b, LEVEL, ("<", "<"))}
        below = [name for name, value in zip(names, (auc["auc_a"], auc["auc_b"])) if value < 0.5]
        if below:
            notes.append(f"{' and '.join(below)}: per-image AUC below 0.5 (higher box confidence is positive, not"
                         " flipped), as in its report")
    else:
        notes.append(f"{m} positive and {n} negative images: the paired DeLong test needs at least 2 of each")
    return json_ready({
        "models": names,
        "cutoffs": [cutoff_a, cutoff_b],
        "n": int(len(y)),
        "n_positive": m,
        "n_negative": n,
        "auc": auc,
        "sensitivity": _mcnemar_section(called_a[y], called_b[y], "sensitivity: positive images called positive",
                                        names),
        "specificity": _mcnemar_section(~called_a[~y], ~called_b[~y], "specificity: negative images called negative",
                                        names),
        "notes": notes,
    })


# ---------------------------------------------------------------------------------------------
# output


def _fmt(value, digits: int = 3) -> str:
    from .plots import fmt

    return fmt(value, digits)


def _with_ci(value, ci: dict, dash: str = "–") -> str:
    if value is None or ci.get("lower") is None:
        return _fmt(value)
    return f"{_fmt(value)} ({_fmt(ci['lower'])}{dash}{_fmt(ci['upper'])})"


def _p(value) -> str:
    return "n/a" if value is None else f"{float(value):.4g}"


def comparison_markdown(comparison: dict) -> str:
    """The comparison section of report.md (``compare_detections``'s result)."""
    a, b = comparison["models"]
    out = [f"## Comparison: {a} vs {b} ({comparison['n']} images: {comparison['n_positive']} positive,"
           f" {comparison['n_negative']} negative)", "",
           f"Cut-offs: {a} {_fmt(comparison['cutoffs'][0])}, {b} {_fmt(comparison['cutoffs'][1])}"
           " (an image is positive when a box scores >= its detector's cut-off).", ""]
    auc = comparison.get("auc")
    if auc:
        out += ["| Per-image AUC | " + a + " | " + b + " | ΔAUC (95% CI) | Z | p (DeLong, paired) |",
                "|---|---|---|---|---|---|",
                f"| | {_fmt(auc['auc_a'])} | {_fmt(auc['auc_b'])} | {_fmt(auc['difference'])}"
                f" ({_fmt(auc['ci_lower'])} to {_fmt(auc['ci_upper'])}) | {auc['z']:.3f} | {_p(auc['p'])} |", ""]
    out += [f"| McNemar (exact) | {a} | {b} | b ({a} right, {b} wrong) | c ({a} wrong, {b} right) | both right |"
            " neither | p (two-sided) |", "|---|---|---|---|---|---|---|---|"]
    for key in ("sensitivity", "specificity"):
        s = comparison[key]
        out.append(f"| {key} (n = {s['n']}) | {_with_ci(s[a]['value'], s[a])} | {_with_ci(s[b]['value'], s[b])} |"
                   f" {s['b']} | {s['c']} | {s['both_correct']} | {s['neither_correct']} | {_p(s['p'])} |")
    out.append("")
    out += [f"- {note}" for note in comparison.get("notes", [])]
    return "\n".join(out) + "\n"


def format_comparison(comparison: dict) -> str:
    """The comparison in a few lines for the terminal."""
    a, b = comparison["models"]
    lines = [f"{a} vs {b}: {comparison['n']} images ({comparison['n_positive']} positive)"]
    auc = comparison.get("auc")
    if auc:
        lines.append(f"  per-image AUC {_fmt(auc['auc_a'])} vs {_fmt(auc['auc_b'])}: dAUC {_fmt(auc['difference'])}"
                     f" ({_fmt(auc['ci_lower'])} to {_fmt(auc['ci_upper'])}), Z {auc['z']:.2f}, p {_p(auc['p'])}"
                     " (DeLong paired)")
    for key in ("sensitivity", "specificity"):
        s = comparison[key]
        lines.append(f"  {key} {_fmt(s[a]['value'])} vs {_fmt(s[b]['value'])}: b {s['b']}, c {s['c']},"
                     f" p {_p(s['p'])} (McNemar exact)")
    lines += [f"  note: {note}" for note in comparison.get("notes", [])]
    return "\n".join(lines)


def write_comparison(comparison: dict, out_dir) -> dict[str, Path]:
    """comparison.json and comparison.md in ``out_dir`` (atomic); returns {name: path}."""
    import json

    from ..io import atomic_write_text

    out_dir = Path(out_dir)
    paths = {"comparison.json": out_dir / "comparison.json", "comparison.md": out_dir / "comparison.md"}
    atomic_write_text(paths["comparison.json"], json.dumps(json_ready(comparison), indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["comparison.md"], "# Detector comparison\n\n" + comparison_markdown(comparison))
    return paths


def _box_section_md(report: dict, files: dict) -> list[str]:
    d, c = report["detection"], report["counts"]
    out = [f"## Boxes (IoU >= {d['iou_threshold']:g}, cut-off {d['cutoff']:g})", "",
           f"{c['reference_boxes']} reference boxes on {c['images_with_reference_boxes']} images;"
           f" {c['predicted_boxes']} predicted boxes, {c['predicted_at_cutoff']} at or above the cut-off. Matching: {d['matching']}.", "",
           "| Measure | Value (exact 95% CI) | Counts |", "|---|---|---|",
           f"| Box recall (lesion sensitivity) | {_with_ci(report['box_recall'], report['box_recall_ci'])} |"
           f" TP {c['tp']} / {c['reference_boxes']} reference boxes |",
           f"| Box precision | {_with_ci(report['box_precision'], report['box_precision_ci'])} |"
           f" TP {c['tp']} / {c['predicted_at_cutoff']} predicted boxes |",
           f"| False positives per image | {_fmt(c['fp_per_image'])} | FP {c['fp']} over {c['images']} images;"
           f" FN {c['fn']} |",
           f"| AP50 | {_fmt(report['ap50'])} | {d['ap50_method']} |",
           f"| FROC score | {_fmt(report['froc_score'])} | mean sensitivity at {len(d['froc']['rates'])} FP-per-image"
           f" rates, IoU >= {d['froc']['iou_threshold']:g} |"]
    if d.get("ap_at_iou") is not None:
        out.append(f"| AP at IoU {d['iou_threshold']:g} | {_fmt(d['ap_at_iou'])} | as AP50, at the evaluation's IoU |")
    out += ["", "### FROC (lesion sensitivity at mean false positives per image)", "",
            "| FP per image | " + " | ".join(f"{r:g}" for r in d["froc"]["rates"]) + " | score |",
            "|---" * (len(d["froc"]["rates"]) + 2) + "|",
            "| sensitivity | " + " | ".join(_fmt(s) for s in d["froc"]["sensitivities"]) +
            f" | {_fmt(d['froc']['score'])} |", ""]
    figures = [name for name in ("froc.png", "pr.png") if name in files]
    out += [f"![{name}]({files[name]})" for name in figures] + ([""] if figures else [])
    return out


def _overlays_md(overlays: dict | None, out_dir: Path) -> list[str]:
    if not overlays:
        return []
    folder = Path(overlays["folder"])
    try:
        link = os.path.relpath(folder, out_dir).replace(os.sep, "/")
    except ValueError:
        link = str(folder)
    out = ["## Box overlays", "",
           f"Predicted boxes (red, confidence and IoU with the matched reference box) and reference boxes (blue),"
           f" at most {overlays['n_per_kind']} images per kind, in `{link}/`.", ""]
    titles = {"tp": "Images with detected lesions (true-positive boxes)", "fn": "Images with missed lesions",
              "fp": "Images with false-positive boxes"}
    for kind, title in titles.items():
        entry = overlays["kinds"][kind]
        out += [f"### {title} ({len(entry['panels'])} of {entry['images']})", ""]
        if not entry["panels"]:
            out += ["none", ""]
            continue
        out += ["| # | Image | Image score | TP | FP | FN | Panel |", "|---|---|---|---|---|---|---|"]
        out += [f"| {i} | `{p['name']}` | {_fmt(p['score'])} | {p['tp']} | {p['fp']} | {p['fn']} |"
                f" [panel]({link}/{p['panel']}) |" for i, p in enumerate(entry["panels"], 1)]
        out.append("")
    if overlays.get("failures"):
        out += [f"{len(overlays['failures'])} image(s) could not be drawn: "
                + "; ".join(f"`{f['path']}`: {f['reason']}" for f in overlays["failures"][:5]), ""]
    return out


def render_detection_markdown(report: dict, files: dict, out_dir: Path | None = None) -> str:
    """report.md of a detector: the per-image section as a classifier's, then the boxes, overlays,
    comparison and notes."""
    from .markdown import render_markdown

    d = report["detection"]
    body = render_markdown({**report, "notes": [], "readers": report.get("readers") or []}, files)
    body = body.split("\n", 1)[1] if body.startswith("# ") else body
    head = ["# Detector evaluation report", "",
            f"- Detector `{d['name']}`: the image score is the image's highest box confidence (0 for an image"
            f" without a box); an image is called positive when a box scores >= the cut-off {d['cutoff']:g}.",
            f"- Boxes are matched to the reference boxes at IoU >= {d['iou_threshold']:g}; AP50 at IoU {AP_IOU:g}."]
    out = head + [body.lstrip("\n").rstrip("\n"), ""]
    out += _box_section_md(report, files)
    out += _overlays_md(report.get("overlays"), Path(out_dir) if out_dir is not None else Path("."))
    if report.get("comparison"):
        out += [comparison_markdown(report["comparison"])]
    if report.get("notes"):
        out += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return "\n".join(out)


def format_detection_summary(report: dict) -> str:
    """The one-screen text: the classifier summary of the per-image scores, then the boxes."""
    d, c = report["detection"], report["counts"]
    notes = report.get("notes", [])
    lines = [format_summary({**report, "notes": []})]
    lines.append(f"boxes (IoU >= {d['iou_threshold']:g}, score >= {d['cutoff']:g}): {c['reference_boxes']} reference,"
                 f" {c['predicted_at_cutoff']} predicted; TP {c['tp']} FP {c['fp']} FN {c['fn']}")
    lines.append(f"  box recall {_with_ci(report['box_recall'], report['box_recall_ci'], '-')}"
                 f"  box precision {_with_ci(report['box_precision'], report['box_precision_ci'], '-')}"
                 f"  FP/image {_fmt(c['fp_per_image'])}")
    froc_points = ", ".join(f"{_fmt(s, 2)}@{r:g}" for r, s in zip(d["froc"]["rates"], d["froc"]["sensitivities"]))
    lines.append(f"  AP50 {_fmt(report['ap50'])}  FROC score {_fmt(report['froc_score'])} (sensitivity@FP/image:"
                 f" {froc_points})")
    for note in notes[:3]:
        lines.append(f"note: {note if len(note) <= 160 else note[:157] + '...'}")
    if len(notes) > 3:
        lines.append(f"({len(notes) - 3} more notes in report.md)")
    return "\n".join(lines)


def per_image_table(report: dict, detections: pd.DataFrame, images: pd.DataFrame,
                    truth_boxes: pd.DataFrame) -> pd.DataFrame:
    """per_image.csv: path, label, image score, call at the cut-off, and the image's box counts."""
    s, d = report["settings"], report["detection"]
    detections, paths, truth = _checked(detections, images, truth_boxes, s["label_column"])
    table = detection_image_table(detections, images, label_column=s["label_column"], name=d["name"])
    matched = match_boxes(detections, truth, paths, d["cutoff"], iou_threshold=d["iou_threshold"])
    table["called_positive"] = table[d["name"]] >= d["cutoff"]
    counts = matched.images.reset_index(drop=True)
    table["reference_boxes"] = counts["truth"].to_numpy()
    table["predicted_boxes"] = np.bincount(pd.Index(paths).get_indexer(detections["path"]), minlength=len(paths))
    for column in ("predicted", "tp", "fp", "fn"):
        table[f"{column}_at_cutoff" if column == "predicted" else column] = counts[column].to_numpy()
    return table


def write_detection_report(report: dict, out_dir, detections: pd.DataFrame, images: pd.DataFrame,
                           truth_boxes: pd.DataFrame, *, roc_only: bool = False, overlays: dict | None = None,
                           comparison: dict | None = None) -> dict[str, Path]:
    """Write report.json, report.md, per_image.csv and the figures into ``out_dir`` (each atomically).

    The tables are the ones given to ``evaluate_detections``. Figures: the classifier's for the
    per-image scores (roc_image_<name>.png; with ``roc_only`` the ROC figures only), froc.png and
    pr.png. ``overlays`` (``write_overlay_panels``'s result) and ``comparison``
    (``compare_detections``'s) are added to report.json and report.md. Returns {name: path}.
    """
    import json

    from ..io import atomic_write_text
    from .detection_plots import plot_froc, plot_pr
    from .plots import draw_all

    if report.get("kind") != "detection":
        raise UserError("write_detection_report: not a detector's report (use report.write_report)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = dict(report)
    if overlays is not None:
        report["overlays"] = json_ready(overlays)
    if comparison is not None:
        report["comparison"] = json_ready(comparison)
    s, d = report["settings"], report["detection"]
    columns = [s["patient_column"]] if s.get("patient_column") else []
    table = detection_image_table(align_detections(detections, images["path"].astype(str)), images,
                                  label_column=s["label_column"], name=d["name"], columns=columns)
    paths = draw_all(report, build_levels(table, s), out_dir, roc_only=roc_only)
    paths["froc.png"] = plot_froc(out_dir / "froc.png", {d["name"]: d["froc"]},
                                  f"FROC — {d['name']}, {report['counts']['images']} images,"
                                  f" {report['counts']['reference_boxes']} lesions")
    paths["pr.png"] = plot_pr(out_dir / "pr.png", {d["name"]: d}, f"Precision–recall of the boxes — {d['name']}")
    for name in ("froc", "pr"):  # each figure's SVG twin (plots.save_figure)
        paths[f"{name}.svg"] = out_dir / f"{name}.svg"
    files = {"report.json": out_dir / "report.json", "report.md": out_dir / "report.md",
             "per_image.csv": out_dir / "per_image.csv", **paths}
    atomic_write_text(files["per_image.csv"],
                      per_image_table(report, detections, images, truth_boxes).to_csv(index=False))
    atomic_write_text(files["report.json"], json.dumps(json_ready(report), indent=2, allow_nan=False) + "\n")
    atomic_write_text(files["report.md"],
                      render_detection_markdown(report, {k: v.name for k, v in files.items()}, out_dir))
    return files
