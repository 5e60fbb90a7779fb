"""Grad-CAM and Grad-CAM++ heatmaps through tf-keras-vis, batched, and their panels.

The target layer defaults to the backbone's declared last convolutional block (saved in
the bundle), never searched for by name at run time. Panels show the display-windowed
radiograph beside the heatmap overlaid on it, with the score and call in the caption.
"""

from __future__ import annotations

import functools
import hashlib
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.geometry import boxes_to_input
from ..data.inputs import OK, decode_with_status
from ..errors import UserError
from ..io import atomic_save_figure
from ..models.bundle import Bundle
from ..models.inference import call, geometry_of, inputs_for, predictor_for
from . import METHODS


@dataclass
class Heatmap:
    path: str
    image: np.ndarray  # (H, W, C) model input in [0, 1]
    cam: np.ndarray  # (H, W) in [0, 1]
    score: float
    call: str
    frame: int | None = None  # the frame of a multi-frame file, shown in the caption
    method: str = "gradcam"
    source_size: tuple[int, int] | None = None  # (rows, cols) of the original image, for its boxes
    roi: tuple[int, int, int] | None = None  # (top, left, side) of a CT input's square crop, in original pixels


# One explainer per (model, method, layer): building one (a traced feature graph, a copy of
# the head) costs as much as many gradient passes, so it is built once and reused across
# batches (and across ``tfxray score --gradcam`` batches). Weak keys: a model that is no longer
# used takes its explainers with it.
_EXPLAINERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def explainer_for(model, method: str = "gradcam", layer: str | None = None):
    """The cached tf-keras-vis Gradcam / GradcamPlusPlus of ``model`` for target ``layer``.

    With ``layer``, tf-keras-vis gets ``explanation_model(model, layer)`` (the part up to
    ``layer`` as one traced graph); without, or where the model cannot be split there, the
    model itself, cloned with a linear output as tf-keras-vis does by default.
    """
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

    if method not in METHODS:
        raise UserError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    per_model = _EXPLAINERS.setdefault(model, {})
    key = (method, layer)
    if key not in per_model:
        cls = Gradcam if method == "gradcam" else GradcamPlusPlus
        split = explanation_model(model, layer) if layer else None
        if split is not None:  # its head is already a linear copy: nothing for tf-keras-vis to clone or modify
            per_model[key] = cls(split, model_modifier=None, clone=False)
        else:
            per_model[key] = cls(model, model_modifier=ReplaceToLinear(), clone=True)
    return per_model[key]


def explanation_model(model, layer: str):
    """``model`` rebuilt for tf-keras-vis: input -> [``layer`` as one traced graph] -> a linear copy of the head.

    tf-keras-vis runs its model eagerly, op by op, inside a GradientTape; for a ResNet50 that
    forward pass is most of the cost of a heatmap, and it gains little from batching on a CPU.
    Grad-CAM only needs gradients from the score back to ``layer``'s output, never into the
    backbone, so the backbone up to ``layer`` runs here as one ``tf.function`` (Grappler's
    fused graph, as ``model.predict`` runs it) whose gradient to the input is declared zero
    (it is never asked for), and only the head after it runs eagerly under the tape.
    tf-keras-vis still does all the Grad-CAM / Grad-CAM++ arithmetic on the result; a test holds
    the heatmaps equal to its plain path. The head's last activation is linear, as
    tf-keras-vis's ``ReplaceToLinear`` makes it. ResNet50 at 224 px on 2 CPU cores: 2 heatmaps
    per second one plain call per image, 6 in plain batches of 16, 22 here
    (``benchmarks/gradcam.py``).

    Returns None when the model cannot be cut at ``layer`` (a connection skips past it).
    """
    import keras

    target = model.get_layer(layer)
    try:
        head = keras.Model(target.output, model.output)
        features = keras.Model(model.inputs, target.output)
    except ValueError:  # the graph after ``layer`` also reads earlier tensors
        return None
    linear_head = keras.models.clone_model(head)
    linear_head.set_weights(head.get_weights())
    linear_head.layers[-1].activation = keras.activations.linear
    traced = _traced_features_class()(features, name=layer)
    inputs = keras.Input(model.input_shape[1:], name="image")
    return keras.Model(inputs, linear_head(traced(inputs)), name=f"{model.name}_explain")


