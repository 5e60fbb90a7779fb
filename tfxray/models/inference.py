"""What a saved model needs at inference, derived from its bundle: geometry, inputs, predictions, call.

``score``, ``evaluate RUN_DIR --data`` and ``gradcam`` ask these helpers; none of them asks
the user again for what the bundle's metadata already says.
"""

from __future__ import annotations

import weakref

import numpy as np

from ..data.geometry import ImageGeometry
from ..data.inputs import OK, InputBuilder, input_builder, status_dataset
from ..data.profile import profile_check
from ..progress import progress as progress_bar
from .bundle import Bundle, BundleMeta


def geometry_of(bundle: Bundle) -> ImageGeometry:
    return ImageGeometry(bundle.meta.input_size, bundle.meta.channels, bundle.meta.resize)


def needs_manifest(bundle: Bundle) -> bool:
    """A CT model's input is a box's region and the slice's neighbours: only a manifest gives them."""
    return bool(bundle.meta.roi or bundle.meta.neighbours)


def inputs_for(bundle: Bundle, manifest=None, *, check_profile: bool = True) -> InputBuilder:
    """The builder of this model's inputs, the one its training used (``data.inputs``).

    CT models need ``manifest`` (boxes, series and slice order); others ignore it. The builder
    checks every input against the model's training profile (``data.profile``: an image outside
    it is skipped with the reason), unless ``check_profile`` is False (``--allow-modality``) or
    the model was saved without a profile (``profile_note``).
    """
    images, boxes = (manifest.images, manifest.boxes) if (manifest is not None and needs_manifest(bundle)) else (None, None)
    profile = profile_check(bundle.meta.trained_on, bundle.meta.input_size) if check_profile else None
    return input_builder(geometry_of(bundle), roi=bundle.meta.roi, neighbours=bundle.meta.neighbours,
                         images=images, boxes=boxes, profile=profile)


def profile_note(meta: BundleMeta, check_profile: bool = True) -> str:
    """The line to say once when inputs are not checked against a training profile, else ''."""
    if not check_profile:
        return ""
    if not meta.trained_on:
        return ("inputs not checked against the training images: this model was saved without a training profile"
                " (trained before tfxray recorded one; retrain to get the check)")
    return ""


def score_columns(classes: list[str]) -> list[str]:
    """``score`` for two classes (probability of the positive class), else ``score_<class>``."""
    return ["score"] if len(classes) == 2 else [f"score_{c}" for c in classes]


def call(meta: BundleMeta, scores) -> tuple[float, str]:
    """(score shown, class called) for one image's model output.

    Two classes: the positive class's probability against the saved threshold; more: the most
    probable class.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    classes = meta.classes
    if len(classes) == 2:
        value = float(scores[0])
        return value, classes[1] if value >= meta.threshold else classes[0]
    return float(scores.max()), classes[int(np.argmax(scores))]


def predict_paths(bundle: Bundle, paths: list[str], batch_size: int = 32, progress: bool = False, manifest=None,
                  check_profile: bool = True):
    """(scores array (n, k), error message per path: '' when the file was scored), frame 0 of each file.

    Models trained on CT inputs (ROI, neighbour slices) need ``manifest`` (boxes, series). An
    image outside the training profile has its reason as its message (``predict_statuses``
    tells it apart from an unreadable file).
    """
    scores, statuses, reasons = predict_statuses(bundle, paths, batch_size, progress, manifest,
                                                 check_profile=check_profile)
    return scores, ["" if s == OK else r for s, r in zip(statuses, reasons)]


def predict_statuses(bundle: Bundle, paths: list[str], batch_size: int = 32, progress: bool = False, manifest=None,
                     *, check_profile: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(scores (n, k), status per path (``data.inputs``: OK, ERROR, SKIPPED, OUTSIDE), reason per path).

    Frame 0 of each file; a row whose status is not OK holds the score of a blank image.
    """
    dataset = status_dataset(inputs_for(bundle, manifest, check_profile=check_profile), paths, batch_size)
    predict = predictor_for(bundle.model)  # one traced graph, not eager calls: several times faster on big backbones
    scores, statuses, reasons = [], [], []
    with progress_bar(total=len(paths), unit="img", desc="scoring", disable=not progress) as bar:
        for _, _, _, status, reason, _, images in dataset:
            scores.append(predict(images))
            statuses.append(status.numpy())
            reasons.extend(r.decode() for r in reason.numpy())
            bar.update(len(reason))
    k = bundle.model.output_shape[-1]
    return (np.concatenate(scores) if scores else np.zeros((0, k), np.float32),
            np.concatenate(statuses) if statuses else np.zeros(0, np.int32), reasons)


class Predictor:
    """``model(images, training=False)`` as one traced graph; split across replicas under a strategy.

    A ``tf.function`` with a fixed signature (any batch size) instead of eager calls: the
    graph runs with Grappler's fusions, like ``model.predict``, and the last, shorter batch does
    not retrace. Under a strategy, every replica gets the batch and scores its own slice; the
    slices are concatenated in replica order, which is batch order. (Keras' ``predict_on_batch``
    would give every replica the whole batch and concatenate duplicates.)
    """

    def __init__(self, model, strategy=None):
        import tensorflow as tf

        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync if strategy is not None else 1

        if strategy is None:
            self._fn = tf.function(lambda images: model(images, training=False), input_signature=[spec],
                                   autograph=False)
            return

        def replica_slice(images):
            context = tf.distribute.get_replica_context()
            count = tf.shape(images)[0]
            share = (count + context.num_replicas_in_sync - 1) // context.num_replicas_in_sync
            start = tf.minimum(share * context.replica_id_in_sync_group, count)
            return model(images[start:tf.minimum(start + share, count)], training=False)

        def distributed(images):
            parts = strategy.experimental_local_results(strategy.run(replica_slice, args=(images,)))
            return tf.concat(parts, axis=0)

        with strategy.scope():
            self._fn = tf.function(distributed, input_signature=[spec])

    def __call__(self, images) -> np.ndarray:
        if self.strategy is None:
            return np.asarray(self._fn(images))
        with self.strategy.scope():
            scores = np.asarray(self._fn(images))
        if len(scores) != len(images):  # each replica must score its own slice, once
            raise RuntimeError(f"{self.replicas} replicas gave {len(scores)} scores for {len(images)} images")
        return scores


