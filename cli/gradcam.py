"""tfxray gradcam: heatmap panels showing where the network looks."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("gradcam")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("images", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="gradcam", show_default=True)
@click.option("--method", type=click.Choice(["gradcam", "gradcam++"]), default="gradcam", show_default=True)
@click.option("--layer", help="Target layer (default: the backbone's last convolutional block).")
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option("--boxes", "boxes_manifest", type=click.Path(path_type=Path),
              help="Manifest CSV with reference boxes (x1, y1, x2, y2 in image pixels): run the localization check.")
def gradcam(run_dir, images, out, method, layer, batch_size, boxes_manifest):
    """Write a PNG panel per image: the radiograph beside its Grad-CAM overlay, with score and call.

    IMAGES are files or folders (searched recursively for image files). Panels are named after
    each image's path below the folder all IMAGES share, so same-named files of different
    folders keep their own panel: a/b/IM0001 -> a__b__IM0001_gradcam.png.

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
    import os

    from tqdm import tqdm

    from tfxray.errors import UserError
    import numpy as np
    import pandas as pd

    from tfxray.explain.gradcam import explain_paths, heatmap_boxes, localization, panel_name, save_panel
    from tfxray.io import atomic_write_json, atomic_write_text
    from tfxray.images import sniff
    from tfxray.models.bundle import load_bundle

    if batch_size < 1:
        raise UserError(f"--batch-size: must be at least 1, got {batch_size}")
    boxes_by_path: dict[str, np.ndarray] = {}
    if boxes_manifest is not None:
        from tfxray.data.manifest import load_manifest

        manifest = load_manifest(boxes_manifest)
        if manifest.boxes.empty:
            raise UserError(f"{boxes_manifest}: no boxes (columns x1, y1, x2, y2) in the manifest")
        for path, group in manifest.boxes.groupby("path", sort=False):
            boxes_by_path[os.path.realpath(path)] = group[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
        if not images:
            images = tuple(Path(p) for p in dict.fromkeys(manifest.boxes["path"]))
    if not images:
        raise UserError("IMAGES: give image files or folders, or --boxes with a manifest")
    paths: dict[str, None] = {}  # ordered, each file once
    for item in images:
        candidates = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
        for p in candidates:
            try:
                kind = sniff(p)
            except OSError:
                continue
            if kind in ("dicom", "png", "jpeg", "tiff"):
                paths[os.path.abspath(p)] = None
    if not paths:
        raise UserError("IMAGES: no image files found")
    paths = list(paths)
    # Names relative to the deepest folder every image lies in: unique, and short.
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    bundle = load_bundle(run_dir)
    written, heatmaps, boxes = [], [], []
    no_box = np.zeros((0, 4), np.float32)
    for start in tqdm(range(0, len(paths), batch_size), desc="grad-cam", unit="batch"):
        chunk = paths[start:start + batch_size]
        for path, heatmap in zip(chunk, explain_paths(bundle, chunk, layer=layer, method=method, batch_size=batch_size)):
            relative = os.path.relpath(path, root).replace(os.sep, "/")
            heatmap.path = relative  # the caption shows the same path the name is made of
            image_boxes = boxes_by_path.get(os.path.realpath(path), no_box)
            drawn = heatmap_boxes(bundle, heatmap, image_boxes) if len(image_boxes) else None
            written.append(save_panel(heatmap, out / panel_name(relative, method=method), box=drawn))
            if boxes_by_path:
                heatmap.image = heatmap.image[:0]  # keep only what the check needs: memory stays small
                heatmaps.append(heatmap)
                boxes.append(image_boxes)
    click.echo(f"wrote {len(written)} panel(s) to {out}")
    if boxes_by_path:
        summary, rows = localization(bundle, heatmaps, boxes)
        if not summary["n"]:
            click.echo("localization: none of the images has a box in the manifest")
            return
        atomic_write_json(out / "pointing_game.json", {"method": method, "layer": layer or "default", **summary})
        atomic_write_text(out / "pointing_game.csv", pd.DataFrame(rows).to_csv(index=False))
        click.echo(f"localization ({summary['n']} boxed image(s)): pointing game {summary['hit_rate']:.1%} "
                   f"(chance {summary['chance']:.1%}), heatmap mass inside the boxes {summary['mass_in_box']:.1%}; "
                   f"{out / 'pointing_game.json'}")
