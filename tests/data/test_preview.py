"""show-batch: training images as the recipe's pipeline feeds them, with labels and boxes."""

import numpy as np
from click.testing import CliRunner

from tfxray.cli.main import cli
from tfxray.config import load_recipe
from tfxray.data.geometry import ImageGeometry, boxes_to_input
from tfxray.data.inputs import load_input
from tfxray.data.manifest import load_manifest
from tfxray.data.preview import training_batch
from tfxray.data.splits import assign_splits


def test_a_batch_without_augmentation_is_the_training_inputs_with_their_boxes(wrist_png):
    folder, _ = wrist_png
    recipe = load_recipe("demo", [(["data", "input_size"], 48)])
    manifest = load_manifest(folder / "manifest.csv", classes=recipe.classes)
    tiles, note = training_batch(manifest, recipe.data, recipe.augment, 6, seed=3)
    assert note == "no augmentation" and len(tiles) == 6
    train = set(assign_splits(manifest.images, recipe.data.split, seed=3).query("split == 'train'").path)
    geometry = ImageGeometry(48, recipe.data.channels, recipe.data.resize)
    for tile in tiles:
        label, name = tile.caption.split("\n")[:2]
        path = next(p for p in train if p.endswith("/" + name))  # a training image, never a held-out one
        image, meta = load_input(path, geometry)
        np.testing.assert_allclose(tile.image, image[..., 0], atol=1e-6)
        assert label == manifest.images.set_index("path").loc[path, "label"]
        boxes = manifest.boxes_for(path)
        if len(boxes):
            np.testing.assert_allclose(tile.boxes, boxes_to_input(boxes, meta["rows"], meta["cols"], geometry))
        else:
            assert tile.boxes is None


def test_show_batch_command_draws_amplified_variants(wrist_png, tmp_path):
    folder, _ = wrist_png
    out = tmp_path / "batch.png"
    result = CliRunner().invoke(cli, ["show-batch", "wrist", "--data", str(folder / "manifest.csv"), "--out", str(out),
                                      "--n", "4", "--set", "data.input_size=75"])
    assert result.exit_code == 0, result.output
    assert "offline x8" in result.output and out.stat().st_size > 10_000
