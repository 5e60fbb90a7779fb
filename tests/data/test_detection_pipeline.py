"""The detector's input pipeline: padded targets in input pixels, flip + rotation that move image and boxes
together, seeded batches, manifest box checks and the augment-preview grid with boxes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tfxray.data.boxes import BoxTransform, transform_boxes, transform_image
from tfxray.data.detection import (
    PAD,
    augment_batch,
    detection_dataset,
    detection_targets,
    draw_augmentation,
    transform_batch,
)
from tfxray.data.geometry import ImageGeometry
from tfxray.data.manifest import load_manifest
from tfxray.data.synth import write_png16
from tfxray.errors import UserError

CLASSES = ["normal", "fracture"]
PAD_64 = ImageGeometry(64, 1, "pad")


def rectangle_image(rows: int, cols: int, box) -> np.ndarray:
    """A black image with the box's pixels bright: box (x1, y1, x2, y2) on whole pixels, continuous coordinates."""
    image = np.zeros((rows, cols), np.float32)
    x1, y1, x2, y2 = map(int, box)
    image[y1:y2, x1:x2] = 1.0
    return image


def bright_extent(image: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(x1, y1, x2, y2) of the pixels above ``threshold``, in continuous coordinates (pixel i covers [i, i + 1))."""
    ys, xs = np.nonzero(image > threshold)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


def write_set(folder, rows) -> str:
    """PNG files and a manifest: rows of (name, label, (rows, cols), [boxes])."""
    table = []
    for name, label, (h, w), boxes in rows:
        path = folder / name
        image = np.zeros((h, w), np.float32)
        for box in boxes:
            image = np.maximum(image, rectangle_image(h, w, box))
        write_png16(path, image)
        for box in boxes or [None]:
            table.append({"path": name, "label": label, "patient_id": name.split(".")[0],
                          **dict(zip(("x1", "y1", "x2", "y2"), box if box is not None else [None] * 4))})
    manifest = folder / "manifest.csv"
    pd.DataFrame(table).to_csv(manifest, index=False)
    return str(manifest)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detection_set")
    source = write_set(folder, [
        ("wide.png", "fracture", (50, 100), [(10, 5, 30, 25), (60, 20, 80, 40)]),  # two boxes, not square
        ("square.png", "fracture", (64, 64), [(24, 24, 40, 36)]),
        ("plain.png", "normal", (64, 64), []),
    ])
    return load_manifest(source, classes=CLASSES)


# --------------------------------------------------------------------------- targets


def test_targets_are_input_pixels_padded_with_minus_one(small_set):
    paths, boxes, classes = detection_targets(small_set, PAD_64)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["wide.png", "square.png", "plain.png"]
    assert boxes.shape == (3, 2, 4) and classes.shape == (3, 2) and boxes.dtype == classes.dtype == np.float32
    # 100 x 50 into 64 px, pad: ratio 100 / 64 = 1.5625, placed 64 x 32 at top 16, left 0: scale 0.64
    np.testing.assert_allclose(boxes[0], [[6.4, 5 * 0.64 + 16, 19.2, 25 * 0.64 + 16],
                                          [38.4, 20 * 0.64 + 16, 51.2, 40 * 0.64 + 16]], atol=1e-5)
    np.testing.assert_array_equal(classes[0], [0, 0])  # fracture: the first (only) positive class
    np.testing.assert_allclose(boxes[1, 0], [24, 24, 40, 36])  # square at its own size: unchanged
    np.testing.assert_array_equal(boxes[1, 1], [PAD] * 4)
    np.testing.assert_array_equal(classes[1], [0, PAD])
    np.testing.assert_array_equal(boxes[2], np.full((2, 4), PAD))  # the negative image: all padding
    np.testing.assert_array_equal(classes[2], [PAD, PAD])
    assert detection_targets(small_set, PAD_64, max_boxes=5)[1].shape == (3, 5, 4)
    with pytest.raises(UserError, match="max_boxes 1: .*wide.png has 2 boxes"):
        detection_targets(small_set, PAD_64, max_boxes=1)


def test_box_class_is_the_label_among_the_positive_classes(small_set):
    images = small_set.images.copy()
    images.loc[images.path.str.endswith("square.png"), "label"] = "subtle"
    images.loc[images.path.str.endswith("wide.png"), "label"] = "displaced"
    _, _, classes = detection_targets((images, small_set.boxes, ["normal", "displaced", "subtle"]), PAD_64)
    np.testing.assert_array_equal(classes, [[0, 0], [1, PAD], [PAD, PAD]])
    # a box on an image of the negative class is refused, in one line
    images.loc[images.path.str.endswith("square.png"), "label"] = "normal"
    with pytest.raises(UserError, match="negative class 'normal' carry boxes") as info:
        detection_targets((images, small_set.boxes, ["normal", "displaced", "subtle"]), PAD_64)
    assert "\n" not in str(info.value)


def test_a_decoded_bright_box_lands_in_its_target(small_set):
    ds = detection_dataset(small_set, PAD_64, batch_size=3, shuffle=False, seed=0)
    images, targets = next(iter(ds))
    assert images.shape == (3, 64, 64, 1) and images.dtype.name == "float32"
    assert set(targets) == {"boxes", "classes"}
    for image, boxes, classes in zip(images.numpy(), targets["boxes"].numpy(), targets["classes"].numpy()):
        kept = boxes[classes >= 0]
        if not len(kept):
            assert image.max() < 0.5
            continue
        for box in kept:  # the bright pixels inside each box fill it to about a pixel
            x1, y1, x2, y2 = box
            inside = image[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2)), 0]
            extent = bright_extent(inside) + [np.floor(x1), np.floor(y1)] * 2
            np.testing.assert_allclose(extent, box, atol=1.0)


# --------------------------------------------------------------------------- augmentation


def test_transform_batch_is_boxes_py():
    """The TensorFlow transform gives boxes.py's numbers: its boxes exactly, its image to float rounding."""
    rng = np.random.default_rng(4)
    size = 48
    image = rng.random((size, size, 1)).astype(np.float32)
    x = np.sort(rng.uniform(0, size, (5, 2)), 1)
    y = np.sort(rng.uniform(0, size, (5, 2)), 1)
    boxes = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1).astype(np.float32)
    for flip, angle in [(False, 0.0), (True, 0.0), (False, 30.0), (True, -47.0), (False, 90.0), (True, 180.0),
                        (False, -135.0)]:
        params = BoxTransform(flip=flip, rotation=angle)
        moved, out, classes = transform_batch(image[None], boxes[None], np.zeros((1, 5), np.float32),
                                              [flip], [angle])
        np.testing.assert_allclose(moved.numpy()[0], transform_image(image, params), atol=1e-5)
        expected, keep = transform_boxes(boxes, params, size, size)
        kept = classes.numpy()[0] >= 0
        assert kept.sum() == len(keep)
        np.testing.assert_allclose(out.numpy()[0][kept], expected, atol=1e-3)
        np.testing.assert_array_equal(out.numpy()[0][~kept], PAD)
    # 90 degrees is a counter-clockwise quarter turn as displayed, exactly
    moved = transform_batch(image[None], boxes[None], np.zeros((1, 5), np.float32), [False], [90.0])[0]
    np.testing.assert_array_equal(moved.numpy()[0, ..., 0], np.rot90(image[..., 0]))


