"""Box metrics of a detector: IoU, greedy matching, per-box recall/precision, COCO AP, FROC.

Tables in, numbers out. Boxes are ``x1, y1, x2, y2`` in continuous pixel coordinates (width
``x2 - x1``, no +1 pixel, as COCO). A detections table has ``path, x1, y1, x2, y2, score`` and
optionally ``class``; a truth table ``path, x1, y1, x2, y2`` (optionally ``class``), one row per
box. A truth row whose four coordinates are all empty (NaN) stands for an image without boxes
and is dropped. Every function also takes ``images``, the paths of all evaluated images, since
images without any box count (false positives per image, AP tie order).

Matching (the same everywhere, as pycocotools' COCOeval does it): per image (and per class when
both tables have a ``class`` column, or ``by_class=True``), predicted boxes are taken by
descending score, ties in table order; each is a true positive when an unmatched truth box of
the same image has IoU >= ``iou_threshold`` with it, and then takes the one with the highest IoU
(on equal IoU, the later truth row, as COCOeval); otherwise it is a false positive. A second
box on an already matched lesion is therefore a false positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UserError
from .binomial import proportion

COORDINATES = ["x1", "y1", "x2", "y2"]
FROC_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO's recThrs


def iou(boxes_a, boxes_b) -> np.ndarray:
    """IoU matrix (n, m) of boxes (n, 4) and (m, 4), rows (x1, y1, x2, y2).

    Disjoint or touching boxes have IoU 0 (as do two empty boxes); the arithmetic is COCO's
    (intersection / (area_a + area_b - intersection)), so values agree with pycocotools bit for bit
    on integer coordinates.
    """
    a = _as_boxes(boxes_a)
    b = _as_boxes(boxes_b)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return _ratio(width, height, area_a[:, None], area_b[None, :])


def _pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of row i of a with row i of b."""
    width = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    height = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return _ratio(width, height, area_a, area_b)


def _ratio(width, height, area_a, area_b) -> np.ndarray:
    overlap = (width > 0) & (height > 0)
    intersection = np.where(overlap, width * height, 0.0)
    union = np.where(overlap, area_a + area_b - intersection, 1.0)
    return intersection / union


def _as_boxes(boxes) -> np.ndarray:
    array = np.asarray(boxes, dtype=float)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise UserError(f"boxes must have shape (n, 4) as x1, y1, x2, y2; got {array.shape}")
    return array


# ---------------------------------------------------------------------------------------------
# Tables to arrays


@dataclass(frozen=True)
class _Boxes:
    """Detections and truth as arrays: image and class codes, boxes, scores."""

    images: pd.Index
    classes: np.ndarray  # class labels; code c is classes[c]
    det_image: np.ndarray
    det_class: np.ndarray
    det_boxes: np.ndarray
    det_score: np.ndarray
    truth_image: np.ndarray
    truth_class: np.ndarray
    truth_boxes: np.ndarray
    truth_rows: np.ndarray  # positions in the truth table (all-NaN rows left out)

    @property
    def det_group(self) -> np.ndarray:
        return self.det_image * len(self.classes) + self.det_class

    @property
    def truth_group(self) -> np.ndarray:
        return self.truth_image * len(self.classes) + self.truth_class


def _image_index(images) -> pd.Index:
    index = pd.Index(list(images) if not isinstance(images, (pd.Index, pd.Series, np.ndarray)) else images)
    if index.has_duplicates:
        duplicated = index[index.duplicated()].unique()[:3].tolist()
        raise UserError(f"images: {int(index.duplicated().sum())} duplicated paths (e.g. {duplicated})")
    return index


def _codes(index: pd.Index, paths, name: str) -> np.ndarray:
    codes = index.get_indexer(paths)
    if (codes < 0).any():
        missing = pd.unique(np.asarray(paths)[codes < 0])[:3].tolist()
        raise UserError(f"{name}: {int((codes < 0).sum())} boxes on images not in the image list (e.g. {missing})")
    return codes.astype(np.int64)


def _check_columns(table: pd.DataFrame, columns, name: str) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise UserError(f"{name} table: missing columns {missing} (has {list(table.columns)})")


