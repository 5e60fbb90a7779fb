"""Box metrics: hand-worked IoU, matching and FROC; a brute-force matcher; AP against pycocotools."""

import contextlib
import io
import math

import numpy as np
import pandas as pd
import pytest

from tfxray.errors import UserError
from tfxray.evaluation import boxes
from tfxray.evaluation.binomial import clopper_pearson

COLUMNS = ["path", "x1", "y1", "x2", "y2"]


def detections(rows):
    """rows: (path, x1, y1, x2, y2, score[, class])."""
    columns = COLUMNS + ["score"] + (["class"] if rows and len(rows[0]) == 7 else [])
    return pd.DataFrame(rows, columns=columns)


def truth(rows):
    columns = COLUMNS + (["class"] if rows and len(rows[0]) == 6 else [])
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------------------------
# IoU


def test_iou_hand_worked():
    a = [[0, 0, 2, 2]]
    cases = {
        "overlapping": ([1, 1, 3, 3], 1 / 7),  # intersection 1, union 4 + 4 - 1
        "touching edge": ([2, 0, 4, 2], 0.0),
        "touching corner": ([2, 2, 3, 3], 0.0),
        "disjoint": ([5, 5, 6, 6], 0.0),
        "contained": ([0.5, 0.5, 1.5, 1.5], 1 / 4),  # 1 / 4, continuous coordinates, no +1
        "identical": ([0, 0, 2, 2], 1.0),
        "half": ([1, 0, 3, 2], 2 / 6),
    }
    matrix = boxes.iou(a, [box for box, _ in cases.values()])
    assert matrix.shape == (1, len(cases))
    np.testing.assert_allclose(matrix[0], [value for _, value in cases.values()], rtol=0, atol=1e-15)
    # symmetric, and (n, m) shaped
    other = np.array([[1, 1, 3, 3], [0, 0, 1, 1], [10, 10, 12, 12]], dtype=float)
    matrix = boxes.iou([[0, 0, 2, 2], [0, 0, 4, 4]], other)
    assert matrix.shape == (2, 3)
    np.testing.assert_allclose(matrix, boxes.iou(other, [[0, 0, 2, 2], [0, 0, 4, 4]]).T)
    np.testing.assert_allclose(matrix, [[1 / 7, 1 / 4, 0], [4 / 16, 1 / 16, 0]])


def test_iou_empty_and_degenerate():
    assert boxes.iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert boxes.iou([[0, 0, 1, 1]], []).shape == (1, 0)
    # zero-area boxes: 0, not NaN (as pycocotools)
    assert boxes.iou([[1, 1, 1, 1]], [[1, 1, 1, 1]])[0, 0] == 0.0
    assert boxes.iou([[0, 0, 2, 2]], [[1, 1, 1, 2]])[0, 0] == 0.0
    with pytest.raises(UserError, match="shape"):
        boxes.iou([[0, 0, 1]], [[0, 0, 1, 1]])


# ---------------------------------------------------------------------------------------------
# Matching


def test_two_predictions_on_one_truth_one_tp_one_fp():
    dets = detections([("a", 0, 0, 10, 10, 0.9), ("a", 1, 0, 11, 10, 0.8)])
    result = boxes.match_boxes(dets, truth([("a", 0, 0, 10, 10)]), ["a"], 0.0)
    assert result.detections["tp"].tolist() == [True, False]
    assert result.detections["truth_row"].tolist() == [0, -1]
    assert result.truth["detection_row"].tolist() == [0]
    assert (result.tp, result.fp, result.fn) == (1, 1, 0)


def test_lower_scored_better_iou_prediction_comes_second():
    # truth [0, 0, 10, 10]; A (0.9) IoU 60/100... = 0.6, B (0.8) IoU 1: greedy by score, A takes it.
    dets = detections([("a", 0, 0, 10, 10, 0.8), ("a", 0, 0, 10, 6, 0.9)])
    result = boxes.match_boxes(dets, truth([("a", 0, 0, 10, 10)]), ["a"], 0.0)
    assert result.detections["tp"].tolist() == [False, True]
    assert result.truth["detection_row"].tolist() == [1]


