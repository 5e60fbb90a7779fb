"""CT inputs: region of interest from the box, slice plus neighbours, on hand-made arrays."""

import numpy as np
import pandas as pd
import pytest

from tfxray.data.ct import crop_square, ct_rows, load_ct_input, load_ct_pixels, neighbour_paths, roi_boxes, square_roi
from tfxray.data.geometry import ImageGeometry
from tfxray.data.inputs import ERROR, OK, SliceStackInput, input_builder, status_dataset
from tfxray.data.pipeline import training_dataset
from tfxray.data.synth import write_png16
from tfxray.errors import UserError


def coordinates(height=50, width=60):
    """Pixel value = row * 1000 + column: a crop names the pixels it holds."""
    rows, cols = np.mgrid[0:height, 0:width]
    return (rows * 1000 + cols).astype(np.float64)


def test_square_around_a_wide_box_is_centred():
    # columns 10..30 (21 px) by rows 20..30 (11 px): side 21, rows 15..35, same columns
    assert square_roi((10, 20, 30, 30)) == (15, 10, 21)
    crop = crop_square(coordinates(), (10, 20, 30, 30))
    expected = np.array([[r * 1000 + c for c in range(10, 31)] for r in range(15, 36)])
    assert np.array_equal(crop, expected)


def test_fractional_box_takes_the_pixels_it_touches():
    # x 4.5..8.2 touches columns 4..9 (6 px), y 2.9..3.1 rows 2..4 (3 px): side 6, rows 1..6 (3 - 1 above)
    assert square_roi((4.5, 2.9, 8.2, 3.1)) == (1, 4, 6)


def test_square_past_the_border_is_zero_padded_and_stays_centred():
    image = coordinates(50, 60) + 1  # +1: no real pixel is 0
    # columns 0..5 (6 px), rows 0..3 (4 px): side 6, rows -1..4
    crop = crop_square(image, (0, 0, 5, 3))
    assert crop.shape == (6, 6)
    assert np.all(crop[0] == 0)
    assert np.array_equal(crop[1:], image[0:5, 0:6])
    corner = crop_square(image, (55, 45, 59, 49))  # bottom-right corner box: 5 x 5, inside
    assert np.array_equal(corner, image[45:50, 55:60])
    wide = crop_square(image[..., None].repeat(3, -1), (50, 48, 59, 49))  # 10 wide, 2 tall: rows 44..53
    assert wide.shape == (10, 10, 3) and np.all(wide[6:] == 0) and np.array_equal(wide[:6, :, 1], image[44:50, 50:60])


def series_table():
    # rows in no particular order; two series, one slice without a series
    return pd.DataFrame({
        "path": ["b2", "a3", "a1", "b1", "x", "a2", "b3"],
        "series_id": ["B", "A", "A", "B", None, "A", "B"],
        "slice_index": [20, 3, 1, 10, None, 2, 30],
    })


def test_neighbours_follow_slice_order_within_a_series():
    got = dict(zip(series_table()["path"], neighbour_paths(series_table())))
    assert got["a1"] == ("a1", "a1", "a2")  # first slice: itself as the missing neighbour
    assert got["a2"] == ("a1", "a2", "a3")
    assert got["a3"] == ("a2", "a3", "a3")  # last slice
    assert got["b1"] == ("b1", "b1", "b2") and got["b2"] == ("b1", "b2", "b3") and got["b3"] == ("b2", "b3", "b3")
    assert got["x"] == ("x", "x", "x")  # no series: its own neighbours
    assert neighbour_paths(series_table())[0] == ("b1", "b2", "b3")  # results follow the table's row order


def test_neighbour_errors_are_one_line():
    with pytest.raises(UserError, match="series_id, slice_index"):
        neighbour_paths(pd.DataFrame({"path": ["a"]}))
    doubled = series_table()
    doubled.loc[1, "slice_index"] = 2  # a3 now claims position 2 like a2
    with pytest.raises(UserError, match="series A: slice_index 2 appears twice"):
        neighbour_paths(doubled)


