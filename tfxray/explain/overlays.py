"""Box overlays: a radiograph with a detector's boxes, as Figures 5-6 of Mu et al. (2021).

``draw_box_overlay`` draws one image: the radiograph in gray, the predicted boxes at or above
the cut-off in red with their confidence (and the IoU with the reference box each one matched),
the reference boxes in blue; with no reference boxes (scoring's overlays) the predicted boxes
only. ``write_overlay_panels`` picks the images of an evaluation to show: images with
true-positive boxes, images with missed lesions, images with false-positive boxes.

Boxes are in the original image's pixels, continuous coordinates (``x1, y1, x2, y2``, pixel i
spanning [i, i + 1)); the radiograph may be read downsampled and is drawn over the original's
extent, so boxes land where they belong at any size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..evaluation.boxes import COORDINATES, image_scores, iou, match_boxes
from ..evaluation.detection import unit_interval, align_detections
from ..images import ImageReadError, read_image
from ..io import atomic_save_figure
from .gradcam import panel_name
from .panels import common_folder, relative_name

PREDICTED_COLOR = "#e3261f"
REFERENCE_COLOR = "#1e7bff"
KINDS = {"tp": "detected lesion", "fn": "missed lesion", "fp": "false-positive box"}
DPI = 120
MAX_SIZE = 1024  # the radiograph is read with its longer side at most this (a panel is ~770 px wide)
_KEY = "image"


def _box_array(boxes) -> np.ndarray:
    if boxes is None:
        return np.zeros((0, 4))
    if isinstance(boxes, pd.DataFrame):
        boxes = boxes[COORDINATES].to_numpy(dtype=float)
    array = np.asarray(boxes, dtype=float)
    return array.reshape(0, 4) if array.size == 0 else array.reshape(-1, 4)


def _predicted_table(predicted) -> pd.DataFrame:
    if predicted is None:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in (*COORDINATES, "score")})
    if isinstance(predicted, pd.DataFrame):
        missing = [c for c in (*COORDINATES, "score") if c not in predicted.columns]
        if missing:
            raise UserError(f"predicted boxes: missing column(s) {', '.join(missing)}")
        return predicted[[*COORDINATES, "score"]].astype(float).reset_index(drop=True)
    array = np.asarray(predicted, dtype=float)
    array = array.reshape(0, 5) if array.size == 0 else array.reshape(-1, 5)
    return pd.DataFrame(array, columns=[*COORDINATES, "score"])


def _matched(predicted: pd.DataFrame, reference: np.ndarray, cutoff: float, iou_threshold: float):
    """(the drawn predicted boxes with ``tp`` and ``iou``, the reference boxes' detected flags)."""
    drawn = predicted[predicted["score"] >= cutoff].sort_values("score", ascending=False, kind="stable")
    drawn = drawn.assign(tp=False, iou=np.nan, truth_row=-1, best_iou=0.0)
    detected = np.zeros(len(reference), dtype=bool)
    if len(reference) == 0 or len(drawn) == 0:
        return drawn, detected
    drawn["best_iou"] = iou(drawn[COORDINATES].to_numpy(), reference).max(axis=1)
    match = match_boxes(drawn.assign(path=_KEY), pd.DataFrame(reference, columns=COORDINATES).assign(path=_KEY),
                        [_KEY], cutoff, iou_threshold=iou_threshold)
    rows = match.detections
    drawn["tp"] = rows["tp"].to_numpy()
    drawn["truth_row"] = rows["truth_row"].to_numpy()
    for i in np.flatnonzero(drawn["tp"].to_numpy()):
        j = int(drawn["truth_row"].iat[i])
        drawn.iat[i, drawn.columns.get_loc("iou")] = float(iou(drawn[COORDINATES].to_numpy()[i:i + 1],
                                                                reference[j:j + 1])[0, 0])
        detected[j] = True
    return drawn, detected


def _label(ax, x: float, y: float, text: str, color: str, above: bool, rows: float) -> None:
    """A label on a box's corner: above the box when there is room, else just inside it."""
    inside = (above and y < 0.05 * rows) or (not above and y > 0.95 * rows)
    va = ("top" if inside else "bottom") if above else ("bottom" if inside else "top")
    ax.text(x, y, text, color="white", fontsize=8.5, fontweight="bold", ha="left", va=va, clip_on=False,
            bbox={"facecolor": color, "edgecolor": "none", "pad": 1.2, "alpha": 0.85})


def draw_box_overlay(image_path, predicted, reference, out_png, cutoff: float | None = None, title: str | None = None,
                     *, iou_threshold: float = 0.5, frame: int = 0, max_size: int | None = MAX_SIZE) -> Path:
    """One radiograph with its boxes, saved atomically as ``out_png``; returns its path.

    ``predicted``: a table (or (n, 5) array) of ``x1, y1, x2, y2, score``; those scoring >= ``cutoff``
    are drawn in red with their confidence (all when ``cutoff`` is None; the ones below are counted
    in the caption). ``reference``: the reference boxes ((k, 4) or a table with x1..y2), drawn in
    blue; given (even empty), the drawn boxes are matched to them greedily by confidence at IoU >=
    ``iou_threshold`` and each match's IoU is printed, the caption counting TP, FP and FN; None
    (scoring) draws the predicted boxes only. Raises ImageReadError when the file cannot be read.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    predicted = _predicted_table(predicted)
    boxes = _box_array(reference)
    threshold = -np.inf if cutoff is None else float(cutoff)
    image = read_image(image_path, frame=frame, max_size=max_size)
    pixels = image.pixels if image.pixels.ndim == 2 else image.pixels.mean(axis=-1)
    rows = float(image.meta.get("rows") or pixels.shape[0])
    cols = float(image.meta.get("cols") or pixels.shape[1])
    drawn, detected = _matched(predicted, boxes, threshold, iou_threshold)

    width = 6.4
    fig = Figure(figsize=(width, min(max(0.9 * width * rows / cols, 2.5), 9.0) + 0.9), layout="constrained")
    ax = fig.subplots()
    ax.imshow(pixels, cmap="gray", vmin=0, vmax=1, extent=(0, cols, rows, 0), interpolation="antialiased")
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.axis("off")
    from matplotlib.patches import Rectangle

    matching = reference is not None
    for j, (x1, y1, x2, y2) in enumerate(boxes):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=REFERENCE_COLOR, linewidth=2.0,
                               linestyle="-" if detected[j] or not matching else (0, (4, 2))))
        if matching and cutoff is not None and not detected[j]:
            _label(ax, x1, y2, "missed", REFERENCE_COLOR, above=False, rows=rows)
    for _, box in drawn.iterrows():
        x1, y1, x2, y2 = (float(box[c]) for c in COORDINATES)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=PREDICTED_COLOR, linewidth=2.0))
        text = f"{box['score']:.2f}"
        if box["tp"]:
            text += f"  IoU {box['iou']:.2f}"
        elif matching:  # a false positive; how near it came to a reference box, when it touched one
            text += f"  FP (IoU {box['best_iou']:.2f})" if box["best_iou"] > 0 else "  FP"
        _label(ax, x1, y1, text, PREDICTED_COLOR, above=True, rows=rows)

    below = int(np.sum(predicted["score"].to_numpy() < threshold))
    cut = "" if cutoff is None else f" ≥ {float(cutoff):.2f}"
    if matching:
        tp = int(drawn["tp"].sum())
        caption = (f"TP {tp} · FP {len(drawn) - tp} · FN {len(boxes) - int(detected.sum())}"
                   f"   (score{cut}, IoU ≥ {iou_threshold:g})")
    else:
        caption = f"{len(drawn)} predicted box(es){' with score' + cut if cut else ''}"
    if below:
        caption += f"; {below} below the cut-off not drawn"
    name = title if title is not None else Path(str(image_path)).name
    ax.set_title(f"{name}\n{caption}", fontsize=9.5)
    handles = [Line2D([], [], color=PREDICTED_COLOR, linewidth=2,
                      label=f"predicted (score{cut}): confidence" + (", IoU with its match" if matching else ""))]
    if matching:
        handles.append(Line2D([], [], color=REFERENCE_COLOR, linewidth=2, label="reference (dashed: missed)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    atomic_save_figure(fig, Path(out_png), dpi=DPI)
    return Path(out_png)


def _ranked(per_image: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The images of one kind, the most telling first: TP by their best true box's score, FN by
    missed boxes then lowest image score, FP by their best false box's score."""
    if kind == "tp":
        chosen = per_image[per_image["tp"] > 0]
        return chosen.sort_values("best_tp", ascending=False, kind="stable")
    if kind == "fn":
        chosen = per_image[per_image["fn"] > 0]
        return chosen.sort_values(["fn", "score"], ascending=[False, True], kind="stable")
    chosen = per_image[per_image["fp"] > 0]
    return chosen.sort_values("best_fp", ascending=False, kind="stable")


def write_overlay_panels(detections: pd.DataFrame, images: pd.DataFrame, truth_boxes: pd.DataFrame, cutoff: float,
                         out_dir, n_per_kind: int = 8, *, iou_threshold: float = 0.5,
                         max_size: int | None = MAX_SIZE, label_column: str = "label") -> dict:
    """Box overlay panels of an evaluation's telling images into ``out_dir``: at most ``n_per_kind``
    images with true-positive boxes (``tp_NN_<name>.png``), with missed reference boxes (``fn_``)
    and with false-positive boxes (``fp_``), ranked as ``_ranked`` says; an image may show in
    several kinds. Names come from each image's path below the folder all images share
    (panels.common_folder / relative_name, gradcam.panel_name). The tables are evaluate_detections'.

    Returns {"folder", "cutoff", "iou_threshold", "n_per_kind", "kinds": {kind: {"images": how
    many images are of that kind, "panels": [{"path", "name", "panel" (file name), "label",
    "score", "tp", "fp", "fn"}]}}, "failures": [{"path", "reason"}]} (images that could not be read).
    """
    cutoff = unit_interval(cutoff, "cut-off")
    iou_threshold = unit_interval(iou_threshold, "IoU threshold", low_open=True)
    if int(n_per_kind) < 0:
        raise UserError(f"overlays: n_per_kind must be >= 0, got {n_per_kind}")
    out_dir = Path(out_dir)
    paths = images["path"].astype(str).tolist()
    detections = align_detections(detections, paths)
    truth = truth_boxes[~truth_boxes[COORDINATES].isna().all(axis=1)]
    matched = match_boxes(detections, truth, paths, cutoff, iou_threshold=iou_threshold)
    per_image = matched.images.copy()
    per_image["score"] = image_scores(detections, paths).to_numpy()
    kept = matched.detections
    per_image["best_tp"] = kept[kept["tp"]].groupby("path")["score"].max().reindex(per_image.index)
    per_image["best_fp"] = kept[~kept["tp"]].groupby("path")["score"].max().reindex(per_image.index)
    labels = dict(zip(paths, images[label_column].astype(str))) if label_column in images.columns else {}
    by_image_det = dict(tuple(detections.groupby("path", sort=False)))
    by_image_truth = dict(tuple(truth.groupby("path", sort=False)))
    root = common_folder(paths)
    digits = max(2, len(str(int(n_per_kind))))

    result = {"folder": str(out_dir), "cutoff": cutoff, "iou_threshold": iou_threshold, "n_per_kind": int(n_per_kind),
              "kinds": {}, "failures": []}
    failed: dict[str, str] = {}
    for kind, what in KINDS.items():
        ranked = _ranked(per_image, kind)
        panels = []
        for path, row in ranked.iterrows():
            if len(panels) >= int(n_per_kind):
                break
            if path in failed:
                continue
            name = relative_name(path, root)
            panel = f"{kind}_{len(panels) + 1:0{digits}d}_{panel_name(name, method='boxes')}"
            label = labels.get(path)
            title = f"{name}" + (f"  ({label}, image score {row['score']:.2f})" if label is not None else "")
            try:
                draw_box_overlay(path, by_image_det.get(path), by_image_truth.get(path, truth.iloc[:0]),
                                 out_dir / panel, cutoff, title, iou_threshold=iou_threshold, max_size=max_size)
            except ImageReadError as exc:
                failed[path] = exc.reason
                result["failures"].append({"path": path, "reason": exc.reason})
                continue
            panels.append({"path": path, "name": name, "panel": panel, "label": label, "score": float(row["score"]),
                           "tp": int(row["tp"]), "fp": int(row["fp"]), "fn": int(row["fn"])})
        result["kinds"][kind] = {"what": what, "images": int(len(ranked)), "panels": panels}
    return result
