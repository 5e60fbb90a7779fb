"""tfxray show-batch: a grid of training images with their labels, as a recipe's pipeline feeds them."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("show-batch")
@click.argument("recipe_name", metavar="RECIPE")
@click.option("--data", type=click.Path(exists=True, path_type=Path), required=True,
              help="CSV manifest or class-per-folder tree, as for tfxray train.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default="batch.png", show_default=True,
              help="PNG file to write.")
@click.option("--n", "n", default=16, show_default=True, type=click.IntRange(1, 256), help="Number of images.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same images and draws.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any recipe field, e.g. --set data.input_size=224.")
def show_batch(recipe_name: str, data: Path, out: Path, n: int, seed: int, sets):
    """Write a grid of N training images as RECIPE would feed them: the patient-grouped training
    split, the recipe's input (resize, or a CT slice's region and neighbours), a random offline
    variant when the recipe amplifies, then its online augmentation; labels in the captions and
    the manifest's boxes drawn where the image is not moved under them.

    \b
    Examples:
      tfxray synth data/wrist --n 60
      tfxray show-batch demo --data data/wrist/manifest.csv --out batch.png
      tfxray show-batch wrist --data data/wrist/manifest.csv --n 9 --seed 1
    """
    from tfxray.config import load_recipe, parse_override
    from tfxray.data.manifest import load_manifest
    from tfxray.data.preview import training_batch, write_preview_grid
    from tfxray.errors import UserError

    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: a .png file name expected")
    recipe = load_recipe(recipe_name, [parse_override(s) for s in sets])
    manifest = load_manifest(data, classes=recipe.classes)
    tiles, note = training_batch(manifest, recipe.data, recipe.augment, n, seed)
    title = f"{recipe.name}: {len(tiles)} training images, {recipe.data.input_size} px, seed {seed}\n{note}"
    write_preview_grid(tiles, title, out)
    click.echo(f"wrote {len(tiles)} image(s) to {out} ({note})")
