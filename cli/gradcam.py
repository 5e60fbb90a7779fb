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

    IMAGES are files or folders (searched recursively for image files).

    \b
    Example:
      tfxray gradcam runs/wrist data/images/P0001 --out gradcam --method gradcam++
    """
    from tqdm import tqdm

    from tfxray.errors import UserError
    from tfxray.explain.gradcam import explain_paths, save_panel
    from tfxray.images import sniff
    from tfxray.models.bundle import load_bundle

    paths = []
    for item in images:
        candidates = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
        paths += [str(p) for p in candidates if sniff(p) in ("dicom", "png", "jpeg", "tiff")]
    if not paths:
        raise UserError("IMAGES: no image files found")
    bundle = load_bundle(run_dir)
    written = []
    for start in tqdm(range(0, len(paths), batch_size), desc="grad-cam", unit="batch"):
        for heatmap in explain_paths(bundle, paths[start:start + batch_size], layer=layer, method=method,
                                     batch_size=batch_size):
            written.append(save_panel(heatmap, out / f"{Path(heatmap.path).stem}_{method}.png"))
    click.echo(f"wrote {len(written)} panel(s) to {out}")
