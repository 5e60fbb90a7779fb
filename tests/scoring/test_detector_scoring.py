"""Scoring and evaluating a detector run: scores.csv beside boxes.csv in original-image pixels (the pad
undone), resume after kill -9, overlays, the options a detector refuses, and `tfxray evaluate` on its boxes.

One detector is trained for the module on rectangles drawn on non-square images of three shapes (each
padded differently into the 64 px input), so where a box lands in the original image is known."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import cli
from tests.chain_helpers import kill_when, rows_written
from tests.folder_helpers import BROKEN_PNG
from tfxray.data.boxes import boxes_from_input
from tfxray.data.geometry import ImageGeometry, resize_array
from tfxray.models.inference import BOX_COLUMNS_OUT, image_boxes

BOX_HEADER = ["path", "frame", "x1", "y1", "x2", "y2", "score", "class"]
SHAPES = [(80, 96), (96, 80), (64, 100)]  # (height, width): padded top/bottom, left/right, and more
CUTOFF = 0.4

RECIPE = """\
name: det-rectangles
task: detection
classes: [normal, fracture]
data: {input_size: 64, channels: 1, resize: pad, split: [0.75, 0.25, 0.0]}
model: {backbone: tiny_cnn, weights: none, freeze: none}
detection: {fpn_filters: 16, head_units: 32, anchor_scale: 4, rpn_samples: 64, roi_samples: 32,
            proposals_train: 128, proposals_test: 64, cutoff: 0.4, rcnn_weight: 1.0, max_detections: 10}
train: {optimizer: adam, lr: 0.002, epochs: 6, batch_size: 4, restore_best: true}
"""


def write_rectangles(folder: Path, n: int, seed: int) -> pd.DataFrame:
    """``n`` 8-bit PNGs of the three SHAPES, gray background; two in three hold a bright rectangle
    (label fracture, its box in original pixels), the others none (normal). Writes manifest.csv."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        height, width = SHAPES[(i // 2) % 3]  # every shape with and without a rectangle
        pixels = rng.normal(0.2, 0.03, (height, width))
        name = f"r{seed}_{i:03d}.png"
        if i % 3 != 1:
            w, h = (int(v) for v in rng.integers(22, 34, 2))
            x1, y1 = int(rng.integers(2, width - w - 2)), int(rng.integers(2, height - h - 2))
            pixels[y1:y1 + h, x1:x1 + w] += 0.6
            rows.append((name, "fracture", f"p{seed}-{i}", x1, y1, x1 + w, y1 + h))
        else:
            rows.append((name, "normal", f"p{seed}-{i}", None, None, None, None))
        Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(folder / name)
    table = pd.DataFrame(rows, columns=["path", "label", "patient_id", "x1", "y1", "x2", "y2"])
    table.to_csv(folder / "manifest.csv", index=False)
    return table


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def image_scores(boxes: pd.DataFrame, paths) -> np.ndarray:
    """An image's score: its highest box confidence, 0 without a box."""
    best = boxes.groupby("path")["score"].max()
    return np.array([float(best.get(p, 0.0)) for p in paths])


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory):
    """The module's detector (6 epochs, about 45-70 s), and its held-out test images with their truth."""
    from tfxray.config import load_recipe
    from tfxray.data.manifest import load_manifest
    from tfxray.training.trainer import train

    root = tmp_path_factory.mktemp("det_scoring")
    write_rectangles(root / "train", 48, seed=0)
    test = write_rectangles(root / "test", 21, seed=1)
    (root / "det.yaml").write_text(RECIPE)
    recipe = load_recipe(str(root / "det.yaml"))
    train(recipe, load_manifest(root / "train" / "manifest.csv", classes=recipe.classes), root / "run", verbose=0)
    return root / "run", root / "test", test


@pytest.fixture(scope="module")
def scored(detector_run, tmp_path_factory):
    """score_folder over the test images (the last three in a sub-folder) and a broken file, with overlays."""
    import shutil

    from tfxray.scoring.batch import score_folder

    run, test_dir, truth = detector_run
    inbox = tmp_path_factory.mktemp("det_inbox")
    for name in truth.path[:-3]:
        shutil.copy(test_dir / name, inbox / name)
    (inbox / "sub").mkdir()
    for name in truth.path[-3:]:
        shutil.copy(test_dir / name, inbox / "sub" / name)
    (inbox / "broken.png").write_bytes(BROKEN_PNG)
    out = tmp_path_factory.mktemp("det_scores") / "scores.csv"
    overlays = out.parent / "overlays"
    summary = score_folder(run, inbox, out, batch_size=4, progress=False, overlays_dir=overlays)
    relative = {name: (f"sub/{name}" if i >= len(truth) - 3 else name) for i, name in enumerate(truth.path)}
    truth = truth.assign(relative=truth.path.map(relative))
    return inbox, out, overlays, summary, truth


