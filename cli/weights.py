"""tfxray weights: backbone weights for offline machines."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("weights")
def weights():
    """ImageNet weights on offline machines: list, locate, import, convert.

    \b
    Example:
      tfxray weights list
      tfxray weights import resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5
      tfxray weights convert resnext50_32x4d resnext50_32x4d.npz --out resnext50_32x4d.weights.h5
    """


@weights.command("list")
@click.option("--urls", is_flag=True, help="Also print where to download each missing file.")
def list_weights(urls: bool):
    """Each backbone's ImageNet file and whether Keras' cache has it (hash checked).

    \b
    status: present | missing | corrupt (hash differs; Keras would download it again) |
            convert (torchvision weights: tfxray weights convert) | none (no ImageNet weights)
    \b
    Example:
      tfxray weights list --urls
    """
    from tfxray.models.weights import imagenet_files, keras_cache_dir

    click.echo(f"Keras looks in {keras_cache_dir()}")
    for row in imagenet_files():
        click.echo(f"{row['backbone']:<20}{row['status']:<9}{row['file'] or '-'}")
        if urls and row["url"] and row["status"] != "present":
            click.echo(f"{'':<29}{row['url']}")


@weights.command("path")
@click.argument("backbone")
def path(backbone: str):
    """Where Keras looks for BACKBONE's ImageNet file.

    \b
    Example:
      tfxray weights path inception_v3
    """
    from tfxray.models.weights import imagenet_file_path

    click.echo(imagenet_file_path(backbone))


@weights.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_file(file: Path):
    """Copy an ImageNet file obtained elsewhere into Keras' cache, after checking its hash.

    FILE keeps the name Keras gave it ('tfxray weights list' shows them); its hash is
    checked against the one Keras declares, or, where Keras declares none, that it is HDF5.

    \b
    Example:
      tfxray weights import ~/Downloads/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5
    """
    from tfxray.models.weights import import_imagenet_file

    click.echo(f"imported: {import_imagenet_file(file)}")


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
