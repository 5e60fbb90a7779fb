"""tfxray evaluate: ROC/AUC with CIs, thresholds, per-patient results and DeLong tests."""

from __future__ import annotations

from pathlib import Path

import click

from tfxray.evaluation.choices import AGGREGATIONS, CI_METHODS, DEFAULT_AGGREGATION


@click.command("evaluate")
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--scores", "scores_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with a label column and one or more score columns.")
@click.option("--data", "manifest", type=click.Path(exists=True, path_type=Path),
              help="With RUN_DIR: the manifest to score with the run's model.")
@click.option("--split", type=click.Choice(["test", "val"]),
              help="With RUN_DIR: evaluate on the run's own held-out rows (RUN_DIR/test.csv or RUN_DIR/val.csv,"
                   " written at training), instead of --data.")
@click.option("--allow-modality", is_flag=True,
              help="With RUN_DIR: also score images outside what the model was trained on (by default they are left"
                   " out of the analysis, counted and listed in excluded.csv).")
@click.option("--worst", type=click.IntRange(min=1), metavar="N",
              help="With RUN_DIR: Grad-CAM panels of the N highest-scoring negatives and the N lowest-scoring"
                   " positives into OUT/worst/, listed in report.md.")
@click.option("--roc", "roc_only", is_flag=True,
              help="Draw the ROC figures only (roc_*.png, folds_roc_*.png); without it every figure is drawn"
                   " (ROC, score histograms, confusion matrices, reliability). The report's numbers are the same.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for report.json, report.md and the PNGs.")
@click.option("--label-column", help="Column holding the true class [--scores: required; RUN_DIR: label].")
@click.option("--positive", help="Value of the label column that is positive (RUN_DIR: the model's).")
@click.option("--score-column", "score_columns", multiple=True,
              help="Score column; repeat to compare models on the same cases (DeLong test).")
@click.option("--threshold", help="0.5 | youden | sensitivity:0.95 | specificity:0.9 | model"
                                  "  [--scores: youden; RUN_DIR: model]")
@click.option("--patient-column", help="Also report per patient (or study): rows grouped by this column"
                                      " [RUN_DIR: patient_id when the run's recipe says evaluate.patient_level: true].")
@click.option("--aggregate", type=click.Choice(AGGREGATIONS),
              help="How a patient's image scores combine  [--scores: max; RUN_DIR: the recipe's evaluate.aggregate].")
