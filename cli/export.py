"""tfxray export: the run's model as a SavedModel (TF Serving) or a TFLite file."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["savedmodel", "tflite"]), default="savedmodel", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="A folder for savedmodel, a file for tflite (its classes and threshold go to <out>.json).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
def export(run_dir, fmt, out, overwrite):
    """Export RUN_DIR's model for serving.

    Input: decoded pixels, float32 in [0, 1], shape [batch, size, size, channels] (the
    backbone's normalization is inside the model). Output: ``scores``. The SavedModel's
    signature is ``serving_default`` (input ``pixels``), ready for TF Serving; classes,
    threshold and input size go to assets/tfxray.json.

    \b
    Example:
      tfxray export runs/wrist --format savedmodel --out serving/wrist/1
      tfxray export runs/wrist --format tflite --out wrist.tflite
    """
    from tfxray.scoring.export import export_model

    path = export_model(run_dir, out, fmt, overwrite=overwrite)
    click.echo(f"wrote {fmt}: {path}")