def test_best_unmatched_truth_and_a_cut_off():
    # T0 = [0, 0, 10, 10], T1 = [4, 0, 14, 10]. A = [2, 0, 12, 10] (0.9): IoU 80/120 with T0 and
    # 80/120 with T1 too; B = [4, 0, 15, 10] (0.7): IoU with T1 = 100/110, with T0 = 60/150.
    # C = [0, 0, 10, 9] (0.5): IoU 0.9 with T0. IoU ties go to the later truth row (COCOeval), so
    # A takes T1, B finds T1 taken and T0 below 0.5: FP; C takes T0.
    dets = detections([
        ("a", 2, 0, 12, 10, 0.9),
        ("a", 4, 0, 15, 10, 0.7),
        ("a", 0, 0, 10, 9, 0.5),
        ("b", 0, 0, 5, 5, 0.95),  # an image without truth: FP
    ])
    ref = truth([("a", 0, 0, 10, 10), ("a", 4, 0, 14, 10)])
    images = ["a", "b", "c"]  # c: no box at all, still an image
    result = boxes.match_boxes(dets, ref, images, 0.5)
    assert result.detections["tp"].tolist() == [True, False, True, False]
    assert result.detections["truth_row"].tolist() == [1, -1, 0, -1]
    assert result.images.loc["a"].to_dict() == {"truth": 2, "predicted": 3, "tp": 2, "fp": 1, "fn": 0}
    assert result.images.loc["b"].to_dict() == {"truth": 0, "predicted": 1, "tp": 0, "fp": 1, "fn": 0}
    assert result.images.loc["c"].to_dict() == {"truth": 0, "predicted": 0, "tp": 0, "fp": 0, "fn": 0}
    # Cut-off 0.6 leaves C out: T0 is missed, C is not counted at all.
    cut = boxes.match_boxes(dets, ref, images, 0.6)
    assert cut.detections.index.tolist() == [0, 1, 3]
    assert cut.detections["tp"].tolist() == [True, False, False]
    assert (cut.tp, cut.fp, cut.fn, cut.n_truth, cut.n_predicted) == (1, 2, 1, 2, 3)
    assert cut.truth["detected"].tolist() == [False, True]
    summary = boxes.box_recall_precision(cut)
    assert summary["recall"]["value"] == 0.5 and summary["precision"]["value"] == 1 / 3
    assert (summary["recall"]["lower"], summary["recall"]["upper"]) == clopper_pearson(1, 2)
    assert (summary["precision"]["lower"], summary["precision"]["upper"]) == clopper_pearson(1, 3)
    assert summary["fp_per_image"] == 2 / 3


def test_iou_ties_go_to_the_later_truth_row():
    # D1 has IoU exactly 0.5 with T0 and T1; D2 overlaps T0 only. D1 takes T1 (the later row), so
    # D2 still finds T0: two TPs. Taking the first tied row would leave D2 a false positive.
    dets = detections([("a", 0, 0, 4, 4, 0.9), ("a", 0, 0, 4, 2, 0.8)])
    ref = truth([("a", 0, 0, 4, 2), ("a", 0, 2, 4, 4)])
    result = boxes.match_boxes(dets, ref, ["a"], 0.0)
    assert result.detections["truth_row"].tolist() == [1, 0]
    assert boxes.average_precision(dets, ref, ["a"]) == 1.0
    try:
        import pycocotools  # noqa: F401
    except ImportError:
        return
    assert coco_ap(dets, ref, ["a"]) == 1.0


def test_classes_match_separately():
    dets = detections([("a", 0, 0, 10, 10, 0.9, "neck"), ("a", 0, 0, 10, 10, 0.8, "shaft")])
    ref = truth([("a", 0, 0, 10, 10, "shaft")])
    assert boxes.match_boxes(dets, ref, ["a"], 0.0).detections["tp"].tolist() == [False, True]
    assert boxes.match_boxes(dets, ref, ["a"], 0.0, by_class=False).detections["tp"].tolist() == [True, False]


