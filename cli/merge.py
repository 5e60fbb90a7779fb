"""tfxray merge: the shards of one ``tfxray score --shard I/N`` job back into one table."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("merge")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("parts", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The merged scores CSV (roll-ups and, for a detector, boxes beside it).")
@click.option("--aggregate", type=click.Choice(["max", "mean", "noisy-or"]), default="max", show_default=True,
              help="How per-study and per-patient roll-ups combine file scores.")
def merge(run_dir, parts, out, aggregate):
    """Merge the score CSVs of RUN_DIR's shards (PARTS) into --out, with roll-ups over the whole export.

    A study's files are spread over the shards (each file's shard comes from a hash of its path),
    so each part's own roll-ups are partial; the merged roll-ups use RUN_DIR's classes and
    threshold. Refused: parts with different columns, a file in two parts, a torn row, a part a
    score run is still writing. A detector's boxes CSV parts are merged beside --out.

    \b
    Example:
      tfxray merge runs/wrist scores/part-*.csv --out scores.csv
    """
    from tfxray.models.bundle import load_meta
    from tfxray.scoring.merge import merge_shards

    meta = load_meta(run_dir)
    summary = merge_shards(list(parts), out, classes=list(meta.classes), threshold=float(meta.threshold),
                           aggregate=aggregate)
    for line in summary.lines():
        click.echo(line)