def test_one_box_per_image():
    images = pd.DataFrame({"path": ["a", "b", "c"]})
    boxes = pd.DataFrame({"path": ["b", "a", "c"], "x1": [1, 2, 3], "y1": [1, 2, 3], "x2": [5, 6, 7], "y2": [5, 6, 7]})
    assert roi_boxes(images, boxes).tolist() == [[2, 2, 6, 6], [1, 1, 5, 5], [3, 3, 7, 7]]
    with pytest.raises(UserError, match="1 image\\(s\\) with no box.*first: c"):
        roi_boxes(images, boxes.iloc[:2])
    twice = pd.concat([boxes, boxes.iloc[[0]].assign(x1=0)])
    with pytest.raises(UserError, match="several boxes.*first: b"):
        roi_boxes(images, twice)


@pytest.fixture()
def three_slices(tmp_path):
    """A series of three 40x40 slices: slice k is a horizontal ramp plus 0.2 * k."""
    ramp = np.tile(np.linspace(0, 0.5, 40, dtype=np.float32), (40, 1))
    paths = []
    for k in range(3):
        path = tmp_path / f"s{k}.png"
        write_png16(path, ramp + 0.2 * k)
        paths.append(str(path))
    images = pd.DataFrame({"path": paths[::-1], "label": ["benign"] * 3, "series_id": ["S"] * 3,
                           "slice_index": [2, 1, 0]})
    boxes = pd.DataFrame({"path": paths, "x1": [10.0] * 3, "y1": [12.0] * 3, "x2": [25.0] * 3, "y2": [19.0] * 3})
    return paths, ramp, images, boxes


def test_slice_and_neighbours_become_channels(three_slices):
    paths, ramp, images, boxes = three_slices
    rows = ct_rows(images, boxes, roi=True, neighbours=True, paths=[paths[1]])
    assert rows[["prev_path", "path", "next_path"]].iloc[0].tolist() == paths
    box = rows[["x1", "y1", "x2", "y2"]].to_numpy()[0]
    pixels = load_ct_pixels(paths, box)
    # columns 10..25, rows 12..19 -> a 16 px square, rows 8..23
    expected = np.stack([ramp[8:24, 10:26] + 0.2 * k for k in range(3)], -1)
    assert pixels.shape == (16, 16, 3) and np.abs(pixels - expected).max() < 1e-4  # 16-bit PNG rounding
    same_size = load_ct_input(paths, box, ImageGeometry(16, 3))  # resampling to the crop's own size changes nothing
    assert np.abs(same_size - expected).max() < 1e-4
    small = load_ct_input(paths, box, ImageGeometry(8, 3))
    assert small.shape == (8, 8, 3)
    assert np.allclose(small.mean(axis=(0, 1)), expected.mean(axis=(0, 1)), atol=1e-3)  # area-preserving
    first = ct_rows(images, boxes, roi=True, neighbours=True, paths=[paths[0]]).iloc[0]
    assert (first["prev_path"], first["next_path"]) == (paths[0], paths[1])


def test_slice_stack_input_for_training_and_for_scoring(three_slices, tmp_path):
    paths, _, images, boxes = three_slices
    geometry = ImageGeometry(8, 3)
    builder = input_builder(geometry, roi=True, neighbours=True, images=images, boxes=boxes)
    (x, y), = list(training_dataset(paths, np.array([0, 1, 0]), builder, batch_size=4, shuffle=False, seed=0))
    assert x.shape == (3, 8, 8, 3) and np.asarray(y).tolist() == [0, 1, 0]
    box = builder.rows.loc[paths[1], ["x1", "y1", "x2", "y2"]]
    assert np.allclose(np.asarray(x[1]), load_ct_input(paths, box, geometry), atol=1e-6)
    broken = builder.rows.copy()
    broken.loc[paths[2], "next_path"] = str(tmp_path / "missing.png")
    broken = SliceStackInput(geometry, broken.reset_index(drop=True))
    (_, _, _, status, error, _, x), = list(status_dataset(broken, paths, batch_size=4))
    messages = [e.decode() for e in np.asarray(error)]
    assert messages[:2] == ["", ""] and "missing.png" in messages[2]
    assert np.asarray(status).tolist() == [OK, OK, ERROR]
    assert np.all(np.asarray(x[2]) == 0)
