"""The Faster R-CNN detector: it learns a toy task, survives a save in safe mode, and its two
replaced parts (``_roi_align``, ``_rpn_targets``) and ``transfer_weights`` hold to hand-worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tfxray.models.detector import (  # noqa: E402
    ROI_SIZE,
    _roi_align,
    _rpn_targets,
    backbone_layer_names,
    build_detector,
)
from tfxray.models.transfer import transfer_weights  # noqa: E402

SIZE = 64
SMALL = dict(fpn_filters=16, head_units=32, anchor_scale=4, rpn_samples=64, roi_samples=32, proposals_train=128,
             proposals_test=64, rcnn_weight=1.0)


def rectangles(n: int, seed: int = 0, size: int = SIZE):
    """``n`` images of a gray background (0.2, a little noise) with one bright rectangle each, and its box
    (x1, y1, x2, y2 in input pixels) as a [n, 1, 4] target."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.2, 0.03, (n, size, size, 1)).astype(np.float32)
    boxes = np.zeros((n, 1, 4), np.float32)
    for i in range(n):
        w, h = rng.integers(20, 30, 2)
        x1, y1 = int(rng.integers(2, size - w - 2)), int(rng.integers(2, size - h - 2))
        images[i, y1:y1 + h, x1:x1 + w] += 0.6
        boxes[i, 0] = [x1, y1, x1 + w, y1 + h]
    return np.clip(images, 0, 1), boxes