@pytest.mark.parametrize("flip, angle", [(False, 30.0), (False, 90.0), (True, 0.0), (True, 30.0), (False, -120.0)])
def test_the_moved_box_encloses_the_moved_bright_pixels(flip, angle):
    size = 64
    box = np.array([14, 20, 34, 28], np.float32)  # off-centre, not square: a flip or a turn moves it
    image = rectangle_image(size, size, box)[..., None]
    moved, boxes, classes = transform_batch(image[None], np.array([[box, [PAD] * 4]], np.float32),
                                            np.array([[0, PAD]], np.float32), [flip], [angle])
    assert classes.numpy().tolist() == [[0, PAD]]
    np.testing.assert_array_equal(boxes.numpy()[0, 1], [PAD] * 4)
    np.testing.assert_allclose(bright_extent(moved.numpy()[0, ..., 0]), boxes.numpy()[0, 0], atol=1.0)


def test_random_draws_keep_image_and_boxes_together():
    size = 64
    box = np.array([20, 24, 40, 34], np.float32)
    image = rectangle_image(size, size, box)[..., None]
    n = 12
    moved, boxes, classes = augment_batch(np.repeat(image[None], n, 0), np.repeat(box[None, None], n, 0),
                                          np.zeros((n, 1), np.float32), seed=7, flip=0.5, rotation=180.0)
    flips, angles = draw_augmentation(7, n, 0.5, 180.0)
    assert 0 < flips.numpy().sum() < n and np.ptp(angles.numpy()) > 90  # a real spread of draws
    for k in range(n):
        assert classes.numpy()[k, 0] == 0  # near the centre: never pushed out
        np.testing.assert_allclose(bright_extent(moved.numpy()[k, ..., 0]), boxes.numpy()[k, 0], atol=1.0)


