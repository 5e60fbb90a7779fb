"""What the training pipeline feeds a model, as pictures: a batch of training images with labels.

``preview_tiles`` shows one image's augmentations (``tfxray augment-preview``), and
``detection_preview_tiles`` a detector's (flip and rotation, the image's boxes moved with it on
every tile, by the training pipeline's own transform); ``training_batch``
draws a batch of the training split as a recipe's training would see it: the
same patient-grouped split, the same input builder (plain image, or a CT slice's region and
neighbours), a random offline variant when the recipe amplifies, then the online augmentation
layers. ``write_preview_grid`` lays tiles out with captions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .geometry import ImageGeometry, boxes_to_input


@dataclass
class Tile:
    image: np.ndarray  # (size, size) gray, the centre channel of the model input
    caption: str
    boxes: np.ndarray | None = None  # (k, 4) in the tile's pixels; None when the boxes cannot be shown


def training_batch(manifest, data_cfg, augment_cfg, n: int, seed: int) -> tuple[list[Tile], str]:
    """``n`` training images as the pipeline feeds them, and a one-line note on what was applied.

    ``data_cfg`` and ``augment_cfg`` are a recipe's ``data`` and ``augment`` sections. Boxes are
    drawn where the tile shows the image as the manifest's pixels map into it (not moved by the
    augmentation, not a CT crop); the note says when they are not.
    """
    from .augment import AffineParams, amplification_plan, apply_params
    from .inputs import SliceStackInput, input_builder
    from .online import online_augmentation
    from .splits import assign_splits

    geometry = ImageGeometry(data_cfg.input_size, data_cfg.channels, data_cfg.resize)
    table = assign_splits(manifest.images, data_cfg.split, seed=seed)
    train = table[table["split"] == "train"]
    if train.empty:
        raise UserError("split: the training split is empty")
    picked = train.iloc[np.random.default_rng(seed).permutation(len(train))[:n]]
    inputs = input_builder(geometry, roi=data_cfg.roi, neighbours=data_cfg.neighbours, images=table,
                           boxes=manifest.boxes)
    images, metas = zip(*(inputs.load_path(p) for p in picked["path"]))
    images = np.stack(images)
    notes, variants = [], [None] * len(images)
    offline = augment_cfg.offline
    if offline.factor > 1:
        plan = amplification_plan(picked["path"].tolist(), offline.factor, offline, seed)
        rng = np.random.default_rng(seed)
        for j, (path, group) in enumerate(plan.groupby("source", sort=False)):
            row = group.iloc[int(rng.integers(len(group)))]
            variants[j] = AffineParams(**{f: row[f] for f in AffineParams.__dataclass_fields__})
            images[j] = apply_params(images[j], variants[j]).reshape(images[j].shape)
        notes.append(f"offline x{offline.factor} (a random variant each)")
    layer = online_augmentation(augment_cfg.online, seed)
    if layer is not None:
        images = np.asarray(layer(images, training=True))
        notes.append("online augmentation")
    moved = [layer is not None or (v is not None and not (v.is_identity and not v.flip)) for v in variants]
    crop = isinstance(inputs, SliceStackInput) and data_cfg.roi
    if crop:
        notes.append("boxes not drawn: the tiles are the boxes' regions")
    elif any(moved):
        notes.append("boxes drawn only where the augmentation left the image in place")
    centre = images.shape[-1] // 2
    tiles = []
    for (_, row), image, meta, variant, tile_moved in zip(picked.iterrows(), images, metas, variants, moved):
        boxes = None
        if not (tile_moved or crop):
            found = manifest.boxes_for(row["path"])
            boxes = boxes_to_input(found, meta["rows"], meta["cols"], geometry) if len(found) else None
        caption = f"{row['label']}\n{Path(row['path']).name}"
        if variant is not None and not variant.is_identity:
            caption += f"\nrot {variant.rotation:+.0f}" + (" flip" if variant.flip else "")
        tiles.append(Tile(image[..., centre], caption, boxes))
    return tiles, "; ".join(notes) or "no augmentation"


def preview_tiles(path: str, augment_cfg, geometry, n: int, seed: int, boxes=None) -> tuple[list[Tile], str]:
    """``n`` augmented versions of one image as a recipe would make them: (tiles, kind).

    Offline amplification (``factor > 1``): the image's amplification plan, its first ``factor``
    tiles exactly the variants training writes for this file; further tiles are extra draws.
    Otherwise the online layers, applied to ``n`` copies of the image (one batch).

    ``boxes``: the image's boxes (original pixels), drawn on the tiles whose variant left the
    image in place or only flipped it; ``kind`` says so when some tiles go without.
    """
    from .augment import AffineParams, amplification_plan, apply_params
    from .boxes import BoxTransform, transform_boxes
    from .inputs import load_input

    image, meta = load_input(str(path), geometry)
    centre = image.shape[-1] // 2  # gray, or the centre slice of a slice-and-neighbours stack
    placed = _placed_boxes(boxes, meta, geometry, path)
    offline = augment_cfg.offline
    if offline.factor > 1:
        plan = amplification_plan([str(path)], n, offline, seed)
        tiles = []
        for _, row in plan.iterrows():
            params = AffineParams(**{f: row[f] for f in AffineParams.__dataclass_fields__})
            extra = " (extra)" if row["variant"] >= offline.factor else ""
            caption = (f"#{int(row['variant'])}{extra} {'flip ' if params.flip else ''}"
                       f"rot {params.rotation:+.0f}\nshift {params.shift_x:+.2f},{params.shift_y:+.2f} "
                       f"shear {params.shear:+.2f}\nzoom {params.zoom_x:.2f},{params.zoom_y:.2f}")
            shown = None
            if placed is not None and params.is_identity:  # in place, or only flipped
                shown = transform_boxes(placed, BoxTransform(flip=params.flip), geometry.size, geometry.size)[0]
            tiles.append(Tile(apply_params(image[..., centre], params), caption, shown))
        kind = f"offline x{offline.factor}"
        if placed is not None and any(t.boxes is None for t in tiles):
            kind += "; boxes drawn only on the tiles left in place or only flipped"
        return tiles, kind
    from .online import online_augmentation

    layer = online_augmentation(augment_cfg.online, seed)
    if layer is None:
        raise UserError("recipe: no augmentation to preview (augment.offline.factor is 1 and augment.online is off); "
                        "tfxray show-batch RECIPE --data MANIFEST shows the images as training feeds them")
    batch = np.asarray(layer(np.repeat(image[None], n, axis=0), training=True))
    kind = "online" + ("; boxes not drawn: the online layers do not move them" if placed is not None else "")
    return [Tile(b[..., centre], f"online draw {k}") for k, b in enumerate(batch)], kind


def image_boxes(manifest_source, image) -> np.ndarray:
    """``image``'s boxes (original pixels, (k, 4)) from the manifest at ``manifest_source``, which must list it."""
    import os

    from .manifest import load_manifest

    manifest = load_manifest(manifest_source, check_files=False)  # only this image's rows are needed
    path = os.path.abspath(str(image))
    if not (manifest.images["path"] == path).any():
        raise UserError(f"{image}: not in the manifest {manifest_source} (its boxes are looked up there)")
    return manifest.boxes_for(path)


