"""Offline amplification, ImageDataGenerator-style, reproducible for a seed.

The wrist protocol turns 1,389 radiographs into 11,112 (8x): every image, its horizontal
flip, and six random affine transforms (rotation up to 25 degrees, width and height shift
up to 15%, shear up to 10%, zoom up to 15%). Drawing the random parameters is separate
from applying them, so a data set's amplification is a table that can be saved, inspected
and replayed. Only the training split is ever amplified.

The transform follows keras' legacy ``ImageDataGenerator.apply_transform`` (rotation,
shift, shear, zoom composed about the image centre, nearest fill); it is applied with
``scipy.ndimage.affine_transform`` because the generator is no longer public in Keras 3.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_write_text


@dataclass(frozen=True)
class AffineParams:
    flip: bool = False
    rotation: float = 0.0  # degrees
    shift_x: float = 0.0  # fraction of the width
    shift_y: float = 0.0  # fraction of the height
    shear: float = 0.0  # shear factor: 0.10 = 10% (tangent of the shear angle)
    zoom_x: float = 1.0
    zoom_y: float = 1.0

    @property
    def is_identity(self) -> bool:
        return self == AffineParams(flip=self.flip)


def draw_params(rng: np.random.Generator, factor: int, cfg) -> list[AffineParams]:
    """The ``factor`` variants of one image: identity, flip, then random transforms."""
    variants = [AffineParams()]
    if factor >= 2 and cfg.flip:
        variants.append(AffineParams(flip=True))
    while len(variants) < factor:
        variants.append(
            AffineParams(
                flip=bool(cfg.flip and rng.random() < 0.5),
                rotation=float(rng.uniform(-cfg.rotation, cfg.rotation)),
                shift_x=float(rng.uniform(-cfg.width_shift, cfg.width_shift)),
                shift_y=float(rng.uniform(-cfg.height_shift, cfg.height_shift)),
                shear=float(rng.uniform(-cfg.shear, cfg.shear)),
                zoom_x=float(rng.uniform(1 - cfg.zoom, 1 + cfg.zoom)),
                zoom_y=float(rng.uniform(1 - cfg.zoom, 1 + cfg.zoom)),
            )
        )
    return variants


def transform_matrix(params: AffineParams, height: int, width: int) -> np.ndarray:
    """3x3 matrix mapping output (row, col) to input (row, col), composed about the centre.

    Same composition as ImageDataGenerator: rotation @ shift @ shear @ zoom. Shear is a
    fraction (0.10 = 10%), applied as the tangent of the shear angle.
    """
    theta = np.deg2rad(params.rotation)
    rotation = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    shift = np.array([[1, 0, params.shift_y * height], [0, 1, params.shift_x * width], [0, 0, 1]])
    shear = np.array([[1, -params.shear, 0], [0, 1, 0], [0, 0, 1]])
    zoom = np.array([[params.zoom_y, 0, 0], [0, params.zoom_x, 0], [0, 0, 1]])
    matrix = rotation @ shift @ shear @ zoom
    centre = np.array([[1, 0, (height - 1) / 2], [0, 1, (width - 1) / 2], [0, 0, 1]])
    uncentre = np.array([[1, 0, -(height - 1) / 2], [0, 1, -(width - 1) / 2], [0, 0, 1]])
    return centre @ matrix @ uncentre


def apply_params(image: np.ndarray, params: AffineParams) -> np.ndarray:
    """Apply one variant to an (H, W) or (H, W, C) image; nearest fill at the borders."""
    from scipy import ndimage

    out = image[:, ::-1] if params.flip else image
    if params.is_identity:
        return np.ascontiguousarray(out)
    matrix = transform_matrix(params, out.shape[0], out.shape[1])
    if out.ndim == 2:
        return ndimage.affine_transform(out, matrix, order=1, mode="nearest")
    return np.stack(
        [ndimage.affine_transform(out[..., c], matrix, order=1, mode="nearest") for c in range(out.shape[-1])], -1
    )


def amplification_plan(paths: list[str], factor: int, cfg, seed: int) -> pd.DataFrame:
    """One row per output image: source path, variant number and its parameters."""
    rows = []
    for path in paths:
        key = hashlib.sha256(f"{seed}:{Path(path).name}:{path}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(key[:8], "little"))
        for k, params in enumerate(draw_params(rng, factor, cfg)):
            rows.append({"source": path, "variant": k, **asdict(params)})
    return pd.DataFrame(rows)


def amplify_offline(rows: pd.DataFrame, inputs, cfg, seed: int, out_dir: Path, progress: bool = True):
    """Write ``cfg.factor`` variants of each training image as 16-bit PNGs at the model's size.

    ``rows`` has path, label, patient_id (the training split); ``inputs`` builds each image's model
    input (``inputs.input_builder``). Returns the amplified rows (the same columns, plus
    ``source``) and the builder of their inputs, and writes ``amplified.csv`` with every
    parameter. Existing files are reused, so a resumed run does not redo the work.

    A CT input (a slice's region and its neighbours, ``inputs.SliceStackInput``) has three
    channels, written as three gray PNGs (16-bit PNG has no 3-channel gray form): the output
    row's ``prev_path``, ``path`` and ``next_path``, with no box left to crop (NaN).
    """
    from ..progress import progress as progress_bar
    from .inputs import ImageInput, SliceStackInput
    from .manifest import BOX_COLUMNS
    from .synth import write_png16

    out_dir = Path(out_dir)
    stacked = isinstance(inputs, SliceStackInput)  # three slices per input
    plan = amplification_plan(rows["path"].tolist(), cfg.factor, cfg, seed)
    by_path = rows.set_index("path")
    outputs, neighbours = [], []
    for source, group in progress_bar(plan.groupby("source", sort=False), desc="amplifying", unit="img", disable=not progress):
        stem = hashlib.sha1(source.encode()).hexdigest()[:16]
        names = [f"{stem}_{int(v)}" for v in group["variant"]]
        targets = [[out_dir / f"{n}_c{c}.png" for c in range(3)] if stacked else [out_dir / f"{n}.png"] for n in names]
        if not all(t.is_file() for files in targets for t in files):
            image = inputs.load_path(source)[0]
            if not stacked:
                image = image[..., 0]  # gray, replicated again by the pipeline when channels: 3
            for files, (_, row) in zip(targets, group.iterrows()):
                params = AffineParams(**{f: row[f] for f in AffineParams.__dataclass_fields__})
                variant = apply_params(image, params)
                for c, target in enumerate(files):
                    write_png16(target, variant[..., c] if stacked else variant)
        for files in targets:
            outputs.append(str(files[len(files) // 2]))
            neighbours.append((str(files[0]), str(files[-1])))
    plan["path"] = outputs
    skip = {"path", "prev_path", "next_path", *BOX_COLUMNS}  # boxes were cropped before amplifying
    for column in [c for c in rows.columns if c not in skip]:
        plan[column] = by_path.loc[plan["source"], column].to_numpy()
    if stacked:
        plan["prev_path"] = [n[0] for n in neighbours]
        plan["next_path"] = [n[1] for n in neighbours]
        for column in BOX_COLUMNS:
            plan[column] = np.float32(np.nan)
    atomic_write_text(out_dir / "amplified.csv", plan.to_csv(index=False))
    amplified = SliceStackInput(inputs.geometry, plan) if stacked else ImageInput(inputs.geometry)
    return plan, amplified