def _box_array(table: pd.DataFrame, name: str) -> np.ndarray:
    boxes = table[COORDINATES].to_numpy(dtype=float).reshape(-1, 4)
    if not np.isfinite(boxes).all():
        bad = int((~np.isfinite(boxes)).any(axis=1).sum())
        raise UserError(f"{name} table: {bad} boxes with missing or infinite coordinates")
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        row = int(np.flatnonzero(inverted)[0])
        raise UserError(f"{name} table: {int(inverted.sum())} boxes with x2 < x1 or y2 < y1 (first at row {row})")
    return boxes


def _use_classes(detections: pd.DataFrame, truth: pd.DataFrame, by_class: bool | None) -> bool:
    both = "class" in detections.columns and "class" in truth.columns
    if by_class and not both:
        raise UserError("by_class needs a 'class' column in both the detections and the truth table")
    return both if by_class is None else bool(by_class)


def _prepare(detections: pd.DataFrame, truth: pd.DataFrame, images, by_class: bool | None) -> _Boxes:
    _check_columns(detections, ["path", *COORDINATES, "score"], "detections")
    _check_columns(truth, ["path", *COORDINATES], "truth")
    index = _image_index(images)

    empty_rows = truth[COORDINATES].isna().all(axis=1).to_numpy()
    truth_rows = np.flatnonzero(~empty_rows)
    truth = truth.iloc[truth_rows]
    truth_boxes = _box_array(truth, "truth")
    det_boxes = _box_array(detections, "detections")
    scores = pd.to_numeric(detections["score"], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(scores).all():
        raise UserError(f"detections table: {int((~np.isfinite(scores)).sum())} scores missing or not finite")

    if _use_classes(detections, truth, by_class):
        labels = pd.concat([truth["class"], detections["class"]], ignore_index=True)
        if labels.isna().any():
            raise UserError("class column: empty class on some boxes")
        codes, classes = pd.factorize(labels, sort=True)
        truth_class, det_class = codes[: len(truth)], codes[len(truth):]
        classes = np.asarray(classes)
    else:
        classes = np.array([None], dtype=object)
        truth_class = np.zeros(len(truth), dtype=np.int64)
        det_class = np.zeros(len(detections), dtype=np.int64)

    return _Boxes(
        images=index,
        classes=classes,
        det_image=_codes(index, detections["path"].to_numpy(), "detections"),
        det_class=np.asarray(det_class, dtype=np.int64),
        det_boxes=det_boxes,
        det_score=scores,
        truth_image=_codes(index, truth["path"].to_numpy(), "truth"),
        truth_class=np.asarray(truth_class, dtype=np.int64),
        truth_boxes=truth_boxes,
        truth_rows=truth_rows,
    )


# ---------------------------------------------------------------------------------------------
# Greedy matching, all images at once


def _greedy_match(det_group, det_score, det_boxes, truth_group, truth_boxes, iou_threshold: float,
                  max_per_group: int | None = None):
    """COCOeval's matching over every group (image, or image and class) at once.

    Returns ``(kept, match)``: ``kept`` marks the detections within the top ``max_per_group`` of
    their group (all when None), ``match`` is the matched truth box's position or -1.

    Detections are sorted once by (group, -score), stable. The matching is sequential only within
    a group, so it runs rank by rank: step r matches the r-th detection of every group together,
    over the (detection, truth) pairs of its group that reach the threshold.
    """
    n_det = len(det_group)
    match = np.full(n_det, -1, dtype=np.int64)
    if n_det == 0:
        return np.zeros(0, dtype=bool), match
    order = np.lexsort((-det_score, det_group))
    sorted_group = det_group[order]
    new_group = np.empty(n_det, dtype=bool)
    new_group[0] = True
    np.not_equal(sorted_group[1:], sorted_group[:-1], out=new_group[1:])
    starts = np.flatnonzero(new_group)
    rank_sorted = np.arange(n_det) - np.repeat(starts, np.diff(np.append(starts, n_det)))
    kept_sorted = np.ones(n_det, dtype=bool) if max_per_group is None else rank_sorted < max_per_group
    kept = np.empty(n_det, dtype=bool)
    kept[order] = kept_sorted
    if len(truth_group) == 0:
        return kept, match

    # Truth boxes by group, table order within a group (COCOeval's order, which decides IoU ties).
    truth_order = np.argsort(truth_group, kind="stable")
    n_groups = int(max(det_group.max(), truth_group.max())) + 1
    truth_count = np.bincount(truth_group, minlength=n_groups)
    truth_start = np.concatenate([[0], np.cumsum(truth_count)[:-1]])

    # Every (kept detection, truth box of its group) pair, detections in sorted order.
    dets = order[kept_sorted]
    ranks = rank_sorted[kept_sorted]
    counts = truth_count[det_group[dets]]
    pair_det = np.repeat(dets, counts)
    pair_rank = np.repeat(ranks, counts)
    first_pair = np.repeat(np.cumsum(counts) - counts, counts)
    offset = np.arange(len(pair_det)) - first_pair
    pair_truth = truth_order[np.repeat(truth_start[det_group[dets]], counts) + offset]
    pair_iou = _pair_iou(det_boxes[pair_det], truth_boxes[pair_truth])

    # Pairs below the threshold never match: drop them, then go rank by rank.
    keep = pair_iou >= iou_threshold
    pair_det, pair_rank, pair_truth, pair_iou = pair_det[keep], pair_rank[keep], pair_truth[keep], pair_iou[keep]
    by_rank = np.argsort(pair_rank, kind="stable")
    pair_det, pair_rank = pair_det[by_rank], pair_rank[by_rank]
    pair_truth, pair_iou = pair_truth[by_rank], pair_iou[by_rank]
    taken = np.zeros(len(truth_group), dtype=bool)
    bounds = np.flatnonzero(np.diff(pair_rank)) + 1
    for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(pair_rank)]])):
        step_truth = pair_truth[lo:hi]
        free = ~taken[step_truth]
        if not free.any():
            continue
        step_truth = step_truth[free]
        step_det = pair_det[lo:hi][free]
        step_iou = pair_iou[lo:hi][free]
        first = np.empty(len(step_det), dtype=bool)
        first[0] = True
        np.not_equal(step_det[1:], step_det[:-1], out=first[1:])
        seg_start = np.flatnonzero(first)
        seg = np.cumsum(first) - 1
        best = np.maximum.reduceat(step_iou, seg_start)
        at_best = np.where(step_iou == best[seg], np.arange(len(step_iou)), -1)
        chosen = np.maximum.reduceat(at_best, seg_start)  # the last truth box with the best IoU
        match[step_det[seg_start]] = step_truth[chosen]
        taken[step_truth[chosen]] = True
    return kept, match