# ----------------------------------------------------------------------------- the inverse mapping


def test_evaluate_writes_boxes_as_score_does_with_a_confidence_under_the_cutoff_kept_under_it():
    from tfxray.scoring.detections import _boxes_csv

    found = pd.DataFrame([["a.png", 0, 1.23456, 2.0, 30.5, 40.0, 0.39996, "fracture"]], columns=BOX_HEADER)
    lines = _boxes_csv(found).splitlines()
    assert lines == [",".join(BOX_HEADER), "a.png,0,1.235,2.000,30.500,40.000,0.399960,fracture"]
    assert pd.read_csv(StringIO("\n".join(lines))).score.iloc[0] < CUTOFF  # at 3 decimals it read 0.400


def test_image_boxes_undo_the_pad_by_hand():
    """A 256 x 200 (w x h) image in a 64 px padded input: scale 4 both ways, 7 rows of padding on top
    (50 image rows, floor((64 - 50) / 2) = 7). Input x -> 4 x; input y -> 4 (y - 7), clipped to the image."""
    geometry = ImageGeometry(64, 1, "pad")
    found = {
        "boxes": np.array([[[8, 17, 24, 33],  # inside: (32, 40, 96, 104)
                            [40, 2, 60, 9],  # reaches into the top padding: y1 clipped to 0, y2 = 8
                            [10, 0, 20, 6],  # wholly in the padding: empty once clipped, dropped
                            [0, 50, 64, 64],  # reaches into the bottom padding: y2 clipped to 200
                            [1, 1, 2, 2]]], np.float32),  # past num_detections: padding of the batch
        "scores": np.array([[0.6, 0.9, 0.8, 0.45, -1.0]], np.float32),
        "classes": np.array([[0, 0, 0, 1, -1]], np.int32),
        "num_detections": np.array([4], np.int32),
    }
    rows = image_boxes(found, 0, 200, 256, geometry, ["fracture", "dislocation"])
    expected = [(160.0, 0.0, 240.0, 8.0, 0.9, "fracture"),
                (32.0, 40.0, 96.0, 104.0, 0.6, "fracture"),
                (0.0, 172.0, 256.0, 200.0, 0.45, "dislocation")]
    assert len(rows) == len(expected)  # highest score first, the empty box gone
    for row, want in zip(rows, expected):
        np.testing.assert_allclose(row[:5], want[:5], atol=1e-5)
        assert row[5] == want[5]
    assert [r[4] for r in image_boxes(found, 0, 200, 256, geometry, ["fracture", "dislocation"], min_score=0.5)] \
        == pytest.approx([0.9, 0.6])
    # stretch: x scaled by 256 / 64 = 4, y by 200 / 64 = 3.125, no offset
    stretched = image_boxes(found, 0, 200, 256, ImageGeometry(64, 1, "stretch"), ["fracture", "dislocation"])
    assert [r[4] for r in stretched] == pytest.approx([0.9, 0.8, 0.6, 0.45])  # no padding: the third box stays
    np.testing.assert_allclose(stretched[2][:4], (32.0, 17 * 3.125, 96.0, 33 * 3.125), atol=1e-4)
    np.testing.assert_allclose(stretched[1][:4], (40.0, 0.0, 80.0, 6 * 3.125), atol=1e-4)


@pytest.mark.parametrize("height, width, box", [(180, 300, (200, 40, 260, 100)), (300, 180, (30, 190, 120, 260))])
def test_a_rectangle_found_in_the_input_maps_back_onto_the_drawn_one(height, width, box):
    """Forward with the decode workers' own resize (pad), find the bright rectangle in the input by threshold,
    map its box back: it lands on the drawn rectangle within a pixel and a half (one input pixel is
    300 / 256 = 1.17 original pixels)."""
    geometry = ImageGeometry(256, 1, "pad")
    pixels = np.full((height, width, 1), 0.1, np.float32)
    x1, y1, x2, y2 = box
    pixels[y1:y2, x1:x2] = 0.9
    model_input = resize_array(pixels, geometry)[..., 0]
    rows, cols = np.nonzero(model_input > 0.5)
    found_box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)
    found = {"boxes": found_box[None, None], "scores": np.array([[0.9]], np.float32),
             "classes": np.zeros((1, 1), np.int32), "num_detections": np.array([1])}
    (back,) = image_boxes(found, 0, height, width, geometry, ["fracture"])
    np.testing.assert_allclose(back[:4], box, atol=1.5)
    np.testing.assert_allclose(boxes_from_input(found_box, height, width, geometry)[0], back[:4])


