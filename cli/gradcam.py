"""tfxray gradcam: heatmap panels showing where the network looks."""

from __future__ import annotations

from pathlib import Path

import click

from tfxray.explain import METHODS


@click.command("gradcam")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("images", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="gradcam", show_default=True)
@click.option("--method", type=click.Choice(METHODS), default="gradcam", show_default=True)
@click.option("--layer", help="Target layer (default: the backbone's last convolutional block).")
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option("--boxes", "boxes_manifest", type=click.Path(path_type=Path),
              help="Manifest CSV with reference boxes (x1, y1, x2, y2 in image pixels): run the localization check.")
@click.option("--allow-modality", is_flag=True,
              help="Also explain images outside what the model was trained on (by default left out with the reason).")
def gradcam(run_dir, images, out, method, layer, batch_size, boxes_manifest, allow_modality):
    """Write a PNG panel per image: the radiograph beside its Grad-CAM overlay, with score and call.

    IMAGES are files or folders (searched recursively for image files). Panels are named after
    each image's path below the folder all IMAGES share, so same-named files of different
    folders keep their own panel: a/b/IM0001 -> a__b__IM0001_gradcam.png.

    Files that hold no image (or cannot be read) are left out and counted, as are images outside
    what the model was trained on (e.g. "modality CT, model trained on DX/CR"; --allow-modality
    explains them anyway). A model trained on CT regions of interest (vertebral-ct) explains the
    same region and neighbour slices, and needs --boxes with its manifest.

    With --boxes, the boxes of the manifest are drawn on the panels and the localization check
    is reported: the pointing-game hit rate (share of boxed images whose heatmap maximum falls
    inside a box) against chance (the boxes' share of the image), and the mean heatmap mass
    inside the boxes; written to pointing_game.json and pointing_game.csv in --out. Without
    IMAGES, the manifest's boxed images are explained.

    \b
    Examples:
      tfxray gradcam runs/wrist data/images/P0001 --out gradcam --method gradcam++
      tfxray gradcam runs/wrist --boxes data/test.csv --out gradcam
    """
    from tfxray.data.manifest import load_manifest
    from tfxray.errors import UserError
    from tfxray.explain.panels import write_panels
    from tfxray.io import check_writable
    from tfxray.models.bundle import load_bundle

    check_writable(out, "--out", folder=True)  # before the model loads and the images are read
    manifest = load_manifest(boxes_manifest) if boxes_manifest is not None else None
    run = write_panels(load_bundle(run_dir), images, out, method=method, layer=layer, batch_size=batch_size,
                       boxes=manifest, check_profile=not allow_modality)
    if run.failures:
        path, reason = run.failures[0]
        more = f" (and {len(run.failures) - 1} more)" if len(run.failures) > 1 else ""
        click.echo(f"left out {len(run.failures)} file(s) that hold no image, cannot be read or lie outside the"
                   f" model's training profile: {path}: {reason}{more}")
    if not run.panels:
        raise UserError("IMAGES: no image files found")
    click.echo(f"wrote {len(run.panels)} panel(s) to {out}")
    summary = run.localization
    if summary is None:
        return
    if not summary["n"]:
        click.echo("localization: none of the images has a box in the manifest")
        return
    click.echo(f"localization ({summary['n']} boxed image(s)): pointing game {summary['hit_rate']:.1%} "
               f"(chance {summary['chance']:.1%}), heatmap mass inside the boxes {summary['mass_in_box']:.1%}; "
               f"{run.files['pointing_game.json']}")