def test_empty_truth_rows_and_errors():
    ref = truth([("a", 0, 0, 10, 10), ("b", np.nan, np.nan, np.nan, np.nan)])
    result = boxes.match_boxes(detections([("b", 0, 0, 1, 1, 0.9)]), ref, ["a", "b"], 0.5)
    assert result.truth.index.tolist() == [0]
    assert (result.tp, result.fp, result.fn) == (0, 1, 1)
    with pytest.raises(UserError, match="not in the image list"):
        boxes.match_boxes(detections([("z", 0, 0, 1, 1, 0.9)]), ref, ["a", "b"], 0.5)
    with pytest.raises(UserError, match="x2 < x1"):
        boxes.match_boxes(detections([("a", 2, 0, 1, 1, 0.9)]), ref, ["a", "b"], 0.5)
    with pytest.raises(UserError, match="duplicated"):
        boxes.match_boxes(detections([]), ref, ["a", "a"], 0.5)
    with pytest.raises(UserError, match="missing columns"):
        boxes.match_boxes(pd.DataFrame({"path": ["a"]}), ref, ["a", "b"], 0.5)
    empty = boxes.match_boxes(detections([]), ref, ["a", "b"], 0.5)
    assert (empty.tp, empty.fp, empty.fn) == (0, 0, 1)


# ---------------------------------------------------------------------------------------------
# Random data: a brute-force matcher and pycocotools


def random_data(seed, n_images=40, integer=True, classes=None, max_dets=6):
    """Images with 0-3 truth boxes (some none), 0-max_dets detections near them or anywhere, tied scores."""
    rng = np.random.default_rng(seed)
    images = [f"img{i:03d}.png" for i in rng.permutation(n_images)]
    truth_rows, det_rows = [], []

    def box(center=None):
        if center is None:
            x, y = rng.uniform(0, 40, 2)
            w, h = rng.uniform(2, 15, 2)
        else:
            x, y, w, h = center
            x, y = x + rng.normal(0, 2, 2)
            w, h = np.maximum([w + rng.normal(0, 2), h + rng.normal(0, 2)], 1)
        if integer:
            x, y, w, h = np.round([x, y, w, h])
            w, h = max(w, 1), max(h, 1)
        return [float(x), float(y), float(x + w), float(y + h)]

    for path in images:
        truths = []
        for _ in range(rng.integers(0, 4)):
            b = box()
            truths.append(b)
            label = [str(rng.choice(classes))] if classes else []
            truth_rows.append([path, *b, *label])
        if truths and rng.random() < 0.1:  # an exact duplicate truth box now and then
            truth_rows.append(list(truth_rows[-1]))
        for _ in range(rng.integers(0, max_dets + 1)):
            if truths and rng.random() < 0.6:
                t = truths[rng.integers(len(truths))]
                b = box((t[0], t[1], t[2] - t[0], t[3] - t[1]))
            else:
                b = box()
            label = [str(rng.choice(classes))] if classes else []
            det_rows.append([path, *b, float(np.round(rng.random(), 1)), *label])
    det = pd.DataFrame(det_rows, columns=COLUMNS + ["score"] + (["class"] if classes else []))
    ref = pd.DataFrame(truth_rows, columns=COLUMNS + (["class"] if classes else []))
    return det, ref, images


def brute_force_match(det, ref, cutoff, threshold=0.5, by_class=False):
    """Plain loops: per image (and class), by score then row; best unmatched IoU, ties to the later row."""
    flags, matched = {}, set()
    groups = {}
    for i in range(len(det)):
        row = det.iloc[i]
        if row["score"] >= cutoff:
            groups.setdefault((row["path"], row["class"] if by_class else None), []).append(i)
    for key, members in groups.items():
        members.sort(key=lambda i: (-det["score"].iloc[i], i))
        candidates = [j for j in range(len(ref)) if ref["path"].iloc[j] == key[0]
                      and (not by_class or ref["class"].iloc[j] == key[1])]
        for i in members:
            d = det.iloc[i]
            best, best_iou = -1, threshold
            for j in candidates:
                if j in matched:
                    continue
                t = ref.iloc[j]
                w = min(d.x2, t.x2) - max(d.x1, t.x1)
                h = min(d.y2, t.y2) - max(d.y1, t.y1)
                if w <= 0 or h <= 0:
                    continue
                inter = w * h
                value = inter / ((d.x2 - d.x1) * (d.y2 - d.y1) + (t.x2 - t.x1) * (t.y2 - t.y1) - inter)
                if value >= best_iou:
                    best, best_iou = j, value
            flags[i] = best
            if best >= 0:
                matched.add(best)
    return flags


