"""Grad-CAM panels for a set of images, with the localization check against reference boxes.

``write_panels`` is what ``tfxray gradcam`` and the demo run: find the image files, explain
them in batches with the bundle's own inputs, write one panel each (boxes drawn when a manifest
gives them), and score the pointing game over the boxed images. ``write_case_panels`` writes
panels under names the caller chose (``evaluate --worst``'s gallery).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.manifest import BOX_COLUMNS, Manifest
from ..errors import UserError
from ..images import list_files
from ..io import atomic_write_json, atomic_write_text
from ..models.bundle import Bundle
from ..progress import progress as progress_bar
from .gradcam import explain_paths, heatmap_boxes, localization, panel_name, save_panel

POINTING_JSON, POINTING_CSV = "pointing_game.json", "pointing_game.csv"


@dataclass
class PanelRun:
    panels: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): no image, or unreadable
    localization: dict | None = None  # the pointing-game summary; None without boxes
    files: dict[str, Path] = field(default_factory=dict)  # what was written beside the panels


def image_paths(items) -> list[str]:
    """Files and folders -> absolute file paths, each once, in order (folders searched recursively)."""
    paths: dict[str, None] = {}
    for item in map(Path, items):
        found = [item / name for name in list_files(item)] if item.is_dir() else [item]
        paths.update((os.path.abspath(p), None) for p in found)
    return list(paths)


def common_folder(paths) -> str:
    """The deepest folder every file of ``paths`` lies in ('' for none): panels are named below it."""
    paths = [str(p) for p in paths]
    return os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""


def relative_name(path, root: str) -> str:
    """``path`` below ``root``, '/'-separated (the path itself without a root)."""
    return os.path.relpath(str(path), root).replace(os.sep, "/") if root else str(path)


def boxes_by_file(manifest: Manifest) -> dict[str, np.ndarray]:
    """The manifest's box table as {real path: (k, 4) boxes in the image's pixels}."""
    return {os.path.realpath(path): group[list(BOX_COLUMNS)].to_numpy(np.float32)
            for path, group in manifest.boxes.groupby("path", sort=False)}


def write_panels(bundle: Bundle, items, out: Path, *, method: str = "gradcam", layer: str | None = None,
                 batch_size: int = 16, boxes: Manifest | None = None, max_panels: int | None = None,
                 progress: bool = True, check_profile: bool = True) -> PanelRun:
    """A panel per image of ``items`` (files or folders) in ``out``; with ``boxes``, the localization check.

    Without ``items`` the boxed images of ``boxes`` are explained. Panels are named after each
    image's path below the folder all images share (``panel_name``). ``max_panels`` caps the
    panels written; the localization check still covers every boxed image. Files that hold no
    image or cannot be read are left out and listed in ``PanelRun.failures``, as are images
    outside the model's training profile (unless ``check_profile`` is False). The manifest
    also serves a CT model, whose inputs need its boxes and series.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size: must be at least 1, got {batch_size}")
    by_file = boxes_by_file(boxes) if boxes is not None else {}
    if boxes is not None and not by_file:
        raise UserError(f"{boxes.source}: no boxes (columns x1, y1, x2, y2) in the manifest")
    if not items and boxes is not None:
        items = list(dict.fromkeys(boxes.boxes["path"]))
    if not items:
        raise UserError("IMAGES: give image files or folders, or --boxes with a manifest")
    paths = image_paths(items)
    if not paths:
        raise UserError("IMAGES: no files found")
    root = common_folder(paths)  # names relative to it: unique, and short
    run = PanelRun()
    heatmaps, heatmap_box_list = [], []
    no_box = np.zeros((0, 4), np.float32)
    for start in progress_bar(range(0, len(paths), batch_size), desc="grad-cam", unit="batch", disable=not progress):
        chunk = paths[start:start + batch_size]
        explained = explain_paths(bundle, chunk, layer=layer, method=method, batch_size=batch_size, manifest=boxes,
                                  failures=run.failures, check_profile=check_profile)
        for heatmap in explained:
            path = heatmap.path
            relative = relative_name(path, root)
            heatmap.path = relative  # the caption shows the same path the name is made of
            image_boxes = by_file.get(os.path.realpath(path), no_box)
            if max_panels is None or len(run.panels) < max_panels:
                drawn = heatmap_boxes(bundle, heatmap, image_boxes) if len(image_boxes) else None
                run.panels.append(save_panel(heatmap, out / panel_name(relative, method=method), box=drawn))
            if by_file:
                heatmap.image = heatmap.image[:0]  # keep only what the check needs: memory stays small
                heatmaps.append(heatmap)
                heatmap_box_list.append(image_boxes)
    if by_file:
        summary, rows = localization(bundle, heatmaps, heatmap_box_list)
        run.localization = summary
        if summary["n"]:
            run.files["pointing_game.json"] = atomic_write_json(
                out / POINTING_JSON, {"method": method, "layer": layer or "default", **summary})
            run.files["pointing_game.csv"] = atomic_write_text(out / POINTING_CSV, pd.DataFrame(rows).to_csv(index=False))
    return run


def write_case_panels(bundle: Bundle, cases: list[tuple[str, str]], out: Path, *, method: str = "gradcam",
                      batch_size: int = 16, manifest: Manifest | None = None) -> dict[str, Path | str]:
    """A panel per case, named by the caller: ``cases`` are (image path, panel file name) pairs.

    Returns {path: panel path}, or {path: reason} for an image that could not be explained. The
    manifest serves a CT model (its boxes and series) and draws the cases' reference boxes.
    """
    names = dict(cases)
    by_file = boxes_by_file(manifest) if manifest is not None and len(manifest.boxes) else {}
    failures: list[tuple[str, str]] = []
    written: dict[str, Path | str] = {}
    no_box = np.zeros((0, 4), np.float32)
    for heatmap in explain_paths(bundle, list(names), method=method, batch_size=batch_size, manifest=manifest,
                                 failures=failures):
        path = heatmap.path
        image_boxes = by_file.get(os.path.realpath(path), no_box)
        drawn = heatmap_boxes(bundle, heatmap, image_boxes) if len(image_boxes) else None
        written[path] = save_panel(heatmap, out / names[path], box=drawn)
    written.update(failures)
    return written