def iou(a, b) -> float:
    """IoU of two (x1, y1, x2, y2) boxes, written out."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def detections(model, images) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in model.detect(images).items()}


@pytest.fixture(scope="module")
def toy():
    """A tiny_cnn Faster R-CNN fitted on 32 rectangle images (128 steps of 4, Adam 1e-3): ~25-40 s."""
    keras.utils.set_random_seed(0)
    images, boxes = rectangles(32)
    model = build_detector("faster_rcnn", "tiny_cnn", input_size=SIZE, **SMALL)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(images, {"boxes": boxes, "classes": np.zeros((32, 1), np.float32)}, batch_size=4, epochs=16,
              shuffle=True, verbose=0)
    return model, images, boxes


@pytest.fixture(scope="module")
def fresh():
    """An untrained detector at 64 px: its anchors and matcher are the real configuration."""
    keras.utils.set_random_seed(1)
    return build_detector("faster_rcnn", "tiny_cnn", input_size=SIZE, **SMALL)


# ----------------------------------------------------------------------------- learning, saving


@pytest.mark.slow  # the toy fit: about 30 s
def test_the_detector_learns_one_bright_rectangle(toy):
    """Its top box on each training image: the rectangle, confidently. The box regression of so short a fit
    still errs by a pixel or two on a few images (a 2 px error on both sides of a 20 px box is IoU 0.67),
    so the IoU bar is 0.7 for nine images in ten and 0.6 for every one."""
    model, images, boxes = toy
    found = detections(model, images)
    assert found["boxes"].shape[-1] == 4 and found["scores"].shape == found["classes"].shape
    overlaps = []
    for i in range(len(images)):
        n = int(found["num_detections"][i])
        assert n >= 1
        scores = found["scores"][i, :n]
        assert np.all(np.diff(scores) <= 0)  # highest score first
        assert scores[0] > 0.5
        assert found["classes"][i, 0] == 0  # the one box class, 0-based
        shown = found["boxes"][i, :n]
        assert (shown >= 0).all() and (shown <= SIZE).all()
        overlaps.append(iou(found["boxes"][i, 0], boxes[i, 0]))
    overlaps = np.array(overlaps)
    assert overlaps.min() > 0.6, overlaps
    assert np.mean(overlaps > 0.7) >= 0.9 and np.median(overlaps) > 0.75, overlaps
    # a blank image (the background alone): its best score, 0 without a box, is far lower
    blank = detections(model, np.full((1, SIZE, SIZE, 1), 0.2, np.float32))
    blank_top = float(blank["scores"][0, 0]) if blank["num_detections"][0] else 0.0
    assert blank_top < 0.5 and blank_top < found["scores"][:, 0].min()


@pytest.mark.slow  # uses the toy fit
def test_a_saved_detector_loads_in_safe_mode_with_identical_detections(toy, tmp_path):
    model, images, _ = toy
    path = tmp_path / "detector.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded).__name__ == "FasterRCNN" and loaded.settings == model.settings
    before, after = detections(model, images[:6]), detections(loaded, images[:6])
    assert before.keys() == after.keys()
    np.testing.assert_array_equal(before["num_detections"], after["num_detections"])
    for key in ("boxes", "scores"):
        np.testing.assert_allclose(before[key], after[key], atol=1e-5)
    np.testing.assert_array_equal(before["classes"], after["classes"])


# ----------------------------------------------------------------------------- ROI align

def _ramp_pyramid(levels_hw, ramp):
    """[1, h, w, 1] maps, P2 holding ``ramp(row, col)`` (feature index coordinates), the others zero."""
    maps = []
    for k, (h, w) in enumerate(levels_hw):
        rows, cols = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
        values = ramp(rows, cols) if k == 0 else np.zeros((h, w), np.float32)
        maps.append(tf.constant(values[None, ..., None], tf.float32))
    return maps


def test_roi_align_samples_where_the_box_is_on_a_centred_box():
    """A box centred on the map: the ramp in x only gives equal rows, rising columns, and the middle
    cell holds the ramp at the box centre (feature index (32 / 4) - 0.5 = 7.5)."""
    maps = _ramp_pyramid([(16, 16), (8, 8), (4, 4), (2, 2)], lambda r, c: c)
    rois = tf.constant([[[16.0, 16.0, 48.0, 48.0]]])  # yxyx, input pixels
    pooled = _roi_align(maps, [2, 3, 4, 5], rois, SIZE).numpy()[0, 0, ..., 0]
    assert pooled.shape == (ROI_SIZE, ROI_SIZE)
    np.testing.assert_allclose(pooled, np.tile(pooled[0], (ROI_SIZE, 1)), atol=1e-5)  # no y dependence
    assert np.all(np.diff(pooled[0]) > 0)  # x grows to the right: x and y are not swapped
    assert pooled[3, 3] == pytest.approx(7.5, abs=1e-4)


def test_roi_align_pools_each_cell_at_its_centre():
    """ROI align (Mask R-CNN; Detectron2's aligned=True): the box in input pixels divided by the stride,
    cell (i, j) centred at y1 + (i + 1/2) h / 7, x1 + (j + 1/2) w / 7, its 2 x 2 bilinear samples averaged;
    a feature pixel k covers [k, k + 1), so a continuous coordinate u sits at index u - 1/2. A linear ramp
    is reproduced exactly by bilinear sampling and by averaging symmetric samples, so each pooled cell
    equals the ramp at the cell centre."""
    def ramp(r, c):
        return 2.0 * r + 3.0 * c + 1.0

    maps = _ramp_pyramid([(16, 16), (8, 8), (4, 4), (2, 2)], ramp)
    y1, x1, y2, x2 = 8.0, 12.0, 36.0, 40.0  # 28 x 28 px: level floor(4 + log2(28 / 224)) = 1 -> P2 (stride 4)
    pooled = _roi_align(maps, [2, 3, 4, 5], tf.constant([[[y1, x1, y2, x2]]]), SIZE).numpy()[0, 0, ..., 0]
    centres_y = y1 + (np.arange(ROI_SIZE) + 0.5) * (y2 - y1) / ROI_SIZE
    centres_x = x1 + (np.arange(ROI_SIZE) + 0.5) * (x2 - x1) / ROI_SIZE
    expected = ramp(centres_y[:, None] / 4 - 0.5, centres_x[None, :] / 4 - 0.5)
    np.testing.assert_allclose(pooled, expected, atol=1e-3)


def test_roi_align_level_assignment():
    """k = floor(4 + log2(sqrt(wh) / 224)) clipped to P2..P4 (P5, max-pooled, only proposes): each level's map
    holds its own number, so the pooled value names the level a box was pooled from."""
    size = 256
    maps = [tf.fill((2, size // 2**lvl, size // 2**lvl, 2), float(lvl)) for lvl in (2, 3, 4, 5)]
    boxes = {  # (h, w) -> level
        (16, 16): 2,  # below every level: clipped up to P2
        (60, 60): 2,  # 4 + log2(60 / 224) = 2.10
        (100, 120): 2,  # sqrt(12000) = 109.5: 4 - 1.03 = 2.97
        (120, 120): 3,  # 3.10
        (200, 200): 3,  # 3.84
        (240, 240): 4,  # 4.10
        (256, 256): 4,  # 4.19, and never P5
    }
    rois = np.array([[0.0, 0.0, h, w] for h, w in boxes], np.float32)
    rois = np.stack([rois, rois[::-1]])  # two images, the same boxes in the other order
    pooled = _roi_align(maps, [2, 3, 4, 5], tf.constant(rois), size).numpy()
    assert pooled.shape == (2, len(boxes), ROI_SIZE, ROI_SIZE, 2)
    expected = np.array(list(boxes.values()), np.float32)
    np.testing.assert_allclose(pooled[0].reshape(len(boxes), -1), np.repeat(expected[:, None], 2 * ROI_SIZE**2, 1))
    np.testing.assert_allclose(pooled[1].reshape(len(boxes), -1),
                               np.repeat(expected[::-1, None], 2 * ROI_SIZE**2, 1))


# ----------------------------------------------------------------------------- RPN targets


def _anchors(model):
    return tf.concat([tf.constant(model.anchors[k]) for k in model.level_keys], axis=0)


def _decode(anchor, delta):
    """yxyx anchor + keras-cv deltas (variance 0.1, 0.1, 0.2, 0.2) -> yxyx box, written out."""
    ay, ax = (anchor[0] + anchor[2]) / 2, (anchor[1] + anchor[3]) / 2
    ah, aw = anchor[2] - anchor[0], anchor[3] - anchor[1]
    cy, cx = ay + delta[0] * 0.1 * ah, ax + delta[1] * 0.1 * aw
    h, w = ah * math.exp(delta[2] * 0.2), aw * math.exp(delta[3] * 0.2)
    return np.array([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2])


def test_rpn_targets_force_a_match_for_a_box_smaller_than_every_anchor(fresh):
    anchors = _anchors(fresh)
    smallest = float(np.min((anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])))
    assert smallest >= 8 * 8  # anchor_scale 4 x stride 4 = 16 px, aspect ratios 0.5..2
    gt = np.array([[[30.0, 20.0, 34.0, 24.0], [0.0, 0.0, 0.0, 0.0]]], np.float32)  # yxyx 4 x 4 px + padding
    valid = np.array([[[True], [False]]])
    best_iou = 16.0 / smallest
    assert best_iou < 0.3  # below the negative threshold: only the forced match can make it positive
    box_targets, box_weights, class_targets, class_weights = (
        t.numpy() for t in _rpn_targets(fresh.rpn_matcher, anchors, tf.constant(gt), tf.constant(valid), 64))
    positive = np.flatnonzero(class_targets[0, :, 0] > 0)
    assert len(positive) == 1
    assert box_weights[0, :, 0].sum() == 1 and box_weights[0, positive[0], 0] == 1
    assert class_weights[0, positive[0], 0] == 1  # the positive is always sampled
    assert class_weights[0].sum() == 64  # rpn_samples anchors per image: one positive, 63 negatives
    # its box target decodes back to the reference box
    np.testing.assert_allclose(_decode(anchors.numpy()[positive[0]], box_targets[0, positive[0]]), gt[0, 0],
                               atol=1e-3)
    # every other anchor's box target is zero
    assert np.abs(np.delete(box_targets[0], positive, axis=0)).max() == 0


def test_rpn_targets_give_a_normal_image_no_positive_and_stay_in_range(fresh):
    """A batch with a normal image (all its reference rows are padding, zero boxes as compute_loss makes
    them): no positive anchor for it, its anchors sampled as negatives, and no out-of-range gather."""
    anchors = _anchors(fresh)
    gt = np.zeros((3, 2, 4), np.float32)
    gt[0, 0] = [10, 12, 40, 44]  # image 0: one box and one padding row
    gt[2] = [[0, 0, 20, 20], [36, 30, 60, 62]]  # image 2: two boxes, the first in the corner of anchor 0
    valid = np.array([[[True], [False]], [[False], [False]], [[True], [True]]])
    box_targets, box_weights, class_targets, class_weights = (
        t.numpy() for t in _rpn_targets(fresh.rpn_matcher, anchors, tf.constant(gt), tf.constant(valid), 64))
    assert class_targets[1].sum() == 0 and box_weights[1].sum() == 0 and np.abs(box_targets[1]).max() == 0
    assert class_weights[1].sum() == 64  # the normal image still trains the RPN on 64 negatives
    assert class_targets[0].sum() >= 1 and class_targets[2].sum() >= 2
    # each positive's target decodes to one of its image's real boxes, never to a padding row
    for image in (0, 2):
        real = gt[image][valid[image, :, 0]]
        for a in np.flatnonzero(class_targets[image, :, 0] > 0):
            decoded = _decode(anchors.numpy()[a], box_targets[image, a])
            assert np.min(np.abs(real - decoded).max(axis=1)) < 1e-3


def test_a_training_step_on_a_batch_with_a_normal_image(fresh):
    """The whole loss on targets padded with -1 (as data.detection pads them): finite, every term there."""
    images = np.random.default_rng(0).random((2, SIZE, SIZE, 1)).astype(np.float32)
    targets = {"boxes": np.array([[[10, 12, 30, 40], [-1, -1, -1, -1]], [[-1, -1, -1, -1]] * 2], np.float32),
               "classes": np.array([[0, -1], [-1, -1]], np.float32)}
    fresh.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = fresh.train_on_batch(images, targets, return_dict=True)
    assert {"loss", "rpn_class_loss", "rpn_box_loss", "rcnn_class_loss", "rcnn_box_loss"} <= set(logs)
    assert all(np.isfinite(v) for v in logs.values())
    # only normal images (the same padded shape: a dataset pads every batch to one M): no positive anchor or
    # ROI anywhere, so the box terms are zero and the class terms train on negatives alone
    logs = fresh.train_on_batch(images, {"boxes": np.full((2, 2, 4), -1, np.float32),
                                         "classes": np.full((2, 2), -1, np.float32)}, return_dict=True)
    assert all(np.isfinite(v) for v in logs.values())
    assert logs["rpn_box_loss"] == 0 and logs["rcnn_box_loss"] == 0
    assert logs["rpn_class_loss"] > 0 and logs["rcnn_class_loss"] > 0


# ----------------------------------------------------------------------------- transfer_weights


@pytest.mark.slow  # uses the toy fit
def test_transfer_from_a_detector_copies_everything(toy):
    model, images, _ = toy
    keras.utils.set_random_seed(7)
    target = build_detector("faster_rcnn", "tiny_cnn", input_size=SIZE, **SMALL)
    copied, total = transfer_weights(model, target)
    assert copied == total == sum(len(layer.get_weights()) for layer in _leaves(target)) > 0
    for a, b in zip(model.weights, target.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    before, after = detections(model, images[:4]), detections(target, images[:4])
    for key in before:
        np.testing.assert_allclose(before[key], after[key], atol=1e-6)


def _leaves(model):
    """Layers holding weights, nested models flattened (written without transfer.named_layers)."""
    out = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if layer.weights and not hasattr(layer, "layers"):
            out.append(layer)
    return out


def test_transfer_from_a_classifier_copies_the_backbone_only():
    from tfxray.models.classifier import build_classifier

    keras.utils.set_random_seed(3)
    classifier = build_classifier("tiny_cnn", input_size=SIZE, weights="none")
    keras.utils.set_random_seed(4)
    target = build_detector("faster_rcnn", "tiny_cnn", input_size=SIZE, **SMALL)
    heads_before = {layer.name: [np.asarray(w) for w in layer.weights]
                    for layer in target.features.layers if layer.name.startswith("fpn_")}
    heads_before.update({name: [np.asarray(w) for w in getattr(target, name).weights]
                         for name in ("rpn_conv", "head_fc1", "head_score")})
    copied, total = transfer_weights(classifier, target)
    backbone = backbone_layer_names(target)
    # tiny_cnn: 8 convolutions without bias (1 tensor each) and 8 BatchNorms (4 tensors each)
    assert len(backbone) == 16
    assert sum(len(target.features.get_layer(name).weights) for name in backbone) == 40
    assert copied == 40 and total > copied
    for name in backbone:
        for a, b in zip(classifier.get_layer(name).weights, target.features.get_layer(name).weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the pyramid and the heads keep their fresh initialisation
    after = {layer.name: layer.weights for layer in target.features.layers if layer.name.startswith("fpn_")}
    after.update({name: getattr(target, name).weights for name in ("rpn_conv", "head_fc1", "head_score")})
    for name, weights in heads_before.items():
        for a, b in zip(weights, after[name]):
            np.testing.assert_array_equal(a, np.asarray(b))


# ----------------------------------------------------------------------------- the femoral-neck recipe


@pytest.mark.slow  # ResNet-50 + FPN built and one step traced: about 20-30 s
def test_femoral_neck_recipe_builds_and_trains_one_step_at_a_tiny_shape():
    from tfxray.config import load_recipe
    from tfxray.training.detection import box_classes, detector_options

    overrides = {"data.input_size": 64, "model.weights": "none", "detection.fpn_filters": 16,
                 "detection.head_units": 16, "detection.rpn_samples": 32, "detection.roi_samples": 16,
                 "detection.proposals_train": 64, "detection.proposals_test": 32}
    recipe = load_recipe("femoral-neck", [(k.split("."), v) for k, v in overrides.items()])
    assert recipe.detection.architecture == "faster_rcnn" and recipe.model.backbone == "resnet50"
    assert recipe.detection.rcnn_weight == 0.1 and recipe.detection.cutoff == 0.4
    keras.utils.set_random_seed(0)
    model = build_detector(recipe.detection.architecture, recipe.model.backbone, input_size=64, channels=1,
                           num_classes=len(box_classes(recipe.classes)), weights=None, **detector_options(recipe))
    assert model.level_keys == ["P2", "P3", "P4", "P5", "P6"]  # ResNet-50's C2..C5 and the pooled P6
    assert model.settings["rpn_weight"] == 1.0 and model.settings["rcnn_weight"] == 0.1
    images = np.random.default_rng(0).random((2, 64, 64, 1)).astype(np.float32)
    targets = {"boxes": np.array([[[10, 20, 30, 44], [36, 30, 50, 52]], [[8, 8, 24, 30], [-1, -1, -1, -1]]],
                                 np.float32),
               "classes": np.array([[0, 0], [0, -1]], np.float32)}
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    logs = model.train_on_batch(images, targets, return_dict=True)
    terms = ("rpn_class_loss", "rpn_box_loss", "rcnn_class_loss", "rcnn_box_loss")
    assert set(terms) <= set(logs) and all(np.isfinite(logs[k]) for k in (*terms, "loss"))
    assert logs["rpn_class_loss"] > 0 and logs["rcnn_class_loss"] > 0
    # the paper's loss: 1 x RPN + 0.1 x R-CNN (zeta and eta)
    expected = logs["rpn_class_loss"] + logs["rpn_box_loss"] + 0.1 * (logs["rcnn_class_loss"] + logs["rcnn_box_loss"])
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    found = detections(model, images)
    n = found["num_detections"]
    assert found["boxes"].shape[0] == 2 and n.shape == (2,)
    for i in range(2):
        boxes = found["boxes"][i, :n[i]]
        assert (boxes >= 0).all() and (boxes <= 64).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        assert ((found["scores"][i, :n[i]] >= 0) & (found["scores"][i, :n[i]] <= 1)).all()
