"""tfxray inspect: a preflight audit of a folder of radiographs."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("inspect")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with path, split (or fold) and patient_id columns: flags patients in more than one split.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default="audit.csv", show_default=True,
              help="Where to write the table (one row per file).")
@click.option("--strict", is_flag=True, help="Exit 1 when files are undecodable, SOP UIDs repeat or patients leak.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def inspect_command(folder, manifest, out, strict, no_progress):
    """Audit every file under FOLDER before training or scoring on it.

    Reads each file as training will (DICOM in any transfer syntax, PNG, JPEG, TIFF; files are
    recognised by content, not suffix) and writes one row per file: kind, modality, photometric
    interpretation, bits stored, transfer syntax, size, whether it decodes and why not, and
    duplicate SOP instance UIDs. With --manifest, also the patients whose images sit in more than
    one split. Prints a summary; patient names are never read out.

    \b
    Example:
      tfxray inspect /pacs/export --out audit.csv
      tfxray inspect data/wrist --manifest data/wrist/manifest.csv --strict
    """
    from tfxray.images.audit import audit_folder, audit_problems, summarize_audit, write_audit

    table = audit_folder(folder, manifest, progress=not no_progress)
    write_audit(table, out)
    for line in summarize_audit(table):
        click.echo(line)
    click.echo(f"table: {out}")
    if strict and audit_problems(table):
        sys.exit(1)