# ----------------------------------------------------------------------------- score_folder


@pytest.mark.slow  # the module's training and one scoring pass: about 60-80 s together
def test_score_folder_writes_scores_and_boxes_in_original_pixels(scored, detector_run):
    inbox, out, _, summary, truth = scored
    table = pd.read_csv(out, keep_default_na=False)
    files = sorted(p.relative_to(inbox).as_posix() for p in inbox.rglob("*") if p.is_file())
    assert sorted(table.path) == files and table.path.is_unique
    assert (summary.scored, summary.errors) == (len(truth), 1)
    broken = table[table.path == "broken.png"].iloc[0]
    assert broken.status == "error" and broken.score == "" and broken.call == ""

    boxes = pd.read_csv(out.parent / "boxes.csv", keep_default_na=False)
    assert list(boxes.columns) == BOX_HEADER == BOX_COLUMNS_OUT
    assert "broken.png" not in set(boxes.path)
    assert set(boxes.path) <= set(table.path[table.status == "ok"])
    assert (boxes["class"] == "fracture").all() and (boxes.frame == 0).all()
    assert summary.boxes == len(boxes)
    # every box inside its original image, which is not square
    for path, group in boxes.groupby("path"):
        width, height = Image.open(inbox / path).size
        assert (group.x1 >= 0).all() and (group.y1 >= 0).all()
        assert (group.x2 <= width).all() and (group.y2 <= height).all()
        assert (group.x2 > group.x1).all() and (group.y2 > group.y1).all()
    # an image's score: its highest box, 0 without one; called at the saved cut-off
    ok = table[table.status == "ok"]
    expected = image_scores(boxes, ok.path)
    np.testing.assert_allclose(ok.score.astype(float), expected, atol=2e-6)
    assert ((ok.score.astype(float) == 0) == ~ok.path.isin(boxes.path)).all()
    assert (ok.call == np.where(expected >= CUTOFF, "fracture", "normal")).all()
    # the model found the rectangles: the centre of each fracture image's top box, back in original pixels, lies
    # in the drawn rectangle (a few epochs localise loosely: an edge may be off by several pixels)
    positives = truth[truth.label == "fracture"]
    inside = []
    for _, row in positives.iterrows():
        mine = boxes[boxes.path == row.relative].sort_values("score", ascending=False)
        if not len(mine):
            inside.append(False)
            continue
        top = mine.iloc[0]
        cx, cy = (top.x1 + top.x2) / 2, (top.y1 + top.y2) / 2
        inside.append(row.x1 <= cx <= row.x2 and row.y1 <= cy <= row.y2)
    assert np.mean(inside) >= 0.9, inside
    scores = dict(zip(ok.path, ok.score.astype(float)))
    labels = truth.label == "fracture"
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(labels, [scores[p] for p in truth.relative]) > 0.9


# where each shape lands in the 64 px input, worked by hand as tf.image.resize_with_pad does it:
# (new_h, new_w, top, left); 80 x 96: ratio 96 / 64 = 1.5, 80 / 1.5 = 53.3 -> 53 rows, floor((64 - 53.3) / 2) = 5
PLACEMENT = {(80, 96): (53, 64, 5, 0), (96, 80): (64, 53, 0, 5), (64, 100): (40, 64, 11, 0)}


