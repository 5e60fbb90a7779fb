"""Detectors over the registered backbones: Faster R-CNN with a feature pyramid (Mu et al. 2021).

``FasterRCNN`` is one Keras model: preprocessing (``RadiographPreprocessing``, as the classifier's)
-> a registered backbone -> feature pyramid P2..P(top+1) -> region proposal network (one small
head shared by every level) -> proposals (keras-cv ``ROIGenerator``: decode, top-k, NMS per level)
-> ROI align -> box head (two dense layers, classification over background + classes, one
class-agnostic box regression). The loss is ``rpn_weight * (RPN cross-entropy + smooth-L1) +
rcnn_weight * (R-CNN cross-entropy + smooth-L1)``, 1 and 0.1 by default (the paper's zeta and eta).

Boxes cross the model's boundary as (x1, y1, x2, y2) in model-input pixels: targets
``{"boxes": [B, M, 4], "classes": [B, M]}`` padded with -1 (``data.detection``), and ``detect``
returns ``{"boxes", "scores", "classes", "num_detections"}``. Inside, keras-cv's layers work in
``yxyx``.

keras-cv parts used as they are (keras-cv 0.9.0 under Keras 3.15): ``AnchorGenerator``,
``ROIGenerator``, ``BoxMatcher``, ``_ROISampler``, ``MultiClassNonMaxSuppression``,
``compute_iou``, ``balanced_sample`` and the box delta encoders. Two are replaced, each by the
smallest piece of code that does the job (see ``_roi_align`` and ``_rpn_targets``).

A saved detector is rebuilt from its config (registered class, no code from the file) and loads
in Keras' safe mode, as classifiers do.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import keras
import numpy as np

from ..errors import UserError
from .backbones import build_backbone_output, get_spec, resolve_weights
from .preprocessing import RadiographPreprocessing

BOX_VARIANCE = [0.1, 0.1, 0.2, 0.2]  # keras-cv's delta scaling (the ROI sampler hard-codes it)
FEATURE_MODEL = "features"


def _levels(stage_outputs: list, input_size: int) -> dict[int, object]:
    """Pyramid level -> the deepest backbone stage output of stride 2**level (levels 2..5)."""
    by_level = {}
    for tensor in stage_outputs:
        stride = input_size / int(tensor.shape[1])
        level = int(round(math.log2(stride)))
        if 2 <= level <= 5 and abs(2**level - stride) < 1e-6:
            by_level[level] = tensor  # stages are shallow to deep: the last of a stride wins
    return by_level


def build_feature_pyramid(backbone: str, input_size: int, channels: int, *, fpn_filters: int,
                          weights: str | None = None, normalization: str = "backbone",
                          gray_input: str = "replicate"):
    """[0, 1] pixels -> {"P2": ..., "P6": ...}: the backbone's stages (C2..C5 where present) with the
    FPN's lateral 1x1 and output 3x3 convolutions, plus one max-pooled level on top (FPN's P6)."""
    from keras import layers

    spec = get_spec(backbone)
    mode = spec.preprocessing if normalization == "backbone" else normalization
    inputs = keras.Input((input_size, input_size, channels), name="image")
    x = RadiographPreprocessing(mode, gray_input=gray_input, name="preprocessing")(inputs)
    top = build_backbone_output(backbone, x, resolve_weights(backbone, weights))
    graph = keras.Model(inputs, top)
    stage_outputs = [graph.get_layer(layer).output for _, layer in spec.stages]
    by_level = _levels(stage_outputs, input_size)
    if len(by_level) < 2:
        raise UserError(f"model.backbone: {backbone} has fewer than two stages of stride 4..32 at input size "
                        f"{input_size}; a feature pyramid needs them")
    levels = sorted(by_level)
    lateral = {lvl: layers.Conv2D(fpn_filters, 1, name=f"fpn_lateral{lvl}")(by_level[lvl]) for lvl in levels}
    merged = {levels[-1]: lateral[levels[-1]]}
    for lvl in reversed(levels[:-1]):
        up = layers.UpSampling2D(2, interpolation="nearest", name=f"fpn_up{lvl + 1}")(merged[lvl + 1])
        merged[lvl] = layers.Add(name=f"fpn_merge{lvl}")([lateral[lvl], up])
    outputs = {f"P{lvl}": layers.Conv2D(fpn_filters, 3, padding="same", name=f"fpn_out{lvl}")(merged[lvl])
               for lvl in levels}
    top_level = levels[-1] + 1
    outputs[f"P{top_level}"] = layers.MaxPooling2D(1, strides=2, name=f"fpn_pool{top_level}")(outputs[f"P{levels[-1]}"])
    return keras.Model(inputs, outputs, name=FEATURE_MODEL)


def _level_number(key: str) -> int:
    return int(key[1:])


@keras.saving.register_keras_serializable(package="tfxray")
class FasterRCNN(keras.Model):
    """Faster R-CNN + FPN over a registered backbone. ``call`` returns the training heads; ``detect`` boxes."""

    def __init__(self, backbone: str = "resnet50", input_size: int = 512, channels: int = 1, num_classes: int = 1,
                 *, fpn_filters: int = 256, head_units: int = 1024, anchor_scale: float = 8.0,
                 aspect_ratios=(0.5, 1.0, 2.0), rpn_weight: float = 1.0, rcnn_weight: float = 0.1,
                 rpn_samples: int = 256, roi_samples: int = 512, proposals_train: int = 2000,
                 proposals_test: int = 1000, max_detections: int = 100, min_score: float = 0.01,
                 nms_iou: float = 0.5, normalization: str = "backbone", gray_input: str = "replicate",
                 backbone_weights: str | None = None, **kwargs):
        super().__init__(**kwargs)
        from keras import layers
        from keras_cv.layers import MultiClassNonMaxSuppression
        from keras_cv.src.layers.object_detection.anchor_generator import AnchorGenerator
        from keras_cv.src.layers.object_detection.box_matcher import BoxMatcher
        from keras_cv.src.layers.object_detection.roi_generator import ROIGenerator
        from keras_cv.src.layers.object_detection.roi_sampler import _ROISampler

        self.settings = dict(
            backbone=backbone, input_size=int(input_size), channels=int(channels), num_classes=int(num_classes),
            fpn_filters=int(fpn_filters), head_units=int(head_units), anchor_scale=float(anchor_scale),
            aspect_ratios=[float(a) for a in aspect_ratios], rpn_weight=float(rpn_weight),
            rcnn_weight=float(rcnn_weight), rpn_samples=int(rpn_samples), roi_samples=int(roi_samples),
            proposals_train=int(proposals_train), proposals_test=int(proposals_test),
            max_detections=int(max_detections), min_score=float(min_score), nms_iou=float(nms_iou),
            normalization=normalization, gray_input=gray_input,
        )
        s = self.settings
        # backbone_weights is not part of the config: a saved model is rebuilt empty and its own weights loaded
        self.features = build_feature_pyramid(backbone, s["input_size"], s["channels"], fpn_filters=s["fpn_filters"],
                                              weights=backbone_weights, normalization=normalization,
                                              gray_input=gray_input)
        self.level_keys = sorted(self.features.output.keys(), key=_level_number)
        strides = {k: 2 ** _level_number(k) for k in self.level_keys}
        n_anchors = len(s["aspect_ratios"])
        generator = AnchorGenerator(bounding_box_format="yxyx",
                                    sizes={k: s["anchor_scale"] * stride for k, stride in strides.items()},
                                    scales=[1.0], aspect_ratios=s["aspect_ratios"], strides=strides)
        anchors = generator(np.zeros((s["input_size"], s["input_size"], 1), np.float32))
        # constants of the input size, in level order
        self.anchors = {k: np.asarray(keras.ops.convert_to_numpy(anchors[k]), np.float32) for k in self.level_keys}
        self.anchor_count = int(sum(len(a) for a in self.anchors.values()))
        self.rpn_conv = layers.Conv2D(s["fpn_filters"], 3, padding="same", activation="relu", name="rpn_conv")
        self.rpn_score = layers.Conv2D(n_anchors, 1, name="rpn_score", dtype="float32")
        self.rpn_delta = layers.Conv2D(4 * n_anchors, 1, name="rpn_delta", dtype="float32",
                                       kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))
        self.head_flatten = layers.Flatten(name="head_flatten")
        self.head_fc1 = layers.Dense(s["head_units"], activation="relu", name="head_fc1")
        self.head_fc2 = layers.Dense(s["head_units"], activation="relu", name="head_fc2")
        self.head_score = layers.Dense(s["num_classes"] + 1, name="head_score", dtype="float32")
        self.head_delta = layers.Dense(4, name="head_delta", dtype="float32",
                                       kernel_initializer=keras.initializers.RandomNormal(stddev=0.001))
        self.roi_generator = ROIGenerator(
            bounding_box_format="yxyx", pre_nms_topk_train=s["proposals_train"],
            post_nms_topk_train=max(s["proposals_train"] // 2, s["roi_samples"]),
            pre_nms_topk_test=s["proposals_test"], post_nms_topk_test=max(s["proposals_test"] // 2, 1),
            nms_iou_threshold_train=0.7, nms_iou_threshold_test=0.7, dtype="float32")
        # keras-cv's RPN label encoder cannot be used: its BoxMatcher has force_match_for_each_col=False, so a
        # fracture smaller than every anchor (common: a femoral-neck line is tens of pixels) gets no positive
        # anchor and the RPN never learns it. _rpn_targets does the same with the forced match on.
        self.rpn_matcher = BoxMatcher(thresholds=[0.3, 0.7], match_values=[-1, -2, 1], force_match_for_each_col=True)
        self.roi_sampler = _ROISampler(bounding_box_format="yxyx",
                                       roi_matcher=BoxMatcher(thresholds=[0.0, 0.5], match_values=[-2, -1, 1]),
                                       positive_fraction=0.25, background_class=0, num_sampled_rois=s["roi_samples"],
                                       append_gt_boxes=True, name="roi_sampler", dtype="float32")
        self.nms = MultiClassNonMaxSuppression(bounding_box_format="yxyx", from_logits=False,
                                               iou_threshold=s["nms_iou"], confidence_threshold=s["min_score"],
                                               max_detections=s["max_detections"], dtype="float32")
        # box geometry, sampling and NMS stay float32 under mixed precision (TensorFlow's NMS has no bfloat16 kernel)
        self.loss_trackers = {name: keras.metrics.Mean(name=name)
                              for name in ("rpn_class_loss", "rpn_box_loss", "rcnn_class_loss", "rcnn_box_loss")}

    # ----------------------------------------------------------------------------- config

    def get_config(self):
        config = super().get_config()
        config.update(self.settings)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return cls(**config)

    # ----------------------------------------------------------------------------- forward

    def build(self, input_shape=None):
        """Create every weight by running the model once on a blank image (the heads included)."""
        if self.built:
            return
        self.built = True  # before the call: Layer.__call__ would otherwise build again
        s = self.settings
        heads = self.call(keras.ops.zeros((1, s["input_size"], s["input_size"], s["channels"])))
        self._box_head(heads["features"], heads["rois"])

    def call(self, images, training=False):
        """images [B, S, S, C] in [0, 1] -> {"features", "rpn_scores" [B, A, 1], "rpn_deltas" [B, A, 4], "rois"}."""
        import tensorflow as tf
        from keras_cv.src.bounding_box import _decode_deltas_to_boxes

        feats = self.features(images, training=training)
        batch = tf.shape(images)[0]
        scores, deltas = {}, {}
        for key in self.level_keys:
            hidden = self.rpn_conv(feats[key])
            count = len(self.anchors[key])  # static: keras-cv's ROIGenerator needs it
            scores[key] = tf.reshape(self.rpn_score(hidden), (batch, count, 1))
            deltas[key] = tf.reshape(self.rpn_delta(hidden), (batch, count, 4))
        anchors = {k: tf.constant(v) for k, v in self.anchors.items()}
        boxes = _decode_deltas_to_boxes(anchors=anchors, boxes_delta=deltas, anchor_format="yxyx",
                                        box_format="yxyx", variance=BOX_VARIANCE)
        size = float(self.settings["input_size"])
        boxes = {k: tf.clip_by_value(v, 0.0, size) for k, v in boxes.items()}
        probabilities = {k: tf.sigmoid(v) for k, v in scores.items()}
        with _float32_policy():
            rois, _ = self.roi_generator(boxes, probabilities, training=training)
        return {
            "features": [feats[k] for k in self.level_keys],
            "rpn_scores": tf.concat([scores[k] for k in self.level_keys], axis=1),
            "rpn_deltas": tf.concat([deltas[k] for k in self.level_keys], axis=1),
            "rois": tf.stop_gradient(rois),
        }

    def _box_head(self, features: list, rois, training=False):
        """ROI-aligned features of ``rois`` (yxyx, input pixels) -> (class logits [B, R, K+1], deltas [B, R, 4])."""
        import tensorflow as tf

        pooled = _roi_align(features, [_level_number(k) for k in self.level_keys], rois, self.settings["input_size"])
        batch, count = tf.shape(rois)[0], tf.shape(rois)[1]
        flat = tf.reshape(pooled, (batch * count, ROI_SIZE, ROI_SIZE, pooled.shape[-1]))
        hidden = self.head_fc2(self.head_fc1(self.head_flatten(flat), training=training), training=training)
        logits = tf.reshape(self.head_score(hidden), (batch, count, self.settings["num_classes"] + 1))
        deltas = tf.reshape(self.head_delta(hidden), (batch, count, 4))
        return logits, deltas

    def detect(self, images):
        """images [B, S, S, C] in [0, 1] -> boxes [B, D, 4] (x1, y1, x2, y2 input pixels), scores [B, D],
        classes [B, D] (0-based fracture class), num_detections [B]; rows past num_detections are padding."""
        import tensorflow as tf
        from keras_cv.src.bounding_box import _decode_deltas_to_boxes

        heads = self(images, training=False)
        rois = heads["rois"]
        logits, deltas = self._box_head(heads["features"], rois)
        boxes = _decode_deltas_to_boxes(anchors=rois, boxes_delta=deltas, anchor_format="yxyx", box_format="yxyx",
                                        variance=BOX_VARIANCE)
        boxes = tf.clip_by_value(boxes, 0.0, float(self.settings["input_size"]))
        probabilities = tf.nn.softmax(logits, axis=-1)[..., 1:]
        found = self.nms(boxes, probabilities)
        y1, x1, y2, x2 = tf.unstack(found["boxes"], axis=-1)
        return {"boxes": tf.stack([x1, y1, x2, y2], axis=-1), "scores": found["confidence"],
                "classes": tf.cast(found["classes"], tf.int32), "num_detections": found["num_detections"]}

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.detect(x)

    # ----------------------------------------------------------------------------- loss

    @property
    def metrics(self):
        # not the ROI sampler's own counter (an unnamed "mean" in the progress line)
        internal = {id(m) for m in self.roi_sampler.metrics}
        return [m for m in super().metrics if id(m) not in internal] + list(self.loss_trackers.values())

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        import tensorflow as tf

        s = self.settings
        gt_boxes = _yxyx(tf.cast(y["boxes"], tf.float32))
        gt_classes = tf.cast(y["classes"], tf.float32)[..., None]
        valid = gt_classes >= 0
        # Padding rows become empty boxes at the origin (IoU 0 with everything), not keras-cv's -1 "masked" boxes:
        # a row of IoUs all masked to -1 ties with BoxMatcher's own -1 padding column, and argmax may then
        # return that column's index (one past the last box), which _target_gather cannot gather
        # ("indices[5,0] = 2 is not in [0, 2)" on a batch with a normal image).
        gt_boxes = tf.where(valid, gt_boxes, tf.zeros_like(gt_boxes))

        anchors = tf.concat([tf.constant(self.anchors[k]) for k in self.level_keys], axis=0)
        box_targets, box_weights, class_targets, class_weights = _rpn_targets(
            self.rpn_matcher, anchors, gt_boxes, valid, s["rpn_samples"])
        rpn_class = _weighted_mean(
            keras.losses.binary_crossentropy(class_targets, y_pred["rpn_scores"], from_logits=True)[..., None],
            class_weights)
        rpn_box = _weighted_mean(_smooth_l1(box_targets, y_pred["rpn_deltas"]), box_weights,
                                 normaliser=class_weights)

        # class 0 is the background: fracture classes move up by one; padding stays -1 (never matched)
        roi_classes = tf.where(valid, gt_classes + 1.0, -tf.ones_like(gt_classes))
        rois, roi_box_targets, roi_box_weights, roi_class_targets, roi_class_weights = self.roi_sampler(
            y_pred["rois"], gt_boxes, roi_classes)
        logits, deltas = self._box_head(y_pred["features"], tf.stop_gradient(rois), training=training)
        rcnn_class = _weighted_mean(
            keras.losses.sparse_categorical_crossentropy(tf.cast(roi_class_targets[..., 0], tf.int32), logits,
                                                         from_logits=True)[..., None],
            roi_class_weights)
        rcnn_box = _weighted_mean(_smooth_l1(roi_box_targets, deltas), roi_box_weights,
                                  normaliser=roi_class_weights)
        for name, value in zip(self.loss_trackers, (rpn_class, rpn_box, rcnn_class, rcnn_box)):
            self.loss_trackers[name].update_state(value)
        total = s["rpn_weight"] * (rpn_class + rpn_box) + s["rcnn_weight"] * (rcnn_class + rcnn_box)
        # per-replica loss: gradients are summed across replicas (as Keras' own compute_loss scales it)
        return total / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, total.dtype)


ROI_SIZE = 7


@contextmanager
def _float32_policy():
    """The global dtype policy float32 for a moment: keras-cv's ROIGenerator builds its NonMaxSuppression
    layers inside ``call`` under the global policy, so under mixed_bfloat16 they fail ("Input 'y' of 'Greater'
    Op has type float32 that does not match type bfloat16 of argument 'x'"); its inputs are float32 already."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _yxyx(boxes):
    import tensorflow as tf

    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    return tf.stack([y1, x1, y2, x2], axis=-1)


def _smooth_l1(targets, predictions, beta: float = 1.0 / 9.0):
    """Per-box smooth-L1 summed over the 4 deltas -> [..., 1] (Detectron's beta = 1/9)."""
    import tensorflow as tf

    diff = tf.abs(tf.cast(targets, tf.float32) - tf.cast(predictions, tf.float32))
    loss = tf.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta)
    return tf.reduce_sum(loss, axis=-1, keepdims=True)


