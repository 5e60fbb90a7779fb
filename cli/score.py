"""tfxray score: score every image file of a folder into a CSV, resumably."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tfxray.evaluation.choices import AGGREGATIONS, DEFAULT_AGGREGATION
from tfxray.explain import METHODS

from .common import quiet_image_readers


@click.command("score")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default="scores.csv", show_default=True)
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue an interrupted run: skip the files already in --out.")
@click.option("--shard", metavar="I/N", help="Score only the I-th of N deterministic parts of the folder; give each"
                                            " shard its own --out (one run writes a CSV at a time).")
@click.option("--hash-ids", is_flag=True, help="Write salted hashes of patient and study IDs instead of the IDs.")
@click.option("--salt", envvar="TFXRAY_ID_SALT", help="Salt for --hash-ids (or TFXRAY_ID_SALT).")
@click.option("--aggregate", type=click.Choice(AGGREGATIONS), default=DEFAULT_AGGREGATION, show_default=True,
              help="How per-study and per-patient roll-ups combine file scores.")
@click.option("--allow-errors", is_flag=True, help="Exit 0 even when some files could not be scored.")
@click.option("--gradcam", "gradcam_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write a Grad-CAM panel per scored image into this folder.")
@click.option("--gradcam-only-positives", is_flag=True, help="Panels only for images called positive.")
@click.option("--gradcam-method", type=click.Choice(METHODS), default="gradcam", show_default=True)
@click.option("--allow-modality", is_flag=True,
              help="Also score images outside what the model was trained on (other modalities, colour images,"
                   " thumbnails); by default they are skipped with the reason.")
@click.option("--devices", envvar="TFXRAY_SCORE_DEVICES", metavar="LIST",
              help="Devices to split predictions across, e.g. /gpu:0,/gpu:1 (default: every GPU when there "
                   "are several; or TFXRAY_SCORE_DEVICES).")
@click.option("--overlays", "overlays_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Detectors: a picture of every scored image with its boxes and confidences, into this folder.")
def score(run_dir, folder, out, batch_size, resume, shard, hash_ids, salt, aggregate, allow_errors, gradcam_dir,
          gradcam_only_positives, gradcam_method, devices, allow_modality, overlays_dir):
    """Score every image under FOLDER (DICOM with or without suffix, PNG, JPEG, TIFF) with RUN_DIR's model.

    One row per file (one per frame of a multi-frame file): path, SOP instance UID, patient and
    study IDs, frame, score, call at the model's threshold, status (ok, error or skipped) and
    the reason. Images outside what the model was trained on (tfxray.json's trained_on: another
    modality, a colour image for a gray model, a thumbnail) are skipped with the reason, e.g.
    "modality CT, model trained on DX/CR"; --allow-modality scores them anyway. Roll-ups per
    study and per patient go to <out>_rollup.csv. With --gradcam DIR, a panel per image goes to
    DIR, named after its path (a/b/IM0001 -> a__b__IM0001_gradcam.png).
    A detector's run (task: detection) also writes boxes.csv beside --out: one row per predicted box
    (path, frame, x1, y1, x2, y2, score, class) in the original image's pixels; its image score is the
    highest box confidence (0 without a box), called at the saved cut-off; --overlays DIR draws them.
    Exit code 1 when some files failed (unless --allow-errors).

    One run writes an --out at a time: it holds <out>.lock while it runs, and a second run on the same
    --out is refused (exit 2, naming the first one's pid); shards each write their own --out. The
    output locations are checked writable before the model loads. A disk that fills up stops the run
    in one line (exit 1) with every row before it whole: free space and run again with --resume.

    \b
    Example:
      tfxray score runs/wrist /pacs/export --out scores.csv --hash-ids --salt "$SALT"
      tfxray score runs/wrist /pacs/export --out scores.csv --resume
      tfxray score runs/wrist /pacs/export --out scores.csv --gradcam panels --gradcam-only-positives
      tfxray score runs/femoral-neck /pacs/pelvis --out scores.csv --overlays boxes   # + boxes.csv
    """
    from tfxray.scoring.batch import parse_shard, score_folder

    if gradcam_only_positives and gradcam_dir is None:
        from tfxray.errors import UserError

        raise UserError("--gradcam-only-positives needs --gradcam DIR")
    quiet_image_readers()
    summary = score_folder(run_dir, folder, out, batch_size=batch_size, resume=resume, shard=parse_shard(shard),
                           hash_ids=hash_ids, salt=salt, aggregate=aggregate, gradcam_dir=gradcam_dir,
                           gradcam_only_positives=gradcam_only_positives, gradcam_method=gradcam_method,
                           devices=devices, allow_modality=allow_modality, overlays_dir=overlays_dir)
    for line in summary.lines():
        click.echo(line)
    click.echo(f"scores: {out}")
    if summary.rollups is not None:  # none for more than two classes: the summary says why
        click.echo(f"roll-ups: {summary.rollups}")
    if gradcam_dir is not None:
        click.echo(f"Grad-CAM panels: {gradcam_dir}")
    if summary.detector:
        from tfxray.scoring.batch import box_path

        click.echo(f"boxes: {box_path(out)}" + (f"; overlays: {overlays_dir}" if overlays_dir else ""))
    if summary.errors and not allow_errors:
        sys.exit(1)