def test_boxes_pushed_out_become_padding_after_the_kept_ones():
    size = 32
    boxes = np.array([[[0, 0, 3, 3], [12, 12, 20, 20]]], np.float32)  # a corner box, a central box
    _, out, classes = transform_batch(np.zeros((1, size, size, 1), np.float32), boxes,
                                      np.array([[0, 0]], np.float32), [False], [45.0])
    np.testing.assert_array_equal(classes.numpy(), [[0, PAD]])  # the corner turned off the canvas
    np.testing.assert_array_equal(out.numpy()[0, 1], [PAD] * 4)
    assert out.numpy()[0, 0, 0] > 10  # the central box, moved to the first row


def test_pipeline_augmentation_moves_boxes_with_the_image(tmp_path):
    source = write_set(tmp_path, [(f"i{k}.png", "fracture", (40 + 8 * k, 80), [(30, 10 + k, 48, 24 + k)])
                                  for k in range(4)] + [("n.png", "normal", (60, 60), [])])
    manifest = load_manifest(source, classes=CLASSES)
    ds = detection_dataset(manifest, PAD_64, batch_size=5, shuffle=True, seed=3,
                           augment={"flip": 0.5, "rotation": 180})
    seen = 0
    for _ in range(3):  # epochs: new draws each time
        for images, targets in ds:
            for image, boxes, classes in zip(images.numpy(), targets["boxes"].numpy(), targets["classes"].numpy()):
                if image.max() < 0.5:  # the negative image
                    assert (classes == PAD).all()
                    continue
                assert classes[0] == 0
                np.testing.assert_allclose(bright_extent(image[..., 0]), boxes[0], atol=1.5)
                seen += 1
    assert seen == 12


def test_same_seed_same_batches(small_set):
    def batches(seed):
        ds = detection_dataset(small_set, PAD_64, batch_size=2, shuffle=True, seed=seed,
                               augment={"flip": 0.5, "rotation": 180})
        return [(x.numpy(), t["boxes"].numpy(), t["classes"].numpy()) for _ in range(2) for x, t in ds]

    a, b, c = batches(5), batches(5), batches(6)
    assert len(a) == 4  # two epochs of two batches (3 images)
    for one, two in zip(a, b):
        for u, v in zip(one, two):
            np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u[1], v[1]) for u, v in zip(a, c))
    assert not np.array_equal(a[0][1], a[2][1]) or not np.array_equal(a[1][1], a[3][1])  # epochs differ