def _weighted_mean(values, weights, normaliser=None):
    """sum(values * weights) / max(sum(normaliser or weights), 1)."""
    import tensorflow as tf

    weights = tf.cast(weights, tf.float32)
    norm = weights if normaliser is None else tf.cast(normaliser, tf.float32)
    return tf.reduce_sum(tf.cast(values, tf.float32) * weights) / tf.maximum(tf.reduce_sum(norm), 1.0)


def _rpn_targets(matcher, anchors, gt_boxes, valid, samples_per_image: int, positive_fraction: float = 0.5):
    """Anchor labels of the RPN: IoU >= 0.7 positive, < 0.3 negative, and each reference box's best anchor
    positive whatever its IoU (the forced match); ``samples_per_image`` anchors sampled, half positive at most.
    Returns (box targets [B, A, 4], box weights [B, A, 1], class targets [B, A, 1], class weights [B, A, 1])."""
    import tensorflow as tf
    from keras_cv.src.bounding_box import _encode_box_to_deltas
    from keras_cv.src.bounding_box.iou import compute_iou
    from keras_cv.src.layers.object_detection import sampling
    from keras_cv.src.utils import target_gather

    batch = tf.shape(gt_boxes)[0]
    tiled = tf.tile(anchors[None], (batch, 1, 1))
    similarity = compute_iou(tiled, gt_boxes, bounding_box_format="yxyx")
    matched, values = matcher(similarity)
    # The forced match also "matches" padding columns, and BoxMatcher's own extra -1 column (index M, one past
    # the last box) to its best anchor: keep only real reference boxes.
    count = tf.shape(gt_boxes)[1]
    in_range = matched < count
    matched = tf.minimum(matched, count - 1)
    matched_valid = tf.logical_and(in_range, tf.gather(tf.cast(valid[..., 0], tf.bool), matched, batch_dims=1))
    positive = tf.logical_and(tf.equal(values, 1), matched_valid)
    negative = tf.logical_and(tf.equal(values, -1), tf.logical_not(positive))
    matched_boxes = target_gather._target_gather(gt_boxes, matched)
    deltas = _encode_box_to_deltas(anchors=tiled, boxes=matched_boxes, anchor_format="yxyx", box_format="yxyx",
                                   variance=BOX_VARIANCE)
    sampled = sampling.balanced_sample(positive, negative, samples_per_image, positive_fraction)
    box_weights = tf.cast(positive, tf.float32)[..., None]
    deltas = tf.where(box_weights > 0, deltas, tf.zeros_like(deltas))
    return deltas, box_weights, tf.cast(positive, tf.float32)[..., None], tf.cast(sampled, tf.float32)[..., None]