@functools.cache
def _traced_features_class():
    """The Keras layer class (defined on first use: importing keras is slow)."""
    import keras
    import tensorflow as tf

    class TracedFeatures(keras.layers.Layer):
        """A model's input-to-layer part as one graph call; gradients reach its output, not its input."""

        def __init__(self, features, **kwargs):
            super().__init__(dtype="float32", autocast=False, trainable=False, **kwargs)
            self._out_shape = tuple(features.output.shape[1:])
            spec = tf.TensorSpec([None, *features.input_shape[1:]], tf.float32)
            self._run = tf.function(lambda images: tf.cast(features(images, training=False), tf.float32),
                                    input_signature=[spec], autograph=False)

        def call(self, images):
            @tf.custom_gradient
            def features_only(pixels):
                # The tape records this one op, so gradients reach its output; the graph itself
                # runs untaped (no activations kept for a backward pass nobody asks for).
                def never_used(upstream, variables=()):
                    return tf.zeros_like(pixels), [None] * len(variables)

                return self._run(pixels), never_used

            return features_only(tf.cast(images, tf.float32))

        def compute_output_shape(self, input_shape):
            return (input_shape[0], *self._out_shape)

    return TracedFeatures


def compute_cams(bundle: Bundle, images: np.ndarray, *, layer: str | None = None, method: str = "gradcam",
                 scores: np.ndarray | None = None) -> np.ndarray:
    """Heatmaps (n, H, W) in [0, 1] for the positive class (two classes) or the predicted class.

    All ``images`` go through one gradient computation. ``scores`` (the model's outputs for
    ``images``, when the caller has them) saves a forward pass for models of more than two classes.
    """
    from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore

    if method not in METHODS:
        raise UserError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    layer = layer or bundle.meta.gradcam_layer
    if layer not in {l.name for l in bundle.model.layers}:
        raise UserError(f"--layer: the model has no layer named {layer!r}")
    images = np.asarray(images, dtype=np.float32)
    if len(images) == 0:
        return np.zeros((0, *images.shape[1:3]), np.float32)
    explainer = explainer_for(bundle.model, method, layer)
    if len(bundle.meta.classes) == 2:
        score = BinaryScore([1.0] * len(images))
    else:
        if scores is None:
            scores = _predict(bundle, images)
        score = CategoricalScore(list(map(int, np.argmax(scores, axis=-1))))
    cams = explainer(score, images, penultimate_layer=layer, seek_penultimate_conv_layer=False)
    cams = np.nan_to_num(np.asarray(cams, dtype=np.float32))
    return cams.reshape(len(images), *images.shape[1:3])  # one image: tf-keras-vis may drop the batch axis


def explain_images(bundle: Bundle, images: np.ndarray, labels: list[str], scores: np.ndarray | None = None, *,
                   layer: str | None = None, method: str = "gradcam", frames: list | None = None) -> list[Heatmap]:
    """Heatmaps for images already decoded (one gradient computation), with score and call."""
    images = np.asarray(images, dtype=np.float32)
    if scores is None:
        scores = _predict(bundle, images)
    cams = compute_cams(bundle, images, layer=layer, method=method, scores=scores)
    frames = frames if frames is not None else [None] * len(images)
    out = []
    for label, image, cam, score, frame in zip(labels, images, cams, scores, frames):
        value, called = call(bundle.meta, score)
        out.append(Heatmap(label, image, cam, value, called, frame, method))
    return out


def explain_paths(bundle: Bundle, paths: list[str], *, layer: str | None = None, method: str = "gradcam",
                  batch_size: int = 16, manifest=None, failures: list | None = None,
                  check_profile: bool = True) -> list[Heatmap]:
    """Heatmaps for image files, many images per gradient computation (frame 0 of multi-frame files).

    Each image is the input the model was trained on, built by the bundle's input builder
    (``models.inference.inputs_for``): a CT model explains its region of interest and
    neighbour slices, which needs ``manifest``. A file that cannot be read raises
    ``ImageReadError``; with ``failures``, it is left out and (path, reason) appended there, as is
    an image outside the model's training profile (unless ``check_profile`` is False).
    """
    builder = inputs_for(bundle, manifest, check_profile=check_profile)
    out: list[Heatmap] = []
    for start in range(0, len(paths), batch_size):
        loaded = []
        for path in paths[start : start + batch_size]:
            if failures is None:
                loaded.append((path, *builder.load_path(path)))
                continue
            image, status, reason, meta, _ = decode_with_status(builder, builder.source_of(path))
            if status == OK:
                loaded.append((path, image, meta))
            else:
                failures.append((path, reason))
        if not loaded:
            continue
        heatmaps = explain_images(bundle, np.stack([image for _, image, _ in loaded]), [p for p, _, _ in loaded],
                                  layer=layer, method=method)
        for heatmap, (_, _, meta) in zip(heatmaps, loaded):
            heatmap.source_size = (int(meta["rows"]), int(meta["cols"]))
            heatmap.roi = meta.get("roi")
        out += heatmaps
    return out


def _predict(bundle: Bundle, images: np.ndarray) -> np.ndarray:
    return predictor_for(bundle.model)(images)


