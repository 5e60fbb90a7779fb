"""tfxray gradcam: heatmap panels showing where the network looks."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("gradcam")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="gradcam", show_default=True)
@click.option("--method", type=click.Choice(["gradcam", "gradcam++"]), default="gradcam", show_default=True)
@click.option("--layer", help="Target layer (default: the backbone's last convolutional block).")
@click.option("--batch-size", default=16, show_default=True, type=int)
def gradcam(run_dir, images, out, method, layer, batch_size):
    """Write a PNG panel per image: the radiograph beside its Grad-CAM overlay, with score and call.

    IMAGES are files or folders (searched recursively for image files). Panels are named after
    each image's path below the folder all IMAGES share, so same-named files of different
    folders keep their own panel: a/b/IM0001 -> a__b__IM0001_gradcam.png.

    \b
    Example:
      tfxray gradcam runs/wrist data/images/P0001 --out gradcam --method gradcam++
    """
    import os

    from tqdm import tqdm

    from tfxray.errors import UserError
    from tfxray.explain.gradcam import explain_paths, panel_name, save_panel
    from tfxray.images import sniff
    from tfxray.models.bundle import load_bundle

    if batch_size < 1:
        raise UserError(f"--batch-size: must be at least 1, got {batch_size}")
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
    written = []
    for start in tqdm(range(0, len(paths), batch_size), desc="grad-cam", unit="batch"):
        chunk = paths[start:start + batch_size]
        for path, heatmap in zip(chunk, explain_paths(bundle, chunk, layer=layer, method=method, batch_size=batch_size)):
            relative = os.path.relpath(path, root).replace(os.sep, "/")
            heatmap.path = relative  # the caption shows the same path the name is made of
            written.append(save_panel(heatmap, out / panel_name(relative, method=method)))
    click.echo(f"wrote {len(written)} panel(s) to {out}")