@pytest.mark.parametrize("seed", range(6))
def test_per_box_recall_precision_against_brute_force(seed):
    by_class = seed >= 4
    det, ref, images = random_data(seed, integer=seed % 2 == 0, classes=["neck", "shaft"] if by_class else None)
    for cutoff in (0.0, 0.3, 0.55, 0.9):
        expected = brute_force_match(det, ref, cutoff, by_class=by_class)
        result = boxes.match_boxes(det, ref, images, cutoff)
        assert result.detections.index.tolist() == sorted(expected)
        assert result.detections["truth_row"].tolist() == [expected[i] for i in sorted(expected)]
        tp = sum(j >= 0 for j in expected.values())
        summary = boxes.box_recall_precision(result)
        assert (summary["tp"], summary["fp"], summary["fn"]) == (tp, len(expected) - tp, len(ref) - tp)
        assert summary["recall"]["value"] == tp / len(ref)
        assert (summary["recall"]["lower"], summary["recall"]["upper"]) == clopper_pearson(tp, len(ref))
        if expected:
            assert summary["precision"]["value"] == tp / len(expected)
            assert (summary["precision"]["lower"], summary["precision"]["upper"]) == clopper_pearson(tp, len(expected))
        per_image_fp = {path: 0 for path in images}
        for i, j in expected.items():
            per_image_fp[det["path"].iloc[i]] += j < 0
        assert result.images["fp"].to_dict() == per_image_fp


def coco_ap(det, ref, images, max_dets=100, by_class=False):
    """pycocotools' COCOeval AP at IoU 0.5, area range all, maxDets as given."""
    coco = pytest.importorskip("pycocotools.coco", reason="pycocotools is not installed (pip install pycocotools)")
    from pycocotools.cocoeval import COCOeval

    image_id = {path: i + 1 for i, path in enumerate(images)}  # COCO's tie order: image id
    labels = sorted(set(ref["class"]) | set(det["class"])) if by_class else [None]
    category = {label: k + 1 for k, label in enumerate(labels)}

    def cat(row):
        return category[row["class"]] if by_class else 1

    annotations = [
        {"id": j + 1, "image_id": image_id[row["path"]], "category_id": cat(row), "iscrowd": 0,
         "bbox": [row.x1, row.y1, row.x2 - row.x1, row.y2 - row.y1],
         "area": (row.x2 - row.x1) * (row.y2 - row.y1)}
        for j, (_, row) in enumerate(ref.iterrows())
    ]
    results = [
        {"image_id": image_id[row["path"]], "category_id": cat(row), "score": row.score,
         "bbox": [row.x1, row.y1, row.x2 - row.x1, row.y2 - row.y1]}
        for _, row in det.iterrows()
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco.COCO()
        gt.dataset = {"images": [{"id": i} for i in image_id.values()],
                      "categories": [{"id": k} for k in category.values()], "annotations": annotations}
        gt.createIndex()
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.params.iouThrs = np.array([0.5])
        evaluator.params.areaRng = [[0, 1e10]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.params.maxDets = [max_dets]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, :, 0, 0]
    return float(np.mean(precision[precision > -1]))


@pytest.mark.parametrize("seed", range(8))
def test_average_precision_matches_pycocotools(seed):
    by_class = seed in (2, 5)
    det, ref, images = random_data(100 + seed, n_images=60, integer=seed % 2 == 0, max_dets=8,
                                   classes=["neck", "shaft", "head"] if by_class else None)
    assert det["score"].duplicated().any() and (~pd.Index(images).isin(ref["path"])).any()
    for max_dets in (100, 3):
        expected = coco_ap(det, ref, images, max_dets, by_class)
        got = boxes.average_precision(det, ref, images, max_detections=max_dets)
        assert abs(got - expected) <= 1e-9, (max_dets, got, expected)


def test_average_precision_hand_worked():
    # Two truth boxes; ranked TP, FP, TP: recall .5 .5 1, precision 1 .5 2/3 -> interpolated 1, 2/3, 2/3.
    # Recall points 0..0.50 (51) read precision 1, 0.51..1 (50) read 2/3.
    ref = truth([("a", 0, 0, 10, 10), ("b", 0, 0, 10, 10)])
    dets = detections([("a", 0, 0, 10, 10, 0.9), ("c", 0, 0, 10, 10, 0.8), ("b", 0, 0, 10, 10, 0.7)])
    assert boxes.average_precision(dets, ref, ["a", "b", "c"]) == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-12)
    assert math.isnan(boxes.average_precision(dets, truth([]), ["a", "b", "c"]))
    assert boxes.average_precision(detections([]), ref, ["a", "b", "c"]) == 0.0