def panel_name(relative_path: str, frame: int | None = None, method: str = "gradcam") -> str:
    """A panel file name from a file's path relative to the scored folder: ``a/b/IM0001`` -> ``a__b__IM0001_gradcam.png``.

    Sub-folders are kept in the name, so same-named files of different folders never share a
    panel. A name whose parts already hold ``__`` could meet another one (``a__b/c`` and
    ``a/b__c``): those get a short hash of the path. ``frame`` (multi-frame files) adds ``_f<k>``.
    """
    parts = [p for p in relative_path.replace("\\", "/").split("/") if p not in ("", ".")]
    parts = [p if p != ".." else "up" for p in parts]
    name = "__".join(parts) or "image"
    if any("__" in p for p in parts) or any(p == "up" for p in parts):
        name += "-" + hashlib.sha1(relative_path.encode()).hexdigest()[:8]
    if frame is not None:
        name += f"_f{int(frame)}"
    return f"{name}_{method}.png"


def save_panel(heatmap: Heatmap, out_path: Path, box: np.ndarray | None = None) -> Path:
    """Radiograph | heatmap overlay, captioned with score and call; optional reference box."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    gray = heatmap.image[..., 0] if heatmap.image.shape[-1] in (1, 3) else heatmap.image.mean(-1)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.3))
    axes[0].imshow(gray, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("radiograph")
    axes[1].imshow(gray, cmap="gray", vmin=0, vmax=1)
    overlay = axes[1].imshow(heatmap.cam, cmap="jet", alpha=0.4, vmin=0, vmax=1)
    axes[1].set_title("Grad-CAM++" if heatmap.method == "gradcam++" else "Grad-CAM")
    if box is not None:
        for x1, y1, x2, y2 in np.atleast_2d(box):
            for ax in axes:
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="lime", linewidth=1.2))
    for ax in axes:
        ax.axis("off")
    fig.colorbar(overlay, ax=axes[1], fraction=0.046, pad=0.02)
    label = Path(heatmap.path)
    name = (label.name if label.is_absolute() else heatmap.path) + ("" if heatmap.frame is None else f" [frame {heatmap.frame}]")
    fig.suptitle(f"{name}   score {heatmap.score:.3f}   call: {heatmap.call}", fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, out_path)
    plt.close(fig)
    return out_path


def heatmap_boxes(bundle: Bundle, heatmap: Heatmap, boxes: np.ndarray) -> np.ndarray:
    """A file's reference boxes (original pixels) in its heatmap's pixels (a CT input's crop included)."""
    if heatmap.roi is not None:
        top, left, side = heatmap.roi
        scale = bundle.meta.input_size / side
        return (np.asarray(boxes, np.float32).reshape(-1, 4) - np.array([left, top] * 2, np.float32)) * scale
    if heatmap.source_size is None:
        raise ValueError(f"{heatmap.path}: the heatmap does not know its image's size")
    return boxes_to_input(boxes, *heatmap.source_size, geometry_of(bundle))


def localization(bundle: Bundle, heatmaps: list[Heatmap], boxes: list[np.ndarray]) -> tuple[dict, list[dict]]:
    """The pointing game over heatmaps with reference boxes (original pixels, one (k, 4) array
    per heatmap; empty for images without a box): the summary and one row per boxed image."""
    rows = []
    for heatmap, image_boxes in zip(heatmaps, boxes):
        if len(image_boxes):
            hit, mass, area = _point(heatmap.cam, heatmap_boxes(bundle, heatmap, image_boxes))
            rows.append({"path": heatmap.path, "hit": hit, "mass_in_box": mass, "box_area_share": area,
                         "score": heatmap.score, "call": heatmap.call})
    return _pointing_summary([(r["hit"], r["mass_in_box"], r["box_area_share"]) for r in rows]), rows


def _point(cam: np.ndarray, boxes: np.ndarray) -> tuple[bool, float, float]:
    """One image: (heatmap maximum inside a box, heatmap mass inside the boxes, boxes' share of the image)."""
    inside = np.zeros(cam.shape, bool)
    for x1, y1, x2, y2 in boxes:
        inside[int(np.floor(y1)) : int(np.ceil(y2)) + 1, int(np.floor(x1)) : int(np.ceil(x2)) + 1] = True
    y, x = np.unravel_index(np.argmax(cam), cam.shape)
    total = cam.sum()
    mass = float(cam[inside].sum() / total) if total > 0 else 0.0
    return bool(inside[y, x]), mass, float(inside.mean())


def _pointing_summary(points: list[tuple[bool, float, float]]) -> dict:
    if not points:
        return {"n": 0, "hit_rate": None, "mass_in_box": None, "chance": None}
    hits, masses, areas = zip(*points)
    # chance: the hit rate of a heatmap maximum placed uniformly at random (mean box area share)
    return {"n": len(hits), "hit_rate": float(np.mean(hits)), "mass_in_box": float(np.mean(masses)), "chance": float(np.mean(areas))}
