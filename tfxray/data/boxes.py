"""Boxes: model-input pixels back to the original image, and augmentation that moves boxes with the image.

Boxes are (x1, y1, x2, y2) in continuous pixel coordinates: pixel column ``i`` covers
``[i, i + 1)``, so an image of width ``W`` spans ``[0, W]`` and its horizontal flip maps
``x`` to ``W - x``. Rotation is about the image centre ``(W / 2, H / 2)``, which is the
centre of pixel index ``((W - 1) / 2, (H - 1) / 2)``: image and boxes share one convention.

The detector's augmentation (Mu et al. 2021): a horizontal flip with probability 0.5 and a
rotation drawn uniformly in [-180, 180] degrees. As in ``augment.py``, drawing the random
parameters (``draw_box_transform``) is separate from applying them (``apply_box_transform``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import ImageGeometry, image_placement


def as_boxes(boxes) -> np.ndarray:
    """Any box-like input -> float64 (N, 4)."""
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def clip_boxes(boxes, height: int, width: int) -> np.ndarray:
    """Clip boxes to the image ``[0, width] x [0, height]``."""
    boxes = as_boxes(boxes).copy()
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    return boxes


def boxes_from_input(boxes, height: int, width: int, geometry: ImageGeometry) -> np.ndarray:
    """The inverse of ``geometry.boxes_to_input``: model-input pixels -> original-image pixels.

    Works for both resize modes (``stretch`` and ``pad``); the result is clipped to the
    original image, so a detection reaching into the padding ends at the image's border.
    """
    new_h, new_w, top, left = image_placement(height, width, geometry)
    boxes = as_boxes(boxes)
    offset = np.array([left, top] * 2, np.float64)
    scale = np.array([new_w / width, new_h / height] * 2, np.float64)
    return clip_boxes((boxes - offset) / scale, height, width)


# --------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class BoxTransform:
    """One draw of the detector's augmentation: flip first, then rotate about the centre."""

    flip: bool = False
    rotation: float = 0.0  # degrees, positive = counter-clockwise as displayed (as keras RandomRotation)

    @property
    def is_identity(self) -> bool:
        return not self.flip and self.rotation % 360 == 0


def draw_box_transform(
    rng: np.random.Generator, flip_probability: float = 0.5, max_rotation: float = 180.0
) -> BoxTransform:
    """Flip with ``flip_probability``; rotation uniform in ``[-max_rotation, max_rotation]`` degrees."""
    flip = bool(rng.random() < flip_probability)
    rotation = float(rng.uniform(-max_rotation, max_rotation)) if max_rotation > 0 else 0.0
    return BoxTransform(flip=flip, rotation=rotation)


def _rotation(params: BoxTransform) -> np.ndarray:
    """2x2 matrix taking (dx, dy) about the centre, y pointing down, to its rotated position."""
    theta = np.deg2rad(params.rotation)
    c, s = np.cos(theta), np.sin(theta)
    # counter-clockwise on screen: a point right of the centre moves up (y decreases)
    return np.array([[c, s], [-s, c]])


def transform_points(points, params: BoxTransform, height: int, width: int) -> np.ndarray:
    """(N, 2) points (x, y) in continuous pixel coordinates -> where the transform puts them."""
    points = np.asarray(points, np.float64).reshape(-1, 2).copy()
    if params.flip:
        points[:, 0] = width - points[:, 0]
    centre = np.array([width / 2, height / 2])
    return (points - centre) @ _rotation(params).T + centre


def transform_boxes(
    boxes, params: BoxTransform, height: int, width: int, min_size: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Move boxes with the image: (kept boxes (M, 4), indices of the kept input boxes (M,)).

    A rotated box becomes the axis-aligned box enclosing its four rotated corners, clipped
    to the image; a box left narrower or shorter than ``min_size`` pixels (outside entirely) is dropped.
    """
    boxes = as_boxes(boxes)
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([np.stack(corner, -1) for corner in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))], 1)
    moved = transform_points(corners.reshape(-1, 2), params, height, width).reshape(-1, 4, 2)
    out = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
    out = clip_boxes(out, height, width)
    keep = np.flatnonzero((out[:, 2] - out[:, 0] >= min_size) & (out[:, 3] - out[:, 1] >= min_size))
    return out[keep], keep


def transform_image(image: np.ndarray, params: BoxTransform, order: int = 1, fill: float = 0.0) -> np.ndarray:
    """Flip and rotate an (H, W) or (H, W, C) image on its own canvas; uncovered corners get ``fill``."""
    from scipy import ndimage

    out = image[:, ::-1] if params.flip else image
    if params.rotation % 360 == 0:
        return np.ascontiguousarray(out)
    height, width = out.shape[:2]
    # affine_transform maps each output index (row, col) to the input index it samples:
    # the inverse rotation, written in (row, col) = (y, x) order.
    forward = _rotation(params)  # on (x, y)
    inverse_xy = forward.T
    inverse = inverse_xy[::-1, ::-1]  # the same matrix on (y, x)
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    offset = centre - inverse @ centre

    def one(channel: np.ndarray) -> np.ndarray:
        # grid-constant: a sample a rounding error outside the border still interpolates, so
        # multiples of 90 degrees move pixels exactly
        return ndimage.affine_transform(channel, inverse, offset=offset, order=order, mode="grid-constant", cval=fill)

    if out.ndim == 2:
        return one(out)
    return np.stack([one(out[..., c]) for c in range(out.shape[-1])], -1)


def apply_box_transform(image: np.ndarray, boxes, params: BoxTransform) -> tuple[np.ndarray, np.ndarray]:
    """Apply one draw to an image and its boxes together: (image, boxes).

    Boxes that leave the image are dropped; ``transform_boxes`` also returns which were kept,
    for callers that carry a class or a tag per box.
    """
    height, width = image.shape[:2]
    moved, _ = transform_boxes(boxes, params, height, width)
    return transform_image(image, params), moved
