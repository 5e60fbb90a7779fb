"""tfxray augment-preview: a grid of the augmentations a recipe would produce for one image."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("augment-preview")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--recipe", "recipe_name", required=True, help="Built-in recipe name or YAML file.")
@click.option("--data", "data", type=click.Path(exists=True, path_type=Path), default=None,
              help="Manifest (CSV) listing IMAGE with its boxes: the boxes are drawn on the tiles.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default="augment-preview.png",
              show_default=True, help="PNG file to write.")
@click.option("--n", "n", default=16, show_default=True, type=click.IntRange(1, 256), help="Number of tiles.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same tiles.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Any recipe field, e.g. --set augment.online.rotation=180.")
def augment_preview(image: Path, recipe_name: str, data: Path | None, out: Path, n: int, seed: int, sets):
    """Write a grid of the augmented versions of IMAGE that --recipe would train on.

    Offline amplification (augment.offline.factor > 1) shows the image's variants as training
    writes them (the first tile is the image itself); otherwise the online layers' draws. A
    detection recipe shows its flips and rotations (the first tile is the input itself), with
    IMAGE's boxes from --data moved with the image on every tile.

    \b
    Example:
      tfxray synth /tmp/x --n 4
      tfxray augment-preview /tmp/x/images/P0001/P0001-S1_0.png --recipe wrist --out grid.png --n 16
      tfxray synth /tmp/p --task pelvis --n 40
      tfxray augment-preview IMAGE --recipe femoral-neck --data /tmp/p/manifest.csv --out grid.png
    """
    from tfxray.config import load_recipe, parse_override
    from tfxray.data.geometry import ImageGeometry
    from tfxray.data.detection import box_augment
    from tfxray.data.preview import detection_preview_tiles, image_boxes, preview_tiles, write_preview_grid
    from tfxray.errors import UserError

    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: a .png file name expected")
    recipe = load_recipe(recipe_name, [parse_override(s) for s in sets])
    geometry = ImageGeometry(recipe.data.input_size, recipe.data.channels, recipe.data.resize)
    boxes = image_boxes(data, image) if data is not None else None
    if recipe.is_detection:
        tiles, kind = detection_preview_tiles(str(image), boxes, box_augment(recipe.augment.boxes), geometry, n, seed)
    else:
        tiles, kind = preview_tiles(str(image), recipe.augment, geometry, n, seed, boxes=boxes)
    title = f"{recipe.name}: {kind}, seed {seed}, {geometry.size} px - {image.name}"
    write_preview_grid(tiles, title, out)
    click.echo(f"wrote {len(tiles)} tile(s) ({kind}) to {out}")