def test_duplicated_paths_are_rows_of_their_own(small_set):
    square = small_set.images.path[small_set.images.path.str.endswith("square.png")].iloc[0]
    doubled = pd.concat([small_set.images, small_set.images.iloc[[1]]], ignore_index=True)
    paths, boxes, classes = detection_targets((doubled, small_set.boxes, CLASSES), PAD_64, extra_paths=[square])
    assert paths[1] == paths[3] == paths[4] == square and len(paths) == 5
    np.testing.assert_array_equal(boxes[3], boxes[1])
    np.testing.assert_array_equal(boxes[4], boxes[1])
    ds = detection_dataset((doubled, small_set.boxes, CLASSES), PAD_64, batch_size=8, shuffle=False, seed=0,
                           extra_paths=[square])
    images, targets = next(iter(ds))
    assert images.shape[0] == 5
    np.testing.assert_array_equal(images[4].numpy(), images[1].numpy())
    np.testing.assert_array_equal(targets["boxes"][4].numpy(), boxes[1])
    with pytest.raises(UserError, match="extra_paths: 1 path"):
        detection_targets(small_set, PAD_64, extra_paths=["/nowhere.png"])


def test_bad_augment_keys_are_one_line(small_set):
    with pytest.raises(UserError, match="unknown key.*rotate"):
        detection_dataset(small_set, PAD_64, batch_size=2, shuffle=False, seed=0, augment={"rotate": 10})
    with pytest.raises(UserError, match="flip: a probability"):
        detection_dataset(small_set, PAD_64, batch_size=2, shuffle=False, seed=0, augment={"flip": 2})


# --------------------------------------------------------------------------- manifest boxes


def test_manifest_names_empty_and_out_of_image_boxes(tmp_path):
    for name, (h, w) in {"a.png": (40, 60), "b.png": (40, 60), "c.png": (40, 60)}.items():
        write_png16(tmp_path / name, np.zeros((h, w), np.float32))
    rows = [
        {"path": "a.png", "label": "fracture", "x1": 10, "y1": 5, "x2": 10, "y2": 20},  # x2 <= x1
        {"path": "a.png", "label": "fracture", "x1": 10, "y1": 5, "x2": 60, "y2": 40},  # on the border: fine
        {"path": "b.png", "label": "fracture", "x1": 10, "y1": 5, "x2": 61, "y2": 20},  # past the right edge
        {"path": "b.png", "label": "fracture", "x1": 10, "y1": 5, "x2": 20, "y2": 40.5},  # past the bottom
        {"path": "b.png", "label": "fracture", "x1": 10, "y1": 9, "x2": 20, "y2": 8},  # y2 <= y1
        {"path": "c.png", "label": "normal"},
    ]
    source = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    with pytest.raises(UserError) as info:
        load_manifest(source, classes=CLASSES)
    message = str(info.value)
    assert "\n" not in message and "4 problem(s)" in message
    assert "row 2: bad box" in message and "row 6: bad box" in message
    assert "row 4: box (10, 5, 61, 20) outside the image (60 x 40 px" in message
    assert "row 5: box (10, 5, 20, 40.5) outside the image" in message
    assert "row 3" not in message
    # without the file check, the pipeline refuses the box when it reads the image's size, in one line
    manifest = load_manifest(_keep_rows(source, [2, 5]), classes=CLASSES, check_files=False)
    with pytest.raises(UserError, match=r"b.png: box \(10, 5, 61, 20\) outside the image \(60 x 40 px") as info:
        detection_targets(manifest, PAD_64)
    assert "\n" not in str(info.value)


def _keep_rows(source, keep):
    table = pd.read_csv(source).iloc[keep]
    out = source.with_name("kept.csv")
    table.to_csv(out, index=False)
    return out


# --------------------------------------------------------------------------- augment-preview