# ---------------------------------------------------------------------------------------------
# Matching at a cut-off, per-box recall and precision


@dataclass(frozen=True)
class BoxMatch:
    """Greedy matching of the predicted boxes at or above a cut-off.

    detections: the rows of the detections table with score >= cutoff (original index and order)
        plus ``tp`` (bool) and ``truth_row`` (position of the matched row in the truth table, -1).
    truth: the truth rows with a box plus ``detected`` (bool) and ``detection_row`` (position of
        the matching row in the detections table, -1).
    images: one row per image (index: path, in the order given) with ``truth``, ``predicted``,
        ``tp``, ``fp`` and ``fn``.
    """

    detections: pd.DataFrame
    truth: pd.DataFrame
    images: pd.DataFrame
    cutoff: float
    iou_threshold: float

    @property
    def tp(self) -> int:
        return int(self.images["tp"].sum())

    @property
    def fp(self) -> int:
        return int(self.images["fp"].sum())

    @property
    def fn(self) -> int:
        return int(self.images["fn"].sum())

    @property
    def n_truth(self) -> int:
        return int(self.images["truth"].sum())

    @property
    def n_predicted(self) -> int:
        return int(self.images["predicted"].sum())


def match_boxes(detections: pd.DataFrame, truth: pd.DataFrame, images, cutoff: float, *,
                iou_threshold: float = 0.5, by_class: bool | None = None) -> BoxMatch:
    """Match the predicted boxes with score >= ``cutoff`` to the truth boxes (module docstring).

    ``images`` lists every evaluated image; boxes on other paths are an error. Classes are matched
    separately when both tables have a ``class`` column (``by_class=None``) or ``by_class=True``.
    """
    boxes = _prepare(detections, truth, images, by_class)
    selected = boxes.det_score >= cutoff
    _, match_selected = _greedy_match(boxes.det_group[selected], boxes.det_score[selected],
                                      boxes.det_boxes[selected], boxes.truth_group, boxes.truth_boxes, iou_threshold)
    det_rows = np.flatnonzero(selected)
    tp = match_selected >= 0

    table = detections.iloc[det_rows].copy()
    table["tp"] = tp
    table["truth_row"] = np.where(tp, boxes.truth_rows[np.maximum(match_selected, 0)], -1)
    truth_table = truth.iloc[boxes.truth_rows].copy()
    detection_row = np.full(len(boxes.truth_rows), -1, dtype=np.int64)
    detection_row[match_selected[tp]] = det_rows[tp]
    truth_table["detected"] = detection_row >= 0
    truth_table["detection_row"] = detection_row

    n_images = len(boxes.images)
    det_image = boxes.det_image[selected]
    per_image = pd.DataFrame(
        {
            "truth": np.bincount(boxes.truth_image, minlength=n_images),
            "predicted": np.bincount(det_image, minlength=n_images),
            "tp": np.bincount(det_image[tp], minlength=n_images),
        },
        index=pd.Index(boxes.images, name="path"),
    )
    per_image["fp"] = per_image["predicted"] - per_image["tp"]
    per_image["fn"] = per_image["truth"] - per_image["tp"]
    return BoxMatch(table, truth_table, per_image, float(cutoff), float(iou_threshold))


