"""A detector's evaluation: hand-worked per-image and per-box numbers, McNemar, the report, the CLI.

The hand-built set (paths need not exist for the numbers): three fracture images, three normal.

    p1: reference A (10,10,50,50);  boxes (12,12,50,50) 0.90 -> IoU 1444/1600, TP;  (70,70,90,90) 0.30
    p2: reference B (20,20,60,60);  box (40,40,80,80) 0.60 -> IoU 400/2800 = 1/7, a false positive
    p3: references C (10,10,30,30), D (60,60,90,90);  boxes on C 0.80 (TP) and on D 0.25 (TP, below 0.4)
    n1: box 0.70 (FP);  n2: box 0.20;  n3: no box (image score 0)

Image scores 0.9, 0.6, 0.8 | 0.7, 0.2, 0: AUC = 8/9 (0.6 loses to 0.7 only). At the cut-off 0.4:
all three fracture images are called (sensitivity 1), n1 is (specificity 2/3); the boxes >= 0.4 are
0.9 TP, 0.8 TP, 0.7 FP, 0.6 FP: recall 2/4, precision 2/4, FP per image 2/6.
AP50: ranked 0.9 T, 0.8 T, 0.7 F, 0.6 F, 0.3 F, 0.25 T, 0.2 F over 4 lesions: recall 1/4, 1/2, ..., 3/4;
interpolated precision 1 up to recall 0.5 (51 of COCO's 101 points), 1/2 from 0.51 to 0.75 (25
points), 0 beyond: AP = (51 + 12.5) / 101.
FROC: FP per image 0, 0, 1/6, 2/6, 3/6, 3/6, 4/6 with sensitivity 1/4, 1/2, 1/2, 1/2, 1/2, 3/4, 3/4:
0.5 at 1/8 and 1/4, 0.75 from 1/2 on: score (2 x 0.5 + 5 x 0.75) / 7.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from cli.main import cli
from tfxray.errors import UserError
from tfxray.evaluation import delong
from tfxray.evaluation.detection import (align_detections, compare_detections, evaluate_detections,
                                         format_comparison, format_detection_summary, mcnemar_exact,
                                         read_detections_csv, write_comparison, write_detection_report)

FAST = {"n_bootstrap": 200}
NAMES = ["p1", "p2", "p3", "n1", "n2", "n3"]
TRUTH = [("p1", 10, 10, 50, 50), ("p2", 20, 20, 60, 60), ("p3", 10, 10, 30, 30), ("p3", 60, 60, 90, 90)]
BOXES = [("p1", 12, 12, 50, 50, 0.9), ("p1", 70, 70, 90, 90, 0.3), ("p2", 40, 40, 80, 80, 0.6),
         ("p3", 10, 10, 30, 30, 0.8), ("p3", 60, 60, 90, 90, 0.25), ("n1", 5, 5, 25, 25, 0.7),
         ("n2", 0, 0, 10, 10, 0.2)]
AP50 = 63.5 / 101
FROC_SENSITIVITIES = [0.5, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75]


def hand_set(folder="/data/xr"):
    path = {n: f"{folder}/{n}.png" for n in NAMES}
    images = pd.DataFrame({"path": [path[n] for n in NAMES], "label": ["fracture"] * 3 + ["normal"] * 3})
    truth = pd.DataFrame([(path[n], *box) for n, *box in TRUTH], columns=["path", "x1", "y1", "x2", "y2"])
    detections = pd.DataFrame([(path[n], *rest) for n, *rest in BOXES],
                              columns=["path", "x1", "y1", "x2", "y2", "score"])
    return detections, images, truth


@pytest.fixture(scope="module")
def hand_report():
    detections, images, truth = hand_set()
    return evaluate_detections(detections, images, truth, positive="fracture", cutoff=0.4, **FAST)


def test_hand_worked_numbers(hand_report):
    r = hand_report
    assert r["auc"] == pytest.approx(8 / 9, abs=1e-12)
    assert r["sensitivity"] == 1.0 and r["specificity"] == pytest.approx(2 / 3)
    assert r["box_recall"] == 0.5 and r["box_precision"] == 0.5
    assert r["ap50"] == pytest.approx(AP50, abs=1e-12)
    assert r["froc_score"] == pytest.approx((2 * 0.5 + 5 * 0.75) / 7, abs=1e-12)
    assert r["detection"]["froc"]["sensitivities"] == pytest.approx(FROC_SENSITIVITIES)
    assert r["counts"] == {
        "images": 6, "positive_images": 3, "negative_images": 3, "images_with_reference_boxes": 3,
        "positive_images_without_boxes": 0, "negative_images_with_boxes": 0, "reference_boxes": 4,
        "predicted_boxes": 7, "predicted_at_cutoff": 4, "tp": 2, "fp": 2, "fn": 2, "fp_per_image": pytest.approx(1 / 3)}
    # exact CIs, from scipy directly
    exact = stats.binomtest(2, 4).proportion_ci(0.95, method="exact")
    assert (r["box_recall_ci"]["lower"], r["box_recall_ci"]["upper"]) == pytest.approx((exact.low, exact.high))
    assert (r["box_precision_ci"]["k"], r["box_precision_ci"]["n"]) == (2, 4)
    spec = stats.binomtest(2, 3).proportion_ci(0.95, method="exact")
    assert (r["specificity_ci"]["lower"], r["specificity_ci"]["upper"]) == pytest.approx((spec.low, spec.high))
    # the per-image section is a classifier report at the cut-off as a fixed threshold
    model = r["levels"]["image"]["models"]["max_box_score"]
    assert r["settings"]["threshold_rule"] == "0.4"
    assert model["operating_point"]["tp"] == 3 and model["operating_point"]["fp"] == 1
    assert r["auc_ci"]["method"] == "delong"
    # the cut-off's point on the FROC and PR curves
    assert r["detection"]["froc"]["at_cutoff"] == {"fp_per_image": pytest.approx(2 / 6), "sensitivity": 0.5}
    assert r["detection"]["pr"]["at_cutoff"] == {"recall": 0.5, "precision": 0.5}


def test_ap_and_auc_against_independent_implementations(hand_report):
    from sklearn.metrics import roc_auc_score

    assert hand_report["auc"] == pytest.approx(roc_auc_score([1, 1, 1, 0, 0, 0], [0.9, 0.6, 0.8, 0.7, 0.2, 0.0]))
    coco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    import contextlib
    import io

    ids = {n: i + 1 for i, n in enumerate(NAMES)}
    gt = coco.COCO()
    gt.dataset = {"images": [{"id": i} for i in ids.values()], "categories": [{"id": 1}],
                  "annotations": [{"id": k + 1, "image_id": ids[n], "category_id": 1, "iscrowd": 0,
                                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}
                                  for k, (n, x1, y1, x2, y2) in enumerate(TRUTH)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes([{"image_id": ids[n], "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
                         for n, x1, y1, x2, y2, s in BOXES])
        ev = cocoeval.COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert hand_report["ap50"] == pytest.approx(ev.stats[1], abs=1e-9)


def test_report_keys_and_json(hand_report):
    for key in ("auc", "box_recall", "box_precision", "ap50", "froc_score"):
        assert isinstance(hand_report[key], float), key
    for key in ("auc_ci", "box_recall_ci", "box_precision_ci", "sensitivity_ci", "specificity_ci"):
        assert {"lower", "upper"} <= set(hand_report[key]), key
    assert hand_report["kind"] == "detection" and hand_report["task"] == "binary"
    json.dumps(hand_report, allow_nan=False)
    summary = format_detection_summary(hand_report)
    assert "AUC 0.889" in summary and "box recall 0.500" in summary and "AP50 0.629" in summary
    assert "FROC score 0.679" in summary


def test_iou_option_moves_the_matching_not_ap50():
    detections, images, truth = hand_set()
    r = evaluate_detections(detections, images, truth, positive="fracture", cutoff=0.4, iou_threshold=0.1, **FAST)
    assert (r["counts"]["tp"], r["counts"]["fp"], r["counts"]["fn"]) == (3, 1, 1)  # p2's box (IoU 1/7) now counts
    assert r["box_recall"] == 0.75 and r["box_precision"] == 0.75
    assert r["ap50"] == pytest.approx(AP50)
    assert r["detection"]["ap_at_iou"] > r["ap50"]


def test_cutoff_with_no_box_and_empty_detections():
    detections, images, truth = hand_set()
    r = evaluate_detections(detections.iloc[:0], images, truth, positive="fracture", cutoff=0.5, **FAST)
    assert r["auc"] == 0.5 and r["box_recall"] == 0.0 and r["box_precision"] is None
    assert r["ap50"] == 0.0 and r["froc_score"] == 0.0
    assert r["box_precision_ci"]["lower"] is None


def test_long_curves_are_thinned_when_no_box_reaches_the_cutoff():
    """More PR points than the report keeps, and the cut-off above every box (a detector that has not learnt
    yet, as a generic one on new anatomy): the curves are thinned without an operating point to keep."""
    from tfxray.evaluation.report import ROC_POINTS_KEPT

    rng = np.random.default_rng(0)
    paths = [f"/data/xr/{i}.png" for i in range(60)]
    images = pd.DataFrame({"path": paths, "label": ["fracture"] * 30 + ["normal"] * 30})
    truth = pd.DataFrame({"path": paths[:30], "x1": 10.0, "y1": 10.0, "x2": 40.0, "y2": 40.0})
    n = ROC_POINTS_KEPT + 500
    corner = rng.uniform(0, 60, (n, 2))
    detections = pd.DataFrame({"path": rng.choice(paths, n), "x1": corner[:, 0], "y1": corner[:, 1],
                               "x2": corner[:, 0] + 30, "y2": corner[:, 1] + 30, "score": rng.uniform(0, 0.3, n)})
    r = evaluate_detections(detections, images, truth, positive="fracture", cutoff=0.4, **FAST)
    pr = r["detection"]["pr"]
    assert r["box_recall"] == 0.0 and pr["at_cutoff"]["recall"] == 0.0
    curve = pr["curve"]
    assert curve["thinned"] and curve["n_points"] > ROC_POINTS_KEPT
    assert len(curve["precision"]) == ROC_POINTS_KEPT


def test_a_detector_worse_than_chance_still_calls_score_at_or_above_the_cutoff():
    detections, images, truth = hand_set()
    inverted = detections.assign(path=detections["path"].map(
        {f"/data/xr/{a}.png": f"/data/xr/{b}.png" for a, b in zip(NAMES, NAMES[3:] + NAMES[:3])}))
    r = evaluate_detections(inverted, images, truth, positive="fracture", cutoff=0.4, **FAST)
    op = r["levels"]["image"]["models"]["max_box_score"]["operating_point"]
    # fracture images now carry n1..n3's scores (0.7, 0.2, 0): one of three at or above 0.4
    assert (op["tp"], op["fp"]) == (1, 3)
    # a detector's image score is higher = positive: the curve is not flipped to 8/9; by hand, of the nine
    # (fracture, normal) pairs only 0.7 > 0.6 goes the detector's way: AUC 1/9
    assert r["levels"]["image"]["models"]["max_box_score"]["direction"] == "<"
    assert r["auc"] == pytest.approx(1 / 9)
    assert r["settings"]["direction"] == "higher"
    assert any(n.startswith("warning: image level, max_box_score: AUC 0.111 is below 0.5") for n in r["notes"])


def test_notes_for_unboxed_positives():
    detections, images, truth = hand_set()
    r = evaluate_detections(detections, images, truth[truth["path"] != "/data/xr/p2.png"], positive="fracture",
                            cutoff=0.4, **FAST)
    assert r["counts"]["positive_images_without_boxes"] == 1
    assert any("1 fracture image(s) have no reference box" in n for n in r["notes"])


# ---------------------------------------------------------------------------------------------
# paths and refusals


def test_paths_match_by_real_file(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"x")
    os.symlink(tmp_path / "images", tmp_path / "link")
    manifest_paths = [str(tmp_path / "images" / "a.png")]
    detections = pd.DataFrame({"path": [str(tmp_path / "link" / "a.png"), str(tmp_path / "images" / ".." / "images"
                                                                             / "a.png")],
                               "x1": [0, 0], "y1": [0, 0], "x2": [1, 1], "y2": [1, 1], "score": [0.5, 0.6]})
    aligned = align_detections(detections, manifest_paths)
    assert aligned["path"].tolist() == manifest_paths * 2


def test_read_detections_resolves_relative_paths(tmp_path):
    (tmp_path / "boxes.csv").write_text("path,frame,x1,y1,x2,y2,score,class\nimages/a.png,0,1,2,3,4,0.5,fracture\n"
                                        f"{tmp_path}/b.png,0,1,2,3,4,0.25,fracture\n")
    table = read_detections_csv(tmp_path / "boxes.csv")
    assert table["path"].tolist() == [str(tmp_path / "images" / "a.png"), str(tmp_path / "b.png")]
    (tmp_path / "bad.csv").write_text("path,x1,y1,x2,y2,score\na.png,1,2,3,4,high\n")
    with pytest.raises(UserError, match="column score: 1 values are not finite numbers"):
        read_detections_csv(tmp_path / "bad.csv")
    (tmp_path / "short.csv").write_text("path,x1,y1,score\na.png,1,2,0.5\n")
    with pytest.raises(UserError, match="missing column"):
        read_detections_csv(tmp_path / "short.csv")


@pytest.mark.parametrize("change, message", [
    (lambda d: pd.concat([d, d.iloc[:1].assign(path="/elsewhere/x.png")]),
     r"1 path\(s\) not in the truth manifest \(1 boxes\), first: /elsewhere/x.png"),
    (lambda d: d.assign(frame=[0, 0, 1, 0, 0, 0, 0]), "1 boxes on a frame other than 0"),
    (lambda d: d.assign(score=d["score"] * 10), "scores outside"),
    (lambda d: d.assign(**{"class": ["a", "b", "a", "a", "a", "a", "a"]}), "2 classes"),
])
def test_refused_detections(change, message):
    detections, images, truth = hand_set()
    with pytest.raises(UserError, match=message):
        evaluate_detections(change(detections), images, truth, positive="fracture", cutoff=0.4, **FAST)


def test_refused_settings():
    detections, images, truth = hand_set()
    with pytest.raises(UserError, match="no reference boxes"):
        evaluate_detections(detections, images, truth.iloc[:0], positive="fracture", cutoff=0.4, **FAST)
    with pytest.raises(UserError, match=r"cut-off: 1.5 is not in \[0, 1\]"):
        evaluate_detections(detections, images, truth, positive="fracture", cutoff=1.5, **FAST)
    with pytest.raises(UserError, match="positive 'broken'"):
        evaluate_detections(detections, images, truth, positive="broken", cutoff=0.4, **FAST)


# ---------------------------------------------------------------------------------------------
# two detectors


def test_mcnemar_exact_hand_worked():
    # b = 7, c = 1: two-sided exact p = 2 * P(X <= 1 | 8, 1/2) = 2 * 9 / 256
    assert mcnemar_exact(7, 1) == pytest.approx(0.0703125, abs=1e-15)
    assert mcnemar_exact(1, 7) == pytest.approx(0.0703125, abs=1e-15)
    assert mcnemar_exact(3, 0) == pytest.approx(0.25, abs=1e-15)  # 2 * (1/2)^3
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0


def test_compare_detections():
    # 10 positive images: both call 2, only A 7, only B 1, neither 0; 6 negatives: A calls 3 of them, B none
    labels = np.array([1] * 10 + [0] * 6, dtype=bool)
    a = np.array([0.9, 0.8] + [0.7] * 7 + [0.1] + [0.6, 0.5, 0.45, 0.1, 0.1, 0.1])
    b = np.array([0.9, 0.8] + [0.2] * 7 + [0.6] + [0.1, 0.1, 0.1, 0.3, 0.3, 0.3])
    result = compare_detections(a, b, labels, 0.4, 0.5, names=("run_a", "run_b"))
    sens, spec = result["sensitivity"], result["specificity"]
    assert (sens["b"], sens["c"], sens["both_correct"], sens["neither_correct"]) == (7, 1, 2, 0)
    assert sens["p"] == pytest.approx(0.0703125, abs=1e-15)
    assert sens["run_a"]["value"] == 0.9 and sens["run_b"]["value"] == 0.3
    assert (spec["b"], spec["c"], spec["both_correct"]) == (0, 3, 3)
    assert spec["p"] == pytest.approx(0.25, abs=1e-15)
    expected = delong.paired_test(labels, a, b, 0.95, ("<", "<"))
    assert result["auc"]["z"] == pytest.approx(expected["z"]) and result["auc"]["p"] == pytest.approx(expected["p"])
    assert "b 7, c 1, p 0.07031" in format_comparison(result)


def test_compare_refusals_and_writer(tmp_path):
    with pytest.raises(UserError, match="score the same images"):
        compare_detections([0.1, 0.2], [0.3], [1, 0], 0.5, 0.5)
    result = compare_detections([0.9, 0.1], [0.8, 0.2], [1, 0], 0.5, 0.5)
    assert result["auc"] is None and "at least 2 of each" in result["notes"][0]
    paths = write_comparison(result, tmp_path)
    assert json.loads(paths["comparison.json"].read_text())["sensitivity"]["p"] == 1.0
    assert "McNemar (exact)" in paths["comparison.md"].read_text()


def test_write_detection_report(hand_report, tmp_path):
    detections, images, truth = hand_set()
    comparison = compare_detections([0.9, 0.6, 0.8, 0.7, 0.2, 0.0], [0.8, 0.7, 0.9, 0.1, 0.2, 0.3],
                                    [1, 1, 1, 0, 0, 0], 0.4, 0.4, names=("this", "other"))
    paths = write_detection_report(hand_report, tmp_path, detections, images, truth, roc_only=True,
                                   comparison=comparison)
    assert {p.name for p in tmp_path.iterdir()} == {"report.json", "report.md", "per_image.csv", "froc.png", "pr.png",
                                                    "froc.svg", "pr.svg", "roc_image_max_box_score.png",
                                                    "roc_image_max_box_score.svg"}
    assert set(paths) == {p.name for p in tmp_path.iterdir()}
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["ap50"] == pytest.approx(AP50) and saved["comparison"]["models"] == ["this", "other"]
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.startswith("# Detector evaluation report")
    assert "| Box recall (lesion sensitivity) | 0.500 (0.068–0.932) |" in markdown
    assert "![froc.png](froc.png)" in markdown and "## Comparison: this vs other" in markdown
    per_image = pd.read_csv(tmp_path / "per_image.csv")
    assert per_image[["tp", "fp", "fn"]].sum().tolist() == [2, 2, 2]
    assert per_image["max_box_score"].tolist() == [0.9, 0.6, 0.8, 0.7, 0.2, 0.0]
    assert per_image["called_positive"].tolist() == [True, True, True, True, False, False]


# ---------------------------------------------------------------------------------------------
# the command


@pytest.fixture()
def on_disk(tmp_path):
    """The hand set as PNG files under images/, a manifest and a boxes.csv with relative paths."""
    from PIL import Image

    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    for name in NAMES:
        pixels = np.full((100, 120), 90, np.uint8)
        for n, x1, y1, x2, y2 in TRUTH:
            if n == name:
                pixels[y1:y2, x1:x2] = 220
        Image.fromarray(pixels).save(folder / "images" / f"{name}.png")
    rows = [(f"images/{n}.png", "fracture", x1, y1, x2, y2) for n, x1, y1, x2, y2 in TRUTH]
    rows += [(f"images/{n}.png", "normal", None, None, None, None) for n in NAMES[3:]]
    pd.DataFrame(rows, columns=["path", "label", "x1", "y1", "x2", "y2"]).to_csv(folder / "manifest.csv", index=False)
    spelled = ["images/{}.png", "./images/{}.png", str(folder) + "/images/{}.png"]
    boxes = pd.DataFrame([(spelled[i % 3].format(n), 0, x1, y1, x2, y2, s, "fracture")
                          for i, (n, x1, y1, x2, y2, s) in enumerate(BOXES)],
                         columns=["path", "frame", "x1", "y1", "x2", "y2", "score", "class"])
    boxes.to_csv(folder / "boxes.csv", index=False)
    return folder


def run(*args):
    return CliRunner().invoke(cli, ["evaluate", *map(str, args)])


def test_cli_detections(on_disk, tmp_path):
    out = tmp_path / "eval"
    result = run("--detections", on_disk / "boxes.csv", "--truth", on_disk / "manifest.csv", "--threshold", "0.4",
                 "--out", out, "--bootstrap", 200)
    assert result.exit_code == 0, result.output
    assert "positive class: fracture" in result.output
    assert "max_box_score  AUC 0.889" in result.output and "AP50 0.629" in result.output
    assert "overlays: 6 panel(s)" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["auc"] == pytest.approx(8 / 9)
    assert (report["box_recall"], report["box_precision"]) == (0.5, 0.5)
    assert report["ap50"] == pytest.approx(AP50) and report["froc_score"] == pytest.approx(4.75 / 7)
    for name in ("froc.png", "pr.png", "roc_image_max_box_score.png"):
        assert (out / name).stat().st_size > 1000
    panels = sorted(p.name for p in (out / "overlays").iterdir())
    assert panels == ["fn_01_p2.png_boxes.png", "fn_02_p3.png_boxes.png", "fp_01_n1.png_boxes.png",
                      "fp_02_p2.png_boxes.png", "tp_01_p1.png_boxes.png", "tp_02_p3.png_boxes.png"]
    assert "[panel](overlays/fp_01_n1.png_boxes.png)" in (out / "report.md").read_text()


def test_cli_detections_no_overlays_and_options(on_disk, tmp_path):
    out = tmp_path / "eval"
    result = run("--detections", on_disk / "boxes.csv", "--truth", on_disk / "manifest.csv", "--threshold", "0.4",
                 "--out", out, "--bootstrap", 200, "--no-overlays", "--iou", "0.1", "--positive", "fracture", "--roc")
    assert result.exit_code == 0, result.output
    assert not (out / "overlays").exists()
    assert json.loads((out / "report.json").read_text())["box_recall"] == 0.75
    assert {p.name for p in out.glob("*.png")} == {"froc.png", "pr.png", "roc_image_max_box_score.png"}


def test_cli_path_not_in_manifest(on_disk, tmp_path):
    boxes = pd.read_csv(on_disk / "boxes.csv")
    pd.concat([boxes, boxes.iloc[:1].assign(path="images/stranger.png")]).to_csv(on_disk / "boxes.csv", index=False)
    result = run("--detections", on_disk / "boxes.csv", "--truth", on_disk / "manifest.csv", "--threshold", "0.4",
                 "--out", tmp_path / "eval")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == (f"error: {on_disk / 'boxes.csv'}: 1 path(s) not in the truth manifest (1 boxes), first:"
                        f" {on_disk / 'images' / 'stranger.png'}")


@pytest.mark.parametrize("args, message", [
    (["--threshold", "0.4"], "--detections needs --truth"),
    (["--truth", "M"], "--detections needs --threshold CUTOFF"),
    (["--truth", "M", "--threshold", "youden"], "give the box cut-off as a number in [0, 1]"),
    (["--truth", "M", "--threshold", "1.2"], "the box cut-off must be in [0, 1]"),
    (["--truth", "M", "--threshold", "0.4", "--score-column", "s"], "--score-column does not apply with --detections"),
    (["--truth", "M", "--threshold", "0.4", "--fold-column", "f"], "--fold-column does not apply with --detections"),
    (["--truth", "M", "--threshold", "0.4", "--scores", "B"], "takes the place of --scores and RUN_DIR"),
])
def test_cli_refusals(on_disk, tmp_path, args, message):
    args = [str(on_disk / "manifest.csv") if a == "M" else str(on_disk / "boxes.csv") if a == "B" else a for a in args]
    result = run("--detections", on_disk / "boxes.csv", *args, "--out", tmp_path / "eval")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "eval").exists()


def test_cli_detector_options_need_detections(on_disk, tmp_path):
    result = run("--truth", on_disk / "manifest.csv", "--threshold", "0.4", "--out", tmp_path / "eval")
    assert result.exit_code == 2 and "--truth needs --detections" in result.output
    result = run("--scores", on_disk / "boxes.csv", "--iou", "0.3", "--out", tmp_path / "eval")
    assert result.exit_code == 2 and "--iou goes with --detections" in result.output