@pytest.mark.slow  # reads the module's scoring, and runs its detector once more
def test_boxes_csv_is_the_models_input_boxes_mapped_back_by_hand(scored, detector_run):
    """Each image again, resized here with TensorFlow's antialiased resize into the hand-worked placement,
    through the saved model's ``detect``: its top box, mapped back by hand (x: (x - left) w / new_w,
    y: (y - top) h / new_h), is boxes.csv's top box for that image."""
    import tensorflow as tf

    from tfxray.models.bundle import load_bundle

    inbox, out, _, _, truth = scored
    run, _, _ = detector_run
    boxes = pd.read_csv(out.parent / "boxes.csv", keep_default_na=False)
    model = load_bundle(run).model
    images, placements = [], []
    for relative in truth.relative:
        pixels = np.asarray(Image.open(inbox / relative), np.float32)[..., None] / 255.0
        height, width = pixels.shape[:2]
        new_h, new_w, top, left = PLACEMENT[(height, width)]
        resized = tf.image.resize(pixels, (new_h, new_w), antialias=True).numpy()
        canvas = np.zeros((64, 64, 1), np.float32)
        canvas[top:top + new_h, left:left + new_w] = resized
        images.append(canvas)
        placements.append((height, width, new_h, new_w, top, left))
    found = {k: np.asarray(v) for k, v in model.detect(np.stack(images)).items()}
    compared = 0
    for i, relative in enumerate(truth.relative):
        mine = boxes[boxes.path == relative].sort_values("score", ascending=False)
        if not len(mine) or not found["num_detections"][i]:
            continue
        height, width, new_h, new_w, top, left = placements[i]
        x1, y1, x2, y2 = found["boxes"][i, 0].astype(float)
        by_hand = np.clip([(x1 - left) * width / new_w, (y1 - top) * height / new_h,
                           (x2 - left) * width / new_w, (y2 - top) * height / new_h],
                          0, [width, height, width, height])
        np.testing.assert_allclose(mine.iloc[0][["x1", "y1", "x2", "y2"]].to_numpy(float), by_hand, atol=0.05)
        assert mine.iloc[0].score == pytest.approx(found["scores"][i, 0], abs=1e-4)
        compared += 1
    assert compared >= (truth.label == "fracture").sum()  # the fracture images at least


@pytest.mark.slow  # reads the module's scoring
def test_overlays_one_png_per_scored_image(scored):
    from tfxray.explain.gradcam import panel_name

    inbox, out, overlays, summary, truth = scored
    pictures = sorted(p.name for p in overlays.iterdir())
    assert pictures == sorted(panel_name(p, None, "boxes") for p in truth.relative)
    assert summary.overlays == len(truth)
    with Image.open(overlays / pictures[0]) as image:
        assert image.format == "PNG" and min(image.size) > 64


@pytest.mark.slow  # the module's training
def test_gradcam_on_a_detector_is_a_one_line_error(detector_run, tmp_path):
    run, test_dir, _ = detector_run
    result = CliRunner().invoke(cli, ["score", str(run), str(test_dir), "--out", str(tmp_path / "s.csv"),
                                      "--gradcam", str(tmp_path / "cams")])
    assert result.exit_code != 0
    line = one_line(result)
    assert "--gradcam" in line and "--overlays" in line
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "boxes.csv").exists()


def test_overlays_on_a_classifier_is_a_one_line_error(tiny_run, wrist_png, tmp_path):
    folder, _ = wrist_png
    result = CliRunner().invoke(cli, ["score", str(tiny_run), str(folder), "--out", str(tmp_path / "s.csv"),
                                      "--overlays", str(tmp_path / "boxes")])
    assert result.exit_code != 0
    line = one_line(result)
    assert "--overlays" in line and "classifier" in line
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.slow  # a scoring process killed mid-run, then resumed: about 40-60 s
def test_sigkill_mid_detector_scoring_then_resume(scored, detector_run, tmp_path):
    import shutil

    run, _, _ = detector_run
    source, first_out, _, _, truth = scored
    first_boxes = pd.read_csv(first_out.parent / "boxes.csv", keep_default_na=False)
    folder, out = tmp_path / "inbox", tmp_path / "scores.csv"
    folder.mkdir()
    originals = {}
    for k in range(8):  # 8 copies of the 18 top-level images: 144 files
        for name in truth.path[:-3]:
            copy = f"c{k}_{name}"
            shutil.copy(source / name, folder / copy)
            originals[copy] = name
    files = sorted(originals)

    kill_when(["score", run, folder, "--out", out, "--batch-size", "2"], rows_written(out, 20), interval=0.005)
    killed = pd.read_csv(out, keep_default_na=False)
    assert 20 <= len(killed) < len(files) and killed.path.is_unique
    assert (out.parent / "boxes.csv").exists()

    resumed = CliRunner().invoke(cli, ["score", str(run), str(folder), "--out", str(out), "--resume",
                                       "--batch-size", "8"])
    assert resumed.exit_code == 0, resumed.output
    table = pd.read_csv(out, keep_default_na=False)
    assert sorted(table.path) == files and table.path.is_unique  # none lost, none twice
    assert (table.status == "ok").all()
    boxes = pd.read_csv(out.parent / "boxes.csv", keep_default_na=False)
    assert list(boxes.columns) == BOX_HEADER
    assert set(boxes.path) <= set(table.path)
    assert not boxes.duplicated().any()
    # scores.csv agrees with boxes.csv (both written with 6 decimals; resuming keeps the kept rows as they were)
    np.testing.assert_allclose(table.score.astype(float), image_scores(boxes, table.path), atol=1e-6)
    # each copy has its original's boxes, once: the same count and the same places
    reference = {name: group for name, group in first_boxes.groupby("path")}
    for copy in files:
        mine = boxes[boxes.path == copy].sort_values("score", ascending=False)
        theirs = reference.get(originals[copy], first_boxes.iloc[:0]).sort_values("score", ascending=False)
        assert len(mine) == len(theirs), copy
        np.testing.assert_allclose(mine[["x1", "y1", "x2", "y2"]].to_numpy(float),
                                   theirs[["x1", "y1", "x2", "y2"]].to_numpy(float), atol=0.05)