def _roi_align(features: list, levels: list[int], rois, input_size: int):
    """ROI align over the pyramid: each box pooled to 7x7 from its FPN level (k = 4 + log2(sqrt(wh) / 224),
    clipped to the pyramid), bilinear samples at 2x2 points per cell averaged (crop_and_resize to 14x14, then
    a 2x2 average pool). Replaces keras-cv's ``_ROIAligner``, which fails under Keras 3.15 on any pyramid
    ("Input to reshape is a tensor with 3920 values, but the requested shape has 31360 [Op:Reshape]" for
    2 images x 10 boxes x 8 channels)."""
    import tensorflow as tf

    batch, count = tf.shape(rois)[0], tf.shape(rois)[1]
    flat = tf.reshape(rois, (-1, 4))
    heights = tf.maximum(flat[:, 2] - flat[:, 0], 1e-3)
    widths = tf.maximum(flat[:, 3] - flat[:, 1], 1e-3)
    target = tf.floor(4.0 + tf.math.log(tf.sqrt(heights * widths) / 224.0) / math.log(2.0))
    pooled_levels = levels[:-1] if len(levels) > 2 else levels  # the max-pooled top level only proposes
    target = tf.clip_by_value(target, float(pooled_levels[0]), float(pooled_levels[-1]))
    box_index = tf.repeat(tf.range(batch), count)
    samples = 2 * ROI_SIZE
    pooled = None
    for level, feature in zip(levels, features):
        if level not in pooled_levels:
            continue
        # Input pixels -> this level's index coordinates (pixel k's centre is at k): u = coord / stride - 0.5.
        # crop_and_resize samples the box's two edges and spreads the rest evenly; ROI align samples the
        # centres of a samples x samples grid, so the box handed over is shrunk by half a sample on each side.
        # The map gets a one-pixel border copied from its edge (index + 1), so a sample up to one pixel outside
        # reads the edge value, as ROI align clamps it (Detectron2), and one further out reads 0.
        stride = float(2**level)
        padded = tf.pad(tf.cast(feature, tf.float32), [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
        last_y = tf.cast(tf.shape(padded)[1] - 1, tf.float32)
        last_x = tf.cast(tf.shape(padded)[2] - 1, tf.float32)
        y1, x1, y2, x2 = tf.unstack(flat / stride + 0.5, axis=-1)  # - 0.5 for pixel centres, + 1 for the border
        step_y, step_x = (y2 - y1) / (2 * samples), (x2 - x1) / (2 * samples)
        grid = tf.stack([(y1 + step_y) / last_y, (x1 + step_x) / last_x, (y2 - step_y) / last_y,
                         (x2 - step_x) / last_x], axis=-1)
        crops = tf.image.crop_and_resize(padded, grid, box_index, (samples, samples))
        crops = tf.nn.avg_pool2d(crops, 2, 2, "VALID")
        chosen = tf.cast(tf.equal(target, float(level)), tf.float32)[:, None, None, None]
        pooled = crops * chosen if pooled is None else pooled + crops * chosen
    channels = features[0].shape[-1]
    return tf.reshape(pooled, (batch, count, ROI_SIZE, ROI_SIZE, channels))


def build_detector(architecture: str, backbone: str, *, input_size: int, channels: int = 1, num_classes: int = 1,
                   weights: str | None = None, **options):
    """A detector for the recipe's ``model.architecture``; built (weights created) before it is returned."""
    if architecture == "retinanet":
        from .retinanet import build_retinanet

        model = build_retinanet(backbone, input_size=input_size, channels=channels, num_classes=num_classes,
                                weights=weights, **options)
    elif architecture == "faster_rcnn":
        model = FasterRCNN(backbone, input_size, channels, num_classes, backbone_weights=weights, **options)
    else:
        raise UserError(f"detection.architecture: {architecture!r} is not one of faster_rcnn, retinanet")
    model.build((None, input_size, input_size, channels))
    return model


def backbone_layers(model) -> list:
    """The layers with weights that belong to the backbone (not preprocessing, pyramid or heads): what
    ``model.freeze: all-but-top`` freezes. Faster R-CNN keeps them in ``features`` (with its FPN),
    RetinaNet in ``backbone``."""
    graph = model.features if isinstance(model, FasterRCNN) else model.backbone
    return [layer for layer in graph.layers
            if layer.weights and not layer.name.startswith("fpn_") and layer.name != "preprocessing"]


def backbone_layer_names(model) -> set[str]:
    return {layer.name for layer in backbone_layers(model)}


def set_backbone_trainable(model, trainable: bool) -> None:
    for layer in backbone_layers(model):
        layer.trainable = trainable


def compile_detector(model, optimizer) -> None:
    """Faster R-CNN computes its own loss (``compute_loss``); RetinaNet takes keras-cv's focal and smooth-L1."""
    if isinstance(model, FasterRCNN):
        model.compile(optimizer=optimizer)
    else:
        model.compile(optimizer=optimizer, classification_loss="focal", box_loss="smoothl1")