_PREDICTORS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def predictor_for(model) -> Predictor:
    """The model's single-device ``Predictor``, traced once and reused (weakly cached per model)."""
    if model not in _PREDICTORS:
        _PREDICTORS[model] = Predictor(model)
    return _PREDICTORS[model]


# --------------------------------------------------------------------------- detectors

BOX_COLUMNS_OUT = ["path", "frame", "x1", "y1", "x2", "y2", "score", "class"]  # boxes.csv


def box_fields(x1: float, y1: float, x2: float, y2: float, score: float) -> list[str]:
    """A box as every boxes.csv writes it: corners to 1/1000 pixel, the confidence to 6 decimals (fewer,
    and a box just under the cut-off reads as on it: counts recomputed from the file would differ)."""
    return [f"{x1:.3f}", f"{y1:.3f}", f"{x2:.3f}", f"{y2:.3f}", f"{score:.6f}"]


class DetectorPredictor:
    """``model.detect`` as one traced graph (any batch size): boxes in model-input pixels."""

    def __init__(self, model):
        import tensorflow as tf

        s = model.settings
        spec = tf.TensorSpec([None, s["input_size"], s["input_size"], s["channels"]], tf.float32)
        self._fn = tf.function(model.detect, input_signature=[spec], autograph=False)
        # Traced once per model. TensorFlow counts the traces of every model's `detect` together (one code
        # object), so a process holding several detectors (evaluating two runs, mining with another run)
        # would warn of "retracing" though none retraces.
        if hasattr(self._fn, "_omit_frequent_tracing_warning"):
            self._fn._omit_frequent_tracing_warning = True

    def __call__(self, images) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self._fn(images).items()}


def detector_predictor_for(model) -> DetectorPredictor:
    if model not in _PREDICTORS:
        _PREDICTORS[model] = DetectorPredictor(model)
    return _PREDICTORS[model]


def image_boxes(found: dict[str, np.ndarray], i: int, height: int, width: int, geometry: ImageGeometry,
                box_classes: list[str], min_score: float = 0.0) -> list[tuple]:
    """Image ``i`` of a ``detect`` batch -> [(x1, y1, x2, y2, score, class)] in original-image pixels
    (the inverse of the resize and pad), highest score first, empty boxes dropped."""
    from ..data.boxes import boxes_from_input

    n = int(found["num_detections"][i])
    scores = found["scores"][i, :n].astype(np.float64)
    keep = scores >= min_score
    boxes = boxes_from_input(found["boxes"][i, :n][keep], height, width, geometry)
    classes = found["classes"][i, :n][keep]
    rows = [(*map(float, box), float(score), box_classes[int(c)])
            for box, score, c in zip(boxes, scores[keep], classes)
            if box[2] > box[0] and box[3] > box[1]]
    return sorted(rows, key=lambda r: -r[4])


def detect_batches(bundle: Bundle, paths: list[str], batch_size: int = 8, *, all_frames: bool = False,
                   check_profile: bool = True, manifest=None):
    """Per batch: (index, frame, frames, status, reason, metadata JSON, boxes per element) for ``paths``,
    boxes as ``image_boxes`` gives them (original pixels); elements whose status is not OK get none."""
    import json

    geometry = geometry_of(bundle)
    box_classes = bundle.meta.detection.get("box_classes") or bundle.meta.classes[1:]
    dataset = status_dataset(inputs_for(bundle, manifest, check_profile=check_profile), paths, batch_size,
                             all_frames=all_frames)
    predict = detector_predictor_for(bundle.model)
    for index, frame, frames, status, reason, meta, images in dataset:
        found = predict(images)
        statuses = status.numpy()
        metas = [json.loads(m.decode()) for m in meta.numpy()]
        boxes = [image_boxes(found, i, int(m.get("rows") or geometry.size), int(m.get("cols") or geometry.size),
                             geometry, box_classes) if statuses[i] == OK else []
                 for i, m in enumerate(metas)]
        yield index.numpy(), frame.numpy(), frames.numpy(), statuses, [r.decode() for r in reason.numpy()], metas, boxes


def detect_paths(bundle: Bundle, paths: list[str], batch_size: int = 8, progress: bool = False, *,
                 check_profile: bool = True, manifest=None):
    """(boxes table ``BOX_COLUMNS_OUT`` in original pixels, status per path, reason per path), frame 0 of each file."""
    import pandas as pd

    rows, statuses, reasons = [], np.zeros(len(paths), np.int32), [""] * len(paths)
    with progress_bar(total=len(paths), unit="img", desc="detecting", disable=not progress) as bar:
        for index, frame, _, status, reason, _, boxes in detect_batches(bundle, paths, batch_size,
                                                                        check_profile=check_profile,
                                                                        manifest=manifest):
            for k, i in enumerate(index):
                statuses[i], reasons[i] = status[k], reason[k]
                rows += [(paths[i], int(frame[k]), *box) for box in boxes[k]]
            bar.update(len(index))
    return pd.DataFrame(rows, columns=BOX_COLUMNS_OUT), statuses, reasons
