"""Grad-CAM and Grad-CAM++ heatmaps through tf-keras-vis, batched, and their panels.

The target layer defaults to the backbone's declared last convolutional block (saved in
the bundle), never searched for by name at run time. Panels show the display-windowed
radiograph beside the heatmap overlaid on it, with the score and call in the caption.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import atomic_save_figure
from ..models.bundle import Bundle

METHODS = ("gradcam", "gradcam++")


@dataclass
class Heatmap:
    path: str
    image: np.ndarray  # (H, W, C) model input in [0, 1]
    cam: np.ndarray  # (H, W) in [0, 1]
    score: float
    call: str


def compute_cams(bundle: Bundle, images: np.ndarray, *, layer: str | None = None, method: str = "gradcam") -> np.ndarray:
    """Heatmaps (n, H, W) in [0, 1] for the positive class (two classes) or the predicted class."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore

    if method not in METHODS:
        raise UserError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    layer = layer or bundle.meta.gradcam_layer
    if layer not in {l.name for l in bundle.model.layers}:
        raise UserError(f"--layer: the model has no layer named {layer!r}")
    cls = Gradcam if method == "gradcam" else GradcamPlusPlus
    explainer = cls(bundle.model, model_modifier=ReplaceToLinear(), clone=True)
    if len(bundle.meta.classes) == 2:
        score = BinaryScore([1.0] * len(images))
    else:
        predicted = np.argmax(np.asarray(bundle.model(images, training=False)), axis=-1)
        score = CategoricalScore(list(map(int, predicted)))
    cams = explainer(score, images, penultimate_layer=layer, seek_penultimate_conv_layer=False)
    return np.nan_to_num(np.asarray(cams, dtype=np.float32))


def explain_paths(
    bundle: Bundle, paths: list[str], *, layer: str | None = None, method: str = "gradcam", batch_size: int = 16
) -> list[Heatmap]:
    """Heatmaps for image files, many images per gradient computation."""
    from ..data.pipeline import load_resized
    from ..scoring.predict import geometry_of

    geometry = geometry_of(bundle)
    out: list[Heatmap] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        images = np.stack([load_resized(p, geometry) for p in chunk])
        scores = np.asarray(bundle.model(images, training=False))
        cams = compute_cams(bundle, images, layer=layer, method=method)
        for path, image, cam, score in zip(chunk, images, cams, scores):
            value, call = _score_and_call(bundle, score)
            out.append(Heatmap(path, image, cam, value, call))
    return out


def _score_and_call(bundle: Bundle, score: np.ndarray) -> tuple[float, str]:
    classes = bundle.meta.classes
    if len(classes) == 2:
        value = float(score[0])
        return value, classes[1] if value >= bundle.meta.threshold else classes[0]
    return float(score.max()), classes[int(np.argmax(score))]


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
    axes[1].set_title("Grad-CAM")
    if box is not None:
        for x1, y1, x2, y2 in np.atleast_2d(box):
            for ax in axes:
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="lime", linewidth=1.2))
    for ax in axes:
        ax.axis("off")
    fig.colorbar(overlay, ax=axes[1], fraction=0.046, pad=0.02)
    fig.suptitle(f"{Path(heatmap.path).name}   score {heatmap.score:.3f}   call: {heatmap.call}", fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, out_path)
    plt.close(fig)
    return out_path


def pointing_game(cams: np.ndarray, boxes: list[np.ndarray]) -> dict:
    """Share of images whose heatmap maximum falls inside a reference box, and the mean heatmap mass inside.

    ``boxes`` are in the heatmap's pixel coordinates, one (k, 4) array per image.
    """
    hits, masses, areas = [], [], []
    for cam, image_boxes in zip(cams, boxes):
        if image_boxes is None or len(image_boxes) == 0:
            continue
        inside = np.zeros(cam.shape, bool)
        for x1, y1, x2, y2 in image_boxes:
            inside[int(np.floor(y1)) : int(np.ceil(y2)) + 1, int(np.floor(x1)) : int(np.ceil(x2)) + 1] = True
        y, x = np.unravel_index(np.argmax(cam), cam.shape)
        hits.append(bool(inside[y, x]))
        total = cam.sum()
        masses.append(float(cam[inside].sum() / total) if total > 0 else 0.0)
        areas.append(float(inside.mean()))
    if not hits:
        return {"n": 0, "hit_rate": None, "mass_in_box": None, "chance": None}
    # chance: the hit rate of a heatmap maximum placed uniformly at random (mean box area share)
    return {"n": len(hits), "hit_rate": float(np.mean(hits)), "mass_in_box": float(np.mean(masses)), "chance": float(np.mean(areas))}
