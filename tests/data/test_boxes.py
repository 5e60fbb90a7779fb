import numpy as np
import pytest

from tfxray.data.boxes import (
    BoxTransform,
    apply_box_transform,
    boxes_from_input,
    draw_box_transform,
    transform_boxes,
    transform_image,
)
from tfxray.data.geometry import ImageGeometry, boxes_to_input


@pytest.mark.parametrize("resize", ["stretch", "pad"])
@pytest.mark.parametrize("height, width", [(100, 200), (300, 170), (64, 64), (37, 211)])
def test_input_round_trip(resize, height, width):
    geometry = ImageGeometry(64, resize=resize)
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, width, (20, 2)), axis=1)
    y = np.sort(rng.uniform(0, height, (20, 2)), axis=1)
    boxes = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1)
    back = boxes_from_input(boxes_to_input(boxes, height, width, geometry), height, width, geometry)
    np.testing.assert_allclose(back, boxes, atol=1e-4)


def test_input_to_original_by_hand():
    # 200 x 100 into 64 px with padding: ratio 3.125, placed 64 x 32 at top 16, left 0
    pad = ImageGeometry(64, resize="pad")
    np.testing.assert_allclose(boxes_from_input([8, 20, 24, 40], 100, 200, pad), [[25, 12.5, 75, 75]])
    # stretched: x scale 200 / 64, y scale 100 / 64
    stretch = ImageGeometry(64, resize="stretch")
    np.testing.assert_allclose(boxes_from_input([8, 20, 24, 40], 100, 200, stretch), [[25, 31.25, 75, 62.5]])
    # a box over the padding ends at the image's border
    np.testing.assert_allclose(boxes_from_input([0, 0, 64, 64], 100, 200, pad), [[0, 0, 200, 100]])


def test_flip_by_hand():
    boxes, keep = transform_boxes([[10, 5, 30, 25]], BoxTransform(flip=True), height=60, width=100)
    np.testing.assert_allclose(boxes, [[70, 5, 90, 25]])  # (W - x2, y1, W - x1, y2)
    assert list(keep) == [0]


def test_rotation_90_by_hand():
    # W 100, H 60, centre (50, 30). Corners (60,10) (80,10) (80,20) (60,20) are offsets
    # (10,-20) (30,-20) (30,-10) (10,-10); counter-clockwise by 90 on screen (y down) sends
    # (dx, dy) to (dy, -dx): (-20,-10) (-20,-30) (-10,-30) (-10,-10), i.e. x 30..40, y 0..20.
    boxes, _ = transform_boxes([[60, 10, 80, 20]], BoxTransform(rotation=90), height=60, width=100)
    np.testing.assert_allclose(boxes, [[30, 0, 40, 20]], atol=1e-9)
    # -90: (dx, dy) -> (-dy, dx): x 60..70, y 40..60
    boxes, _ = transform_boxes([[60, 10, 80, 20]], BoxTransform(rotation=-90), height=60, width=100)
    np.testing.assert_allclose(boxes, [[60, 40, 70, 60]], atol=1e-9)


def test_rotation_180_is_flip_both_ways():
    rng = np.random.default_rng(1)
    image = rng.random((40, 70, 2)).astype(np.float32)
    boxes = np.array([[3, 4, 20, 30], [50, 1, 69, 39]], float)
    out_image, out_boxes = apply_box_transform(image, boxes, BoxTransform(rotation=180))
    np.testing.assert_allclose(out_image, image[::-1, ::-1], atol=1e-5)
    expected = np.stack([70 - boxes[:, 2], 40 - boxes[:, 3], 70 - boxes[:, 0], 40 - boxes[:, 1]], 1)
    np.testing.assert_allclose(out_boxes, expected, atol=1e-9)


def test_image_rotation_90_is_numpy_rot90():
    image = np.random.default_rng(2).random((33, 33))
    np.testing.assert_allclose(transform_image(image, BoxTransform(rotation=90)), np.rot90(image), atol=1e-9)
    np.testing.assert_allclose(transform_image(image, BoxTransform(rotation=-90)), np.rot90(image, -1), atol=1e-9)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("angle", [0, 17, 45, 90, -90, 135, 180, -163])
def test_box_tightly_encloses_the_transformed_bright_region(flip, angle):
    height, width = 90, 120  # off-square
    image = np.zeros((height, width), np.float32)
    image[20:40, 70:95] = 1.0  # the box (70, 20, 95, 40) in continuous pixels
    out_image, out_boxes = apply_box_transform(image, [[70, 20, 95, 40]], BoxTransform(flip=flip, rotation=angle))
    rows, cols = np.nonzero(out_image > 0.5)
    bright = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], float)
    assert out_boxes.shape == (1, 4)
    np.testing.assert_allclose(out_boxes[0], bright, atol=1.5)


def test_boxes_outside_are_dropped_and_others_clipped():
    # a corner box rotated 45 degrees about the centre of a 100 x 100 image leaves it entirely
    boxes = [[0, 0, 5, 5], [40, 40, 60, 60], [0, 45, 30, 55]]
    boxes, keep = transform_boxes(boxes, BoxTransform(rotation=45), 100, 100)
    assert list(keep) == [1, 2]
    assert boxes.shape == (2, 4)
    assert (boxes >= 0).all() and (boxes <= 100).all()
    half = 10 * np.sqrt(2)  # the centred 20 x 20 box becomes a 28.3 x 28.3 diamond's enclosing box
    np.testing.assert_allclose(boxes[0], [50 - half, 50 - half, 50 + half, 50 + half], atol=1e-9)
    image, moved = apply_box_transform(np.ones((100, 100)), [[0, 0, 5, 5]], BoxTransform(rotation=45))
    assert moved.shape == (0, 4) and image.shape == (100, 100)


def test_draw_is_seeded_and_follows_the_paper():
    draws = [draw_box_transform(np.random.default_rng(7)) for _ in range(2)]
    assert draws[0] == draws[1]
    rng = np.random.default_rng(0)
    many = [draw_box_transform(rng, flip_probability=0.5, max_rotation=180) for _ in range(4000)]
    flips = np.mean([p.flip for p in many])
    angles = np.array([p.rotation for p in many])
    assert 0.46 < flips < 0.54
    assert angles.min() >= -180 and angles.max() <= 180
    assert angles.min() < -170 and angles.max() > 170
    counts, _ = np.histogram(angles, bins=6, range=(-180, 180))
    assert counts.min() > 0.8 * len(many) / 6  # uniform
    none = draw_box_transform(rng, flip_probability=0.0, max_rotation=0.0)
    assert none.is_identity


def test_apply_keeps_channels_and_identity_is_exact():
    image = np.random.default_rng(3).random((20, 30, 3)).astype(np.float32)
    out, boxes = apply_box_transform(image, [[1, 2, 10, 12]], BoxTransform())
    np.testing.assert_array_equal(out, image)
    np.testing.assert_allclose(boxes, [[1, 2, 10, 12]])
    out, _ = apply_box_transform(image, [[1, 2, 10, 12]], BoxTransform(flip=True, rotation=33))
    assert out.shape == image.shape and out.dtype == image.dtype
    out, boxes = apply_box_transform(image, np.zeros((0, 4)), BoxTransform(flip=True, rotation=33))  # a normal image
    assert boxes.shape == (0, 4)
