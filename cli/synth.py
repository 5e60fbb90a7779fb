"""tfxray synth: synthetic radiographs (phantoms) with a manifest."""

from __future__ import annotations

from pathlib import Path

import click

from tfxray.data import SYNTH_TASKS


@click.command("synth")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--task", type=click.Choice(list(SYNTH_TASKS)), default="wrist", show_default=True,
              help="Kind of phantom: " + "; ".join(f"{name}: {text}" for name, text in SYNTH_TASKS.items()) + ".")
@click.option("--n", "n", default=400, show_default=True, type=int, help="Number of images.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same images.")
@click.option("--format", "fmt", type=click.Choice(["png", "dicom"]), default="png", show_default=True,
              help="16-bit PNG, or DICOM with 12-bit values, rescale, window and some MONOCHROME1.")
@click.option("--size", default=256, show_default=True, type=int, help="Image side in pixels.")
@click.option("--difficulty", "difficulty", metavar="MIX",
              help="Wrist only: the difficulty mix, recorded per image in the manifest's difficulty column. "
                   "A name: easy (clear fractures, clean images), default (about 0.90-0.98 AUC for the demo's "
                   "model), hard; or grade weights displaced:W,undisplaced:W,subtle:W (relative; a grade left "
                   "out weighs 0) and image conditions overlap:P (share of images with overlapping structures "
                   "or mimics: superimposed bones, skin folds, nutrient canals), exposure:E (gain and contrast "
                   "spread, 0-0.5), noise:N (the noisiest image's noise, in multiples of the cleanest's, 1-10); "
                   "or a name then changes, e.g. hard,overlap:0.  [default: default]")
def synth(out: Path, task: str, n: int, seed: int, fmt: str, size: int, difficulty: str | None):
    """Write synthetic radiographs and OUT/manifest.csv (path, label, patient_id, study_id, box).

    \b
    Examples:
      tfxray synth data/wrist --task wrist --n 400 --seed 0 --format dicom
      tfxray synth data/wrist-hard --difficulty hard
      tfxray synth data/wrist-mix --difficulty displaced:0.3,undisplaced:0.4,subtle:0.3,overlap:0.5
      tfxray synth data/spine --task spine --n 300
      tfxray synth data/ct --task ct --n 60 --size 128
      tfxray synth data/pelvis --task pelvis --n 200      # femoral-neck fractures, boxes
      tfxray synth data/skeleton --task skeleton --n 400  # a generic multi-site set with boxes
    """
    from tfxray.data.synth import synthesize

    manifest = synthesize(out, task=task, n=n, seed=seed, fmt=fmt, size=size, difficulty=difficulty)
    images = manifest.drop_duplicates("path")  # a manifest row is a box: an image with two fractures has two
    counts = images["label"].value_counts().to_dict()
    boxes = int(manifest["x1"].notna().sum()) if "x1" in manifest.columns else 0
    click.echo(
        f"wrote {len(images)} images of {images['patient_id'].nunique()} patients "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))})"
        + (f", {boxes} boxes," if boxes else "") + f" and {out / 'manifest.csv'}"
    )
    if task == "wrist":  # the fracture grades drawn from the mix
        grades = images["difficulty"].value_counts()
        click.echo("fracture grades: " + ", ".join(f"{g}: {grades.get(g, 0)}"
                                                   for g in ("displaced", "undisplaced", "subtle")))