@pytest.mark.slow  # two scoring passes with the module's detector
def test_resume_keeps_the_boxes_already_written_as_they_were(scored, detector_run, tmp_path):
    """A run stopped after its 10th file (its next batch's boxes already on disk: they are written first),
    then resumed: the boxes of the files it kept are the lines written the first time, byte for byte."""
    from tfxray.scoring.batch import score_folder

    run, _, _ = detector_run
    inbox = scored[0]
    out = tmp_path / "scores.csv"
    score_folder(run, inbox, out, batch_size=4, progress=False)
    whole_scores = out.read_text().splitlines(keepends=True)
    whole_boxes = (tmp_path / "boxes.csv").read_text().splitlines()
    out.write_text("".join(whole_scores[:11]))  # the header and 10 files
    kept = {line.split(",")[0] for line in whole_scores[1:10]}  # the 10th is scored again on resume
    score_folder(run, inbox, out, batch_size=4, progress=False, resume=True)
    after = (tmp_path / "boxes.csv").read_text().splitlines()
    assert after[0] == whole_boxes[0]
    assert [line for line in after if line.split(",")[0] in kept] == \
        [line for line in whole_boxes if line.split(",")[0] in kept]
    table = pd.read_csv(out, keep_default_na=False)
    ok = table[table.status == "ok"]
    boxes = pd.read_csv(tmp_path / "boxes.csv", keep_default_na=False)
    np.testing.assert_allclose(ok.score.astype(float), image_scores(boxes, ok.path), atol=2e-6)


# ----------------------------------------------------------------------------- tfxray evaluate


def _greedy_counts(boxes: pd.DataFrame, truth: pd.DataFrame, paths, cutoff: float, iou_threshold: float = 0.5):
    """(true positives, reference boxes, predicted boxes at the cut-off): per image, boxes at or above the
    cut-off by descending score, each taking the unmatched reference box of highest IoU >= the threshold."""
    tp = predicted = 0
    for path in paths:
        refs = truth.loc[(truth.path == path) & truth.x1.notna(), ["x1", "y1", "x2", "y2"]].to_numpy(float)
        mine = boxes[(boxes.path == path) & (boxes.score >= cutoff)].sort_values("score", ascending=False)
        predicted += len(mine)
        free = list(range(len(refs)))
        for box in mine[["x1", "y1", "x2", "y2"]].to_numpy(float):
            overlaps = [(iou(box, refs[j]), j) for j in free]
            if overlaps and max(overlaps)[0] >= iou_threshold:
                free.remove(max(overlaps)[1])
                tp += 1
    return tp, int(truth.x1.notna().sum()), predicted


