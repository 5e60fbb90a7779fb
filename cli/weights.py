"""tfxray weights: backbone weights for offline machines."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("weights")
def weights():
    """Convert torchvision ImageNet weights for the ResNeXt backbones.

    \b
    Example:
      tfxray weights convert resnext50_32x4d resnext50_32x4d.npz --out resnext50_32x4d.weights.h5
    """


@weights.command("convert")
@click.argument("backbone")
@click.argument("npz", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="A .weights.h5 file.")
def convert(backbone: str, npz: Path, out: Path):
    """Turn a torchvision state dict saved as .npz into a Keras weights file for BACKBONE.

    \b
    Export one on a machine with PyTorch (tfxray does not need it):
      import numpy as np, torchvision
      sd = torchvision.models.resnext50_32x4d(weights="IMAGENET1K_V1").state_dict()
      np.savez("resnext50_32x4d.npz", **{k: v.numpy() for k, v in sd.items()})
    \b
    Example:
      tfxray weights convert resnext50_32x4d resnext50_32x4d.npz --out resnext50_32x4d.weights.h5
    """
    from tfxray.models.weights import convert_torchvision_state

    path = convert_torchvision_state(backbone, npz, out)
    click.echo(f"wrote {path}; use it with --set model.weights={path}")