def box_recall_precision(matched: BoxMatch, level: float = 0.95) -> dict:
    """Per-box recall = TP / truth boxes and precision = TP / predicted boxes, Clopper-Pearson CIs.

    Also the counts and the mean false positives per image (over all listed images).
    """
    n_images = len(matched.images)
    return {
        "cutoff": matched.cutoff,
        "iou_threshold": matched.iou_threshold,
        "images": n_images,
        "truth": matched.n_truth,
        "predicted": matched.n_predicted,
        "tp": matched.tp,
        "fp": matched.fp,
        "fn": matched.fn,
        "recall": proportion(matched.tp, matched.n_truth, level),
        "precision": proportion(matched.tp, matched.n_predicted, level),
        "fp_per_image": matched.fp / n_images if n_images else math.nan,
    }


# ---------------------------------------------------------------------------------------------
# Average precision as COCOeval


def _ranked(boxes: _Boxes, keep: np.ndarray) -> np.ndarray:
    """Positions of the kept detections by descending score, then image order, then table order.

    COCOeval's order: each image's detections sorted by score (mergesort), concatenated in image
    id order, then mergesorted by score again.
    """
    candidates = np.flatnonzero(keep)
    return candidates[np.lexsort((candidates, boxes.det_image[candidates], -boxes.det_score[candidates]))]


def class_average_precision(detections: pd.DataFrame, truth: pd.DataFrame, images, *,
                            iou_threshold: float = 0.5, max_detections: int = 100,
                            by_class: bool | None = None) -> dict:
    """AP per class as pycocotools' COCOeval (bbox, one IoU threshold, area range all, no crowd).

    All detections count (no cut-off) except beyond the ``max_detections`` highest-scored of an
    image and class (COCO's maxDets). Precision is made monotone from the right and read at the
    101 recall points 0, 0.01, ..., 1 (the first detection reaching each recall; 0 past the last
    recall reached), then averaged. Ties in score are ordered by image (the order of ``images``,
    COCO's image id order) then table order. Classes without truth boxes are left out, as COCO.
    """
    boxes = _prepare(detections, truth, images, by_class)
    kept, match = _greedy_match(boxes.det_group, boxes.det_score, boxes.det_boxes, boxes.truth_group,
                                boxes.truth_boxes, iou_threshold, max_detections)
    truth_per_class = np.bincount(boxes.truth_class, minlength=len(boxes.classes))
    result = {}
    for code, label in enumerate(boxes.classes):
        n_truth = int(truth_per_class[code])
        if n_truth == 0:
            continue
        ranked = _ranked(boxes, kept & (boxes.det_class == code))
        result[label] = _coco_precision(match[ranked] >= 0, n_truth)
    return result


def average_precision(detections: pd.DataFrame, truth: pd.DataFrame, images, *, iou_threshold: float = 0.5,
                      max_detections: int = 100, by_class: bool | None = None) -> float:
    """COCO AP at ``iou_threshold`` (AP50 by default): the mean over classes with truth boxes of
    the 101-point interpolated precision (``class_average_precision``); one class unless both
    tables have a ``class`` column. NaN when there is no truth box (COCO prints -1)."""
    curves = class_average_precision(detections, truth, images, iou_threshold=iou_threshold,
                                     max_detections=max_detections, by_class=by_class)
    if not curves:
        return math.nan
    return float(np.mean(np.stack(list(curves.values()), axis=1)))


