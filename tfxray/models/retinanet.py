"""RetinaNet (one-stage) over the registered backbones: ``keras_cv.models.RetinaNet`` with its own
feature pyramid (P3-P7), focal loss and smooth-L1, the backbone built from tfxray's registry
(constructor, no preset download), so ImageNet weights and the converted ResNeXt work unchanged.

``RegistryBackbone`` wraps a registered backbone as the keras-cv ``Backbone`` RetinaNet asks for
(``pyramid_level_inputs``: the last layer of the stride-8, -16 and -32 stages); ``RetinaNetDetector``
adds what tfxray's scoring reads (``settings``, ``detect``). Both are registered and rebuilt from
their config, so a saved model loads in Keras' safe mode.
"""

from __future__ import annotations

import math

import keras
from keras_cv.models import Backbone, RetinaNet

from ..errors import UserError
from .backbones import build_backbone_output, get_spec, resolve_weights
from .preprocessing import RadiographPreprocessing

RETINANET_LEVELS = ("P3", "P4", "P5")


@keras.saving.register_keras_serializable(package="tfxray")
class RegistryBackbone(Backbone):
    """A registered backbone (with tfxray's preprocessing in front) as a keras-cv ``Backbone``."""

    def __init__(self, backbone: str = "resnet50", input_size: int = 512, channels: int = 1,
                 normalization: str = "backbone", gray_input: str = "replicate", weights: str | None = None,
                 **kwargs):
        spec = get_spec(backbone)
        mode = spec.preprocessing if normalization == "backbone" else normalization
        inputs = keras.Input((input_size, input_size, channels), name="image")
        x = RadiographPreprocessing(mode, gray_input=gray_input, name="preprocessing")(inputs)
        top = build_backbone_output(backbone, x, resolve_weights(backbone, weights))
        super().__init__(inputs=inputs, outputs=top, **kwargs)
        levels = {}
        for _, layer_name in spec.stages:  # shallow to deep: the last stage of a stride wins
            stride = input_size / int(self.get_layer(layer_name).output.shape[1])
            level = int(round(math.log2(stride)))
            if abs(2**level - stride) < 1e-6:
                levels[f"P{level}"] = layer_name
        missing = [lvl for lvl in RETINANET_LEVELS if lvl not in levels]
        if missing:
            raise UserError(f"detection.architecture: retinanet needs stages of stride 8, 16 and 32; {backbone} at "
                            f"{input_size} px has none for {', '.join(missing)} (use faster_rcnn)")
        self.pyramid_level_inputs = levels
        self.settings = dict(backbone=backbone, input_size=int(input_size), channels=int(channels),
                             normalization=normalization, gray_input=gray_input)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self.settings}


@keras.saving.register_keras_serializable(package="tfxray")
class RetinaNetDetector(RetinaNet):
    """keras-cv's RetinaNet with tfxray's detector interface: ``settings`` and ``detect``."""

    def __init__(self, backbone, num_classes, bounding_box_format="xyxy", settings: dict | None = None, **kwargs):
        super().__init__(backbone=backbone, num_classes=num_classes, bounding_box_format=bounding_box_format,
                         **kwargs)
        self.settings = dict(settings or {})

    def get_config(self):
        config = super().get_config()
        config["settings"] = self.settings
        return config

    def detect(self, images):
        """As ``FasterRCNN.detect``: boxes (x1, y1, x2, y2 input pixels), scores, classes, num_detections."""
        import tensorflow as tf

        found = self.decode_predictions(self(images, training=False), images)
        return {"boxes": tf.cast(found["boxes"], tf.float32), "scores": tf.cast(found["confidence"], tf.float32),
                "classes": tf.cast(found["classes"], tf.int32), "num_detections": found["num_detections"]}


def build_retinanet(backbone: str, *, input_size: int, channels: int = 1, num_classes: int = 1, weights=None,
                    anchor_scale: float = 4.0, max_detections: int = 100, min_score: float = 0.01,
                    nms_iou: float = 0.5, normalization: str = "backbone", gray_input: str = "replicate",
                    rpn_weight=None, rcnn_weight=None, **unused):
    """A RetinaNet for ``input_size`` pixels: anchors ``anchor_scale`` x stride at P3-P7 (3 scales, 3 ratios),
    keras-cv's focal and smooth-L1 losses (``compile_retinanet``). The Faster R-CNN-only options
    (``unused``: FPN width, head units, RPN/ROI sampling) do not apply."""
    from keras_cv.layers import AnchorGenerator, MultiClassNonMaxSuppression

    strides = [2**level for level in range(3, 8)]
    anchors = AnchorGenerator(bounding_box_format="xyxy", sizes=[anchor_scale * s for s in strides],
                              scales=[2**0, 2 ** (1 / 3), 2 ** (2 / 3)], aspect_ratios=[0.5, 1.0, 2.0],
                              strides=strides, clip_boxes=True)
    decoder = MultiClassNonMaxSuppression(bounding_box_format="xyxy", from_logits=True, iou_threshold=nms_iou,
                                          confidence_threshold=min_score, max_detections=max_detections,
                                          dtype="float32")
    settings = dict(backbone=backbone, input_size=int(input_size), channels=int(channels),
                    num_classes=int(num_classes), anchor_scale=float(anchor_scale), min_score=float(min_score))
    return RetinaNetDetector(RegistryBackbone(backbone, input_size, channels, normalization, gray_input, weights),
                             num_classes, "xyxy", settings=settings, anchor_generator=anchors,
                             prediction_decoder=decoder)


ANCHOR_MATCH_IOU = 0.5  # keras-cv's RetinaNetLabelEncoder: an anchor is positive at IoU >= 0.5


def unmatched_boxes(model, boxes) -> int:
    """How many of ``boxes`` (input pixels, x1 y1 x2 y2) no anchor of ``model`` overlaps at IoU >= 0.5.

    keras-cv's label encoder has no forced match: such a box gives no positive anchor and its loss
    is silently zero, so training must say so (``training.detection``)."""
    import numpy as np

    from ..evaluation.boxes import iou

    size, channels = model.settings["input_size"], model.settings["channels"]
    anchors = model.anchor_generator(image_shape=(size, size, channels))
    anchors = np.concatenate([np.asarray(a) for a in anchors.values()], axis=0)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    missed = 0
    for start in range(0, len(boxes), 256):  # chunks: anchors x boxes stays small
        best = iou(boxes[start:start + 256], anchors).max(axis=1)
        missed += int((best < ANCHOR_MATCH_IOU).sum())
    return missed
