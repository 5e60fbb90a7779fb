"""tfxray inspect: a preflight audit of a folder of radiographs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import quiet_image_readers


@click.command("inspect")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with path, split (or fold) and patient_id columns: flags patients in more than one split.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default="audit.csv", show_default=True,
              help="Where to write the table (one row per file).")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A run directory: flag the files outside what its model was trained on (column outside_profile).")
@click.option("--strict", is_flag=True, help="Exit 1 when files are undecodable, SOP UIDs repeat or patients leak"
                                             " (or, with --run, lie outside the model's training profile).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def inspect_command(folder, manifest, out, run_dir, strict, no_progress):
    """Audit every file under FOLDER before training or scoring on it.

    Reads each file as training will (DICOM in any transfer syntax, PNG, JPEG, TIFF; files are
    recognised by content, not suffix) and writes one row per file: kind, modality, photometric
    interpretation, bits stored, transfer syntax, size, whether it decodes and why not, and
    duplicate SOP instance UIDs. With --manifest, also the patients whose images sit in more than
    one split. With --run, also why a file lies outside what that run's model was trained on (the
    reason score would skip it with, e.g. "modality CT, model trained on DX/CR"). Prints a
    summary; patient names are never read out.

    \b
    Example:
      tfxray inspect /pacs/export --out audit.csv
      tfxray inspect data/wrist --manifest data/wrist/manifest.csv --strict
      tfxray inspect /pacs/export --run runs/wrist
    """
    from tfxray.images.audit import audit_folder, audit_problems, summarize_audit, write_audit
    from tfxray.io import check_writable

    check_writable(out, "--out")  # before the audit reads every file, not after
    quiet_image_readers()
    check = None
    if run_dir is not None:
        from tfxray.data.profile import profile_check
        from tfxray.models.bundle import load_meta

        meta = load_meta(run_dir)
        profile = profile_check(meta.trained_on, meta.input_size)
        if profile is None:
            click.echo(f"{run_dir}: saved without a training profile (trained before tfxray recorded one): no files"
                       " are checked against it")
        else:
            check = profile.reason
            click.echo(f"{run_dir}: model trained on {profile.describe()}")
    table = audit_folder(folder, manifest, progress=not no_progress, profile=check)
    write_audit(table, out)
    for line in summarize_audit(table):
        click.echo(line)
    click.echo(f"table: {out}")
    if strict and audit_problems(table):
        sys.exit(1)