def _coco_precision(tp: np.ndarray, n_truth: int) -> np.ndarray:
    """The 101 interpolated precisions of COCOeval.accumulate for ranked TP flags."""
    tp_sum = np.cumsum(tp, dtype=float)
    fp_sum = np.cumsum(~tp, dtype=float)
    recall = tp_sum / n_truth
    precision = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    out = np.zeros(len(RECALL_POINTS))
    inside = at < len(precision)
    out[inside] = precision[at[inside]]
    return out


# ---------------------------------------------------------------------------------------------
# FROC


@dataclass(frozen=True)
class Froc:
    """FROC curve and score.

    curve: one row per distinct score, highest first, after a first row for no detection
        (threshold inf): ``threshold``, ``tp``, ``fp``, ``sensitivity`` (TP / truth boxes) and
        ``fp_per_image`` (FP / images), the operating point of cut-off ``score >= threshold``.
    rates, sensitivities: the FP-per-image rates and the sensitivity at each.
    score: the mean of ``sensitivities``.
    """

    curve: pd.DataFrame
    rates: tuple
    sensitivities: np.ndarray
    score: float
    n_truth: int
    n_images: int


def froc(detections: pd.DataFrame, truth: pd.DataFrame, images, *, iou_threshold: float = 0.5,
         rates=FROC_RATES, by_class: bool | None = None) -> Froc:
    """Lesion sensitivity against mean false positives per image over every confidence cut-off.

    Greedy matching by score makes the matching at a cut-off the same as the matching of all
    boxes restricted to those at or above it, so one matching gives the whole curve. The
    sensitivity at a rate is the highest sensitivity among the operating points whose mean FP per
    image is <= that rate (0 when only "no detection" qualifies); the FROC score is their mean
    over ``rates`` (by default 1/8, 1/4, 1/2, 1, 2, 4 and 8 FP per image). No interpolation
    between operating points.
    """
    boxes = _prepare(detections, truth, images, by_class)
    _, match = _greedy_match(boxes.det_group, boxes.det_score, boxes.det_boxes, boxes.truth_group,
                             boxes.truth_boxes, iou_threshold)
    ranked = np.argsort(-boxes.det_score, kind="stable")
    scores = boxes.det_score[ranked]
    tp_sum = np.cumsum(match[ranked] >= 0)
    fp_sum = np.arange(1, len(ranked) + 1) - tp_sum
    last_of_score = np.flatnonzero(np.append(scores[1:] != scores[:-1], True)) if len(scores) else np.zeros(0, int)
    n_truth, n_images = len(boxes.truth_group), len(boxes.images)
    tp = np.concatenate([[0], tp_sum[last_of_score]]).astype(np.int64)
    fp = np.concatenate([[0], fp_sum[last_of_score]]).astype(np.int64)
    curve = pd.DataFrame({
        "threshold": np.concatenate([[np.inf], scores[last_of_score]]),
        "tp": tp,
        "fp": fp,
        "sensitivity": tp / n_truth if n_truth else np.full(len(tp), np.nan),
        "fp_per_image": fp / n_images if n_images else np.full(len(fp), np.nan),
    })
    rates = tuple(float(rate) for rate in rates)
    # fp_per_image never falls along the curve and sensitivity never falls: the last point within a rate is the best.
    last = np.searchsorted(curve["fp_per_image"].to_numpy(), rates, side="right") - 1
    sensitivities = curve["sensitivity"].to_numpy()[np.maximum(last, 0)]
    return Froc(curve, rates, sensitivities, float(np.mean(sensitivities)), n_truth, n_images)


# ---------------------------------------------------------------------------------------------
# Image level


def image_scores(detections: pd.DataFrame, images, empty: float = 0.0) -> pd.Series:
    """Per image the highest box confidence (``empty``, 0 by default, for an image without a box),
    indexed by path in the order of ``images``: the score of an image-level ROC."""
    _check_columns(detections, ["path", "score"], "detections")
    index = _image_index(images)
    codes = _codes(index, detections["path"].to_numpy(), "detections")
    scores = pd.to_numeric(detections["score"], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(scores).all():
        raise UserError(f"detections table: {int((~np.isfinite(scores)).sum())} scores missing or not finite")
    best = np.full(len(index), -np.inf)
    np.maximum.at(best, codes, scores)
    best[np.bincount(codes, minlength=len(index)) == 0] = empty
    return pd.Series(best, index=pd.Index(index, name="path"), name="score")
