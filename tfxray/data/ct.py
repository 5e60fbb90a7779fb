"""CT protocol inputs: a region of interest cut from the lesion box, a slice and its two neighbours.

The malignancy protocol (Li et al. 2021) feeds the network a 64x64 region of interest: the
smallest square enclosing the manifest box, centred on it, resampled; the three channels are
the slice and its two neighbours in the same series.

- Boxes are pixel coordinates of the original slice (x1, y1, x2, y2, pixel centres at integers):
  the box covers columns floor(x1)..ceil(x2) and rows floor(y1)..ceil(y2), both ends included.
  The square's side is the longer of the two; the shorter side grows equally on both ends.
  Where the square passes the image border it is padded with 0 (black: air on a CT window)
  instead of being shifted inward, so the lesion stays centred. The slice is read at full
  resolution before cropping (the box refers to it); without a box the whole slice is used.
- Neighbours are the adjacent rows of the same ``series_id`` in ``slice_index`` order (the
  slice position or instance number); never across series. The first and last slices of a
  series stand in for their missing neighbour (channels: the slice twice, then its one
  neighbour), and an image without a series is its own neighbour on both sides. The centre
  slice's box crops all three slices.

Rows (``ct_rows``) are a table with ``path`` (the centre slice), ``prev_path``, ``next_path``
and the box ``x1, y1, x2, y2`` (NaN: no crop); ``inputs.SliceStackInput`` takes them, so the
trainer, offline amplification, evaluation and Grad-CAM build inputs the same way.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import UserError
from ..images import ImageReadError, read_image
from .geometry import ImageGeometry, resize_array
from .manifest import BOX_COLUMNS

ROW_COLUMNS = ("path", "prev_path", "next_path", *BOX_COLUMNS)


# --------------------------------------------------------------------------- geometry


def square_roi(box: Sequence[float]) -> tuple[int, int, int]:
    """(top, left, side) of the smallest square of whole pixels enclosing ``box``, centred on it."""
    x1, y1, x2, y2 = (float(v) for v in box)
    left, right = math.floor(x1), math.ceil(x2)
    top, bottom = math.floor(y1), math.ceil(y2)
    width, height = right - left + 1, bottom - top + 1
    side = max(width, height)
    return top - (side - height) // 2, left - (side - width) // 2, side


def crop_square(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The ``square_roi`` of ``box`` from an (H, W) or (H, W, C) image, zero-padded past the border."""
    top, left, side = square_roi(box)
    out = np.zeros((side, side) + image.shape[2:], dtype=image.dtype)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + side, image.shape[0]), min(left + side, image.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = image[r0:r1, c0:c1]
    return out


# --------------------------------------------------------------------------- manifest rows


def neighbour_paths(images: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(previous, slice, next) paths for each row of ``images``, in its order.

    Pass the whole manifest, not one split: a split keeps a patient's series together, but a
    subset of slices would lose neighbours. Needs ``series_id`` and ``slice_index`` columns.
    """
    missing = [c for c in ("series_id", "slice_index") if c not in images.columns]
    if missing:
        raise UserError(f"data.neighbours: the manifest needs column(s) {', '.join(missing)} "
                        "(the series and the slice's position in it)")
    table = images.reset_index(drop=True)
    paths = table["path"].astype(str).tolist()
    result = [(p, p, p) for p in paths]
    order = pd.to_numeric(table["slice_index"], errors="coerce")
    for series, group in table.groupby("series_id", sort=False, dropna=True):
        positions = order[group.index]
        if positions.isna().any():
            bad = group.index[positions.isna()][0]
            raise UserError(f"data.neighbours: series {series}: {paths[bad]} has no numeric slice_index")
        doubled = positions[positions.duplicated()]
        if len(doubled):
            raise UserError(f"data.neighbours: series {series}: slice_index {doubled.iloc[0]:g} appears twice")
        ranked = positions.sort_values(kind="stable").index.tolist()
        for j, row in enumerate(ranked):
            before = ranked[max(j - 1, 0)]
            after = ranked[min(j + 1, len(ranked) - 1)]
            result[row] = (paths[before], paths[row], paths[after])
    return result


def roi_boxes(images: pd.DataFrame, boxes: pd.DataFrame) -> np.ndarray:
    """(n, 4) float32: the one box of each image in ``images`` (the manifest's box table)."""
    counts = boxes["path"].value_counts()
    paths = images["path"].astype(str)
    per_image = paths.map(counts).fillna(0).astype(int)
    for bad, what in ((paths[per_image == 0], "no box"), (paths[per_image > 1], "several boxes")):
        if len(bad):
            raise UserError(f"data.roi: {len(bad)} image(s) with {what}; the ROI protocol crops exactly one "
                            f"box per image (first: {bad.iloc[0]})")
    table = boxes.drop_duplicates("path").set_index("path")
    return table.loc[paths, list(BOX_COLUMNS)].to_numpy(np.float32)


def ct_rows(images: pd.DataFrame, boxes: pd.DataFrame, *, roi: bool, neighbours: bool,
            paths: Sequence[str] | None = None) -> pd.DataFrame:
    """Input rows (``ROW_COLUMNS``) for the manifest's images, or for ``paths`` in that order.

    ``images`` and ``boxes`` are the manifest's two tables; give the whole manifest so that
    neighbours are found (``neighbour_paths``), then pick a split's rows with ``paths``.
    """
    table = images.reset_index(drop=True)
    rows = pd.DataFrame({"path": table["path"].astype(str)})
    triples = neighbour_paths(table) if neighbours else [(p, p, p) for p in rows["path"]]
    rows["prev_path"] = [t[0] for t in triples]
    rows["next_path"] = [t[2] for t in triples]
    box = roi_boxes(table, boxes) if roi else np.full((len(table), 4), np.nan, np.float32)
    for j, column in enumerate(BOX_COLUMNS):
        rows[column] = box[:, j]
    if paths is not None:
        indexed = rows.set_index("path", drop=False)
        unknown = [p for p in paths if p not in indexed.index]
        if unknown:
            raise UserError(f"{unknown[0]}: not in the manifest ({len(unknown)} path(s) unknown)")
        rows = indexed.loc[list(paths)].reset_index(drop=True)
    return rows


# --------------------------------------------------------------------------- pixels


def load_ct_pixels(paths3: Sequence[str], box: Sequence[float] | None, *, channels: int = 3,
                   max_size: int | None = None, with_meta: bool = False):
    """float32 (h, w, channels) in [0, 1]: the ROI (or whole slice) of the slice and its neighbours.

    ``channels=1`` keeps the centre slice only. ``max_size`` downsizes at decode time, and applies
    only without a box (a box refers to full-resolution pixels).
    """
    has_box = box is not None and not np.any(np.isnan(np.asarray(box, dtype=np.float64)))
    wanted = list(paths3) if channels == 3 else [paths3[1]]
    slices, meta, cache = [], None, {}
    for k, path in enumerate(wanted):
        if path not in cache:
            image = read_image(path, max_size=None if has_box else max_size)
            if image.pixels.ndim != 2:
                raise ImageReadError(path, f"a single gray frame expected, got pixels of shape {image.pixels.shape}")
            cache[path] = image
        image = cache[path]
        if with_meta and (channels == 1 or k == 1):
            meta = image.meta
        slices.append(image.pixels)
    shapes = {s.shape for s in slices}
    if len(shapes) > 1:
        raise ImageReadError(wanted[len(wanted) // 2], f"neighbouring slices differ in size: {sorted(shapes)}")
    pixels = np.stack(slices, axis=-1).astype(np.float32)
    if has_box:
        pixels = crop_square(pixels, box)
    pixels = np.ascontiguousarray(pixels)
    return (pixels, meta) if with_meta else pixels


def load_ct_input(paths3: Sequence[str], box: Sequence[float] | None, geometry: ImageGeometry,
                  with_meta: bool = False):
    """One model input (size, size, channels) float32: the ROI (or slice) resampled like every input.

    The one CT decode path: ``inputs.SliceStackInput`` calls it for training, offline
    amplification, evaluation and Grad-CAM. Metadata is the centre slice's.
    """
    pixels, meta = load_ct_pixels(paths3, box, channels=geometry.channels, max_size=geometry.decode_max_size,
                                  with_meta=True)
    image = resize_array(pixels, geometry)
    if with_meta and box is not None and not np.any(np.isnan(np.asarray(box, dtype=np.float64))):
        meta = {**meta, "roi": square_roi(box)}  # where the crop lies in the slice, for boxes drawn on it
    return (image, meta) if with_meta else image
