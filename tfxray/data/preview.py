"""What the training pipeline feeds a model, as pictures: a batch of training images with labels.

``preview_tiles`` shows one image's augmentations (``tfxray augment-preview``); ``training_batch``
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


def preview_tiles(path: str, augment_cfg, geometry, n: int, seed: int) -> tuple[list[Tile], str]:
    """``n`` augmented versions of one image as a recipe would make them: (tiles, kind).

    Offline amplification (``factor > 1``): the image's amplification plan, its first ``factor``
    tiles exactly the variants training writes for this file; further tiles are extra draws.
    Otherwise the online layers, applied to ``n`` copies of the image (one batch).
    """
    from .augment import AffineParams, amplification_plan, apply_params
    from .inputs import load_input

    image = load_input(str(path), geometry)[0]
    centre = image.shape[-1] // 2  # gray, or the centre slice of a slice-and-neighbours stack
    offline = augment_cfg.offline
    if offline.factor > 1:
        plan = amplification_plan([str(path)], n, offline, seed)
        tiles, captions = [], []
        for _, row in plan.iterrows():
            params = AffineParams(**{f: row[f] for f in AffineParams.__dataclass_fields__})
            tiles.append(apply_params(image[..., centre], params))
            extra = " (extra)" if row["variant"] >= offline.factor else ""
            captions.append(f"#{int(row['variant'])}{extra} {'flip ' if params.flip else ''}"
                            f"rot {params.rotation:+.0f}\nshift {params.shift_x:+.2f},{params.shift_y:+.2f} "
                            f"shear {params.shear:+.2f}\nzoom {params.zoom_x:.2f},{params.zoom_y:.2f}")
        return [Tile(t, c) for t, c in zip(tiles, captions)], f"offline x{offline.factor}"
    from .online import online_augmentation

    layer = online_augmentation(augment_cfg.online, seed)
    if layer is None:
        raise UserError("recipe: no augmentation to preview (augment.offline.factor is 1 and augment.online is off); "
                        "tfxray show-batch RECIPE --data MANIFEST shows the images as training feeds them")
    batch = np.asarray(layer(np.repeat(image[None], n, axis=0), training=True))
    return [Tile(b[..., centre], f"online draw {k}") for k, b in enumerate(batch)], "online"


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
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="lime", linewidth=1.0))
        ax.set_title(tile.caption, fontsize=6.5)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    try:
        return atomic_save_figure(fig, out)
    finally:
        plt.close(fig)