@click.option("--ci", type=click.Choice(CI_METHODS), default="delong", show_default=True,
              help="AUC confidence interval.")
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Bootstrap resamples (AUC CI with --ci bootstrap, and the ROC band).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--readers", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of reader operating points (name, sensitivity, specificity[, level]) drawn on the ROC.")
@click.option("--fold-column", help="Cross-validation fold of each row: per-fold results, mean and SD.")
def evaluate(run_dirs, scores_csv, manifest, split, allow_modality, worst, roc_only, out, label_column, positive,
             score_columns, threshold, patient_column, aggregate, ci, n_bootstrap, seed, readers, fold_column):
    """Evaluate scores against labels: ROC, AUC with 95% CI (DeLong or bootstrap), the operating
    point at a threshold with exact CIs, per-patient results and DeLong tests between models.

    Either a scores table (--scores), or RUN_DIR with --data to score a manifest with the run's
    model first (its saved threshold is then the default), or with --split test|val to score the
    run's own held-out rows. Several RUN_DIRs score the same cases and are compared directly
    (paired DeLong test; score columns named after the runs, each at its own saved threshold);
    they must share their classes. Conventions follow pROC: controls are the negative class, and
    the curve's direction is chosen as direction="auto" (reported when lower scores mean positive).

    With RUN_DIR, images outside what the model was trained on (tfxray.json's trained_on: another
    modality, colour images for a gray model, thumbnails) are left out of the analysis, counted,
    and listed in OUT/excluded.csv; --allow-modality keeps them. A file that cannot be read stops
    the evaluation. --positive must be the model's positive class (or left out).

    With RUN_DIR, the run's recipe decides what the command line leaves open: evaluate.patient_level
    (per patient, by the manifest's patient_id) and evaluate.aggregate. Precedence: command-line
    option > TFXRAY_EVALUATE_* environment variable > recipe > default.

    \b
    Examples:
      tfxray evaluate --scores scores.csv --label-column outcome --positive Poor \\
          --score-column s100b --score-column wfns --out eval/ --threshold youden
      tfxray evaluate runs/wrist --data test_manifest.csv --out eval/ --patient-column patient_id
      tfxray evaluate runs/wrist --split test --out eval/ --worst 8
      tfxray evaluate runs/wrist-a runs/wrist-b --split test --out compare/
      tfxray evaluate runs/ct --data ct_manifest.csv --roc --out eval/    # ROC figures only
    """
    from tfxray.evaluation.report import evaluate_table, format_summary, write_report
    from tfxray.evaluation.table import read_readers_csv, read_scores_csv

    if bool(run_dirs) == (scores_csv is not None):
        raise click.UsageError("give either --scores FILE.csv, or RUN_DIR with --data MANIFEST or --split test|val")
    evaluation = None
    if scores_csv is not None:
        for given, name in ((manifest, "--data"), (split, "--split"), (worst, "--worst"),
                            (allow_modality or None, "--allow-modality")):
            if given is not None:
                raise click.UsageError(f"{name} goes with RUN_DIR; with --scores the table already holds the scores")
        if not label_column:
            raise click.UsageError("--scores needs --label-column")
        if not score_columns:
            raise click.UsageError("--scores needs at least one --score-column")
        threshold = threshold or "youden"
        if threshold.strip().lower() == "model":
            raise click.UsageError("--threshold model needs RUN_DIR (the model's saved threshold); with --scores give"
                                   " a number or a rule")
        table = read_scores_csv(scores_csv)
        arguments = {"label_column": label_column, "positive": positive, "score_columns": list(score_columns),
                     "threshold": threshold, "patient_column": patient_column,
                     "aggregate": aggregate or DEFAULT_AGGREGATION}
    else:
        if (manifest is None) == (split is None):
            raise click.UsageError("RUN_DIR needs the images to score: --data MANIFEST or --split test|val (not both)")
        if score_columns:
            raise click.UsageError("--score-column goes with --scores; RUN_DIR's model gives the scores")
        from tfxray.io import atomic_write_text
        from tfxray.scoring.predict import evaluate_runs

        evaluation = evaluate_runs(list(run_dirs), manifest, split=split, label_column=label_column,
                                   positive=positive, threshold=threshold, patient_column=patient_column,
                                   aggregate=aggregate, allow_modality=allow_modality)
        table, arguments = evaluation.table, evaluation.arguments
        if worst and arguments.get("classes") is not None:
            raise click.UsageError("--worst needs a two-class model (highest-scoring negatives, lowest-scoring"
                                   " positives)")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "scores.csv", table.to_csv(index=False))
        for note in evaluation.notes:
            click.echo(note)
        if not evaluation.excluded.empty:
            atomic_write_text(out / "excluded.csv", evaluation.excluded.to_csv(index=False))
            click.echo(evaluation.excluded_line(str(out / "excluded.csv")))

    reader_table = read_readers_csv(readers) if readers is not None else None
    report = evaluate_table(table, **arguments, ci=ci, n_bootstrap=n_bootstrap, seed=seed, fold_column=fold_column,
                            readers=reader_table)
    if evaluation is not None:
        if not evaluation.excluded.empty:
            report["excluded"] = evaluation.excluded_summary()
        if worst:
            from tfxray.scoring.predict import worst_gallery

            report["worst"] = worst_gallery(evaluation, out, worst)
    paths = write_report(report, table, out, roc_only=roc_only)
    click.echo(format_summary(report))
    if report.get("worst"):
        panels = sum(1 for groups in report["worst"]["models"].values() for cases in groups.values()
                     for case in cases if case.get("panel"))
        click.echo(f"worst cases: {panels} Grad-CAM panel(s) in {out / report['worst']['folder']}")
    figures = [p for p in paths.values() if p.suffix == ".png"]
    click.echo(f"report: {paths['report.md']} and {paths['report.json']}; {len(figures)} figures in {out}")