def test_average_precision_ties_follow_coco(seed=7):
    # Many equal scores across images: the order images are listed decides COCO's tie order.
    pytest.importorskip("pycocotools", reason="pycocotools is not installed (pip install pycocotools)")
    det, ref, images = random_data(seed, n_images=50, integer=True)
    det["score"] = np.where(det["score"] > 0.5, 0.75, 0.25)
    for order in (images, sorted(images), images[::-1]):
        assert abs(boxes.average_precision(det, ref, order) - coco_ap(det, ref, order)) <= 1e-9


# ---------------------------------------------------------------------------------------------
# FROC and image scores


def froc_example():
    # Four images, four lesions: A 1, B 2, C none, D 1 (never found).
    ref = truth([("A", 10, 10, 20, 20), ("B", 10, 10, 20, 20), ("B", 40, 40, 50, 50), ("D", 0, 0, 5, 5)])
    dets = detections([
        ("A", 10, 10, 20, 20, 0.9),  # TP
        ("A", 60, 60, 70, 70, 0.4),  # FP
        ("B", 11, 10, 21, 20, 0.8),  # TP (IoU 90/110)
        ("B", 10, 11, 20, 21, 0.7),  # FP: second box on the same lesion
        ("B", 40, 40, 50, 50, 0.3),  # TP
        ("C", 0, 0, 5, 5, 0.6),  # FP
        ("C", 30, 30, 35, 35, 0.3),  # FP, tied with B's TP
    ])
    return dets, ref, ["A", "B", "C", "D"]


def test_froc_hand_worked():
    # Ranked: .9 TP, .8 TP, .7 FP, .6 FP, .4 FP, .3 TP + FP (one cut-off). Points (sensitivity,
    # FP/image): (0, 0) (.25, 0) (.5, 0) (.5, .25) (.5, .5) (.5, .75) (.75, 1).
    # At 1/8, 1/4, 1/2: .5; at 1, 2, 4, 8: .75 (FP/image 1.0 <= 1). Score (3 * .5 + 4 * .75) / 7.
    result = boxes.froc(*froc_example())
    curve = result.curve
    assert curve["threshold"].tolist() == [np.inf, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3]
    assert curve["sensitivity"].tolist() == [0, 0.25, 0.5, 0.5, 0.5, 0.5, 0.75]
    assert curve["fp_per_image"].tolist() == [0, 0, 0, 0.25, 0.5, 0.75, 1.0]
    assert result.rates == (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    assert result.sensitivities.tolist() == [0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 0.75]
    assert result.score == pytest.approx(4.5 / 7, abs=1e-15)
    # The tied cut-off 0.3 takes the TP and the FP together: no point at (.75, .75).
    assert boxes.froc(*froc_example(), rates=(0.75, 0.01)).sensitivities.tolist() == [0.5, 0.5]
    # The curve's points are the matching at each cut-off.
    dets, ref, images = froc_example()
    for _, point in curve.iloc[1:].iterrows():
        matched = boxes.match_boxes(dets, ref, images, point["threshold"])
        assert (matched.tp, matched.fp) == (point["tp"], point["fp"])


def test_image_scores():
    dets, _, images = froc_example()
    scores = boxes.image_scores(dets, images)
    assert scores.to_dict() == {"A": 0.9, "B": 0.8, "C": 0.6, "D": 0.0}
    assert scores.index.tolist() == images
    assert boxes.image_scores(detections([]), ["x"]).tolist() == [0.0]