def test_detection_preview_draws_the_moved_boxes_on_every_tile(small_set, tmp_path):
    from tfxray.data.preview import detection_preview_tiles, write_preview_grid

    wide = small_set.images.path[small_set.images.path.str.endswith("wide.png")].iloc[0]
    tiles, kind = detection_preview_tiles(wide, small_set.boxes_for(wide), {"flip": 0.5, "rotation": 180},
                                          PAD_64, n=6, seed=1)
    assert len(tiles) == 6 and kind.startswith("detection: flip 0.5, rotation +-180")
    np.testing.assert_allclose(tiles[0].boxes, detection_targets(small_set, PAD_64)[1][0], atol=1e-5)
    for tile in tiles:
        assert tile.boxes is not None and len(tile.boxes) == 2
        for box in tile.boxes:  # every drawn box holds bright pixels, to about a pixel
            x1, y1, x2, y2 = box
            inside = tile.image[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2))]
            assert (inside > 0.5).mean() > 0.2
        assert (tile.image > 0.5).sum() > 0
    out = write_preview_grid(tiles, "test", tmp_path / "grid.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_augment_preview_command_with_boxes(small_set, tmp_path):
    from tfxray.cli.main import cli

    wide = small_set.images.path[small_set.images.path.str.endswith("wide.png")].iloc[0]
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(cli, ["augment-preview", wide, "--recipe", "wrist", "--data", str(small_set.source),
                                      "--out", str(out), "--n", "4", "--set", "data.input_size=48"])
    assert result.exit_code == 0, result.output
    assert "boxes drawn only on the tiles left in place or only flipped" in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = CliRunner().invoke(cli, ["augment-preview", wide, "--recipe", "wrist", "--data", str(tmp_path / "x.csv"),
                                      "--out", str(out)])
    assert result.exit_code == 2
    stray = tmp_path / "stray.png"
    write_png16(stray, np.zeros((8, 8), np.float32))
    result = CliRunner().invoke(cli, ["augment-preview", str(stray), "--recipe", "wrist", "--data",
                                      str(small_set.source), "--out", str(out)])
    assert result.exit_code == 2 and "not in the manifest" in result.output
    assert result.output.strip().count("\n") == 0


def test_augment_preview_with_a_detection_recipe(small_set, tmp_path):
    from tfxray.cli.main import cli
    from tfxray.config import builtin_recipe_names

    if "femoral-neck" not in builtin_recipe_names():
        pytest.skip("the femoral-neck recipe is not there yet")
    wide = small_set.images.path[small_set.images.path.str.endswith("wide.png")].iloc[0]
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(cli, ["augment-preview", wide, "--recipe", "femoral-neck", "--data",
                                      str(small_set.source), "--out", str(out), "--n", "4",
                                      "--set", "data.input_size=64"])
    assert result.exit_code == 0, result.output
    assert "(detection: flip 0.5, rotation +-180)" in result.output and out.stat().st_size > 1000
    result = CliRunner().invoke(cli, ["augment-preview", wide, "--recipe", "femoral-neck", "--out", str(out),
                                      "--n", "2", "--set", "data.input_size=64"])
    assert result.exit_code == 0 and "no boxes given (--data MANIFEST draws them)" in result.output, result.output
    result = CliRunner().invoke(cli, ["augment-preview", wide, "--recipe", "femoral-neck", "--out", str(out),
                                      "--set", "augment.boxes.enabled=false"])
    assert result.exit_code == 2 and "no augmentation to preview" in result.output


@pytest.mark.parametrize("options", [dict(cache=False), dict(cache_budget_bytes=1), dict(repeat=True)])
def test_every_cache_plan_gives_the_same_elements(small_set, tmp_path, options):
    if "cache_budget_bytes" in options:
        options["cache_dir"] = tmp_path / "cache"  # over the budget: a file cache
    reference = detection_dataset(small_set, PAD_64, batch_size=3, shuffle=False, seed=0)
    images, targets = next(iter(reference))
    ds = detection_dataset(small_set, PAD_64, batch_size=3, shuffle=True, seed=1, **options)
    for epoch in range(2):
        got, got_targets = next(iter(ds))
        order = [int(np.flatnonzero((targets["boxes"].numpy() == b).all(axis=(1, 2)))[0])
                 for b in got_targets["boxes"].numpy()]
        assert sorted(order) == [0, 1, 2]
        np.testing.assert_array_equal(got.numpy(), images.numpy()[order])
        np.testing.assert_array_equal(got_targets["classes"].numpy(), targets["classes"].numpy()[order])
    if "cache_dir" in options:
        assert any((tmp_path / "cache").iterdir())