def _placed_boxes(boxes, meta: dict, geometry: ImageGeometry, path) -> np.ndarray | None:
    """An image's boxes (original pixels) in its tile's pixels; None without boxes. A box outside the
    image is a one-line error."""
    if boxes is None:
        return None
    found = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(found):
        return None
    rows, cols = int(meta["rows"]), int(meta["cols"])
    bad = (found[:, 0] < 0) | (found[:, 1] < 0) | (found[:, 2] > cols) | (found[:, 3] > rows) \
        | (found[:, 2] <= found[:, 0]) | (found[:, 3] <= found[:, 1])
    if bad.any():
        box = ", ".join(f"{v:g}" for v in found[np.flatnonzero(bad)[0]])
        raise UserError(f"{path}: box ({box}) is not inside the image ({cols} x {rows} px)")
    return boxes_to_input(found, rows, cols, geometry)


def detection_preview_tiles(path: str, boxes, augment: dict, geometry: ImageGeometry, n: int, seed: int
                            ) -> tuple[list[Tile], str]:
    """The image as the detector's input (first tile), then ``n - 1`` draws of its augmentation: (tiles, kind).

    ``boxes``: the image's boxes in original pixels (``Manifest.boxes_for``), moved with the image by
    the training pipeline's own transform (``detection.transform_batch``) and drawn on every tile;
    a box the draw pushes out of the input is dropped there, as in training.
    """
    import tensorflow as tf

    from .detection import PAD, augment_parameters, draw_augmentation, transform_batch
    from .inputs import load_input

    params = augment_parameters(augment)
    if params is None or params == (0.0, 0.0):
        raise UserError("recipe: no augmentation to preview (augment.boxes is off, or flip 0 and rotation 0)")
    flip, rotation = params
    image, meta = load_input(str(path), geometry)
    centre = image.shape[-1] // 2
    placed = _placed_boxes(boxes, meta, geometry, path)  # None without boxes
    placed = np.zeros((0, 4), np.float32) if placed is None else placed.astype(np.float32)
    m = max(len(placed), 1)
    padded = np.full((n, m, 4), PAD, np.float32)
    padded[:, :len(placed)] = placed
    classes = np.full((n, m), PAD, np.float32)
    classes[:, :len(placed)] = 0
    flips, angles = draw_augmentation(seed, n, flip, rotation)
    flips = tf.concat([[False], flips[1:]], 0)  # the first tile is the input itself
    angles = tf.concat([[0.0], angles[1:]], 0)
    moved, moved_boxes, moved_classes = transform_batch(np.repeat(image[None], n, axis=0), padded, classes,
                                                        flips, angles)
    moved, moved_boxes, moved_classes = moved.numpy(), moved_boxes.numpy(), moved_classes.numpy()
    flips, angles = flips.numpy(), angles.numpy()
    tiles = []
    for k in range(n):
        shown = moved_boxes[k][moved_classes[k] >= 0]
        caption = "input" if k == 0 else f"draw {k}: {'flip ' if flips[k] else ''}rot {angles[k]:+.0f}"
        if len(placed) and len(shown) < len(placed):
            caption += f"\n{len(placed) - len(shown)} box(es) pushed out"
        tiles.append(Tile(moved[k][..., centre], caption, shown))
    kind = f"detection: flip {flip:g}, rotation +-{rotation:g}"
    if boxes is None:
        kind += "; no boxes given (--data MANIFEST draws them)"
    elif not len(placed):
        kind += "; the image has no boxes"
    return tiles, kind


def write_preview_grid(tiles: list[Tile], title: str, out: Path) -> Path:
    """A grid of gray tiles with captions (and boxes), written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ..io import atomic_save_figure

    columns = int(np.ceil(np.sqrt(len(tiles))))
    rows = int(np.ceil(len(tiles) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.7 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, tile in zip(axes.ravel(), tiles):
        ax.imshow(tile.image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        for x1, y1, x2, y2 in (tile.boxes if tile.boxes is not None else []):
            # boxes are continuous coordinates (pixel i covers [i, i + 1)); imshow centres pixel i on i
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor="lime",
                                   linewidth=1.0))
        ax.set_title(tile.caption, fontsize=6.5)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    try:
        return atomic_save_figure(fig, out)
    finally:
        plt.close(fig)