@pytest.mark.slow  # the module's training and one evaluation pass
def test_evaluate_a_detector_run(detector_run, tmp_path):
    from sklearn.metrics import roc_auc_score

    run, test_dir, truth = detector_run
    out = tmp_path / "eval"
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--data", str(test_dir / "manifest.csv"), "--out",
                                      str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    for key in ("auc", "box_recall", "box_precision", "ap50", "froc_score"):
        assert key in report and report[key] is not None, key
    assert (out / "froc.png").stat().st_size > 0 and (out / "pr.png").stat().st_size > 0
    # the numbers, recomputed from the boxes it wrote
    boxes = pd.read_csv(out / "boxes.csv", keep_default_na=False)
    paths = [str(test_dir / p) for p in truth.path]
    assert set(boxes.path) <= set(paths)
    labels = (truth.label == "fracture").to_numpy()
    assert report["auc"] == pytest.approx(roc_auc_score(labels, image_scores(boxes, paths)), abs=1e-9)
    tp, references, predicted = _greedy_counts(boxes, truth.assign(path=paths), paths, CUTOFF)
    assert report["counts"]["tp"] == tp and report["counts"]["reference_boxes"] == references == labels.sum()
    assert report["box_recall"] == pytest.approx(tp / references)
    assert report["box_precision"] == pytest.approx(tp / predicted)
    assert 0 <= report["ap50"] <= 1 and 0 <= report["froc_score"] <= 1


def _delong_p(labels, a, b) -> float:
    """Paired DeLong test (DeLong et al. 1988), two-sided p: structural components written out."""
    from scipy import stats

    labels = np.asarray(labels, bool)

    def components(scores):
        cases, controls = scores[labels], scores[~labels]
        psi = (cases[:, None] > controls[None, :]) + 0.5 * (cases[:, None] == controls[None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    auc_a, v10_a, v01_a = components(np.asarray(a, float))
    auc_b, v10_b, v01_b = components(np.asarray(b, float))
    s10, s01 = np.cov(np.vstack([v10_a, v10_b])), np.cov(np.vstack([v01_a, v01_b]))
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / labels.sum() + \
        (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / (~labels).sum()
    return float(2 * stats.norm.sf(abs(auc_a - auc_b) / np.sqrt(variance)))


@pytest.mark.slow  # the module's training, a second bundle and two evaluation passes
def test_evaluate_compare_two_detector_runs(detector_run, tmp_path):
    from scipy.stats import binomtest
    from sklearn.metrics import roc_auc_score

    from tfxray.models.bundle import load_bundle, save_bundle

    run, test_dir, truth = detector_run
    # run B: the same detector with its box head's score layer untrained (a weaker model, the same cases)
    import keras

    bundle = load_bundle(run)
    keras.utils.set_random_seed(0)
    fresh = type(bundle.model).from_config(bundle.model.get_config())
    fresh.build()
    bundle.model.head_score.set_weights(fresh.head_score.get_weights())
    save_bundle(bundle.model, bundle.meta, tmp_path / "noisy")
    out = tmp_path / "compare"
    result = CliRunner().invoke(cli, ["evaluate", "--compare", str(run), str(tmp_path / "noisy"), "--data",
                                      str(test_dir / "manifest.csv"), "--out", str(out), "--no-overlays"])
    assert result.exit_code == 0, result.output
    comparison = json.loads((out / "comparison.json").read_text())
    names = comparison["models"]
    assert names == ["run", "noisy"] and comparison["cutoffs"] == [CUTOFF, CUTOFF]
    paths = [str(test_dir / p) for p in truth.path]
    labels = (truth.label == "fracture").to_numpy()
    scores = [image_scores(pd.read_csv(out / name / "boxes.csv", keep_default_na=False), paths) for name in names]
    assert comparison["n"] == len(paths) and comparison["n_positive"] == labels.sum()
    # McNemar's discordant pairs, counted here: b = A right and B wrong, c = A wrong and B right
    right = [(s >= CUTOFF) == labels for s in scores]
    for section, rows in (("sensitivity", labels), ("specificity", ~labels)):
        b = int(np.sum(right[0][rows] & ~right[1][rows]))
        c = int(np.sum(~right[0][rows] & right[1][rows]))
        assert (comparison[section]["b"], comparison[section]["c"]) == (b, c), section
        exact = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue  # McNemar's exact test
        assert comparison[section]["p"] == pytest.approx(exact, rel=1e-9)
    auc = [roc_auc_score(labels, s) for s in scores]
    assert (comparison["auc"]["auc_a"], comparison["auc"]["auc_b"]) == pytest.approx(auc)
    if auc[0] != auc[1]:  # the rectangles are easy: run B may separate them perfectly too (no DeLong variance)
        assert comparison["auc"]["p"] == pytest.approx(_delong_p(labels, *scores), rel=1e-6)
    for name in names:
        assert (out / name / "report.json").is_file()
