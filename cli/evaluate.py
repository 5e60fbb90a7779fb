"""tfxray evaluate: ROC/AUC with CIs, thresholds, per-patient results and DeLong tests."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("evaluate")
@click.argument("run_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--scores", "scores_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with a label column and one or more score columns.")
@click.option("--data", "manifest", type=click.Path(exists=True, path_type=Path),
              help="With RUN_DIR: the manifest to score with the run's model.")
@click.option("--roc", is_flag=True, help="Also draw the ROC curve (always drawn; accepted for scripts).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for report.json, report.md and the PNGs.")
@click.option("--label-column", help="Column holding the true class [--scores: required; RUN_DIR: label].")
@click.option("--positive", help="Value of the label column that is positive (RUN_DIR: the model's).")
@click.option("--score-column", "score_columns", multiple=True,
              help="Score column; repeat to compare models on the same cases (DeLong test).")
@click.option("--threshold", help="0.5 | youden | sensitivity:0.95 | specificity:0.9 | model"
                                  "  [--scores: youden; RUN_DIR: model]")
@click.option("--patient-column", help="Also report per patient (or study): rows grouped by this column.")
@click.option("--aggregate", type=click.Choice(["max", "mean", "noisy-or"]), default="max", show_default=True,
              help="How a patient's image scores combine.")
@click.option("--ci", type=click.Choice(["delong", "bootstrap"]), default="delong", show_default=True,
              help="AUC confidence interval.")
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Bootstrap resamples (AUC CI with --ci bootstrap, and the ROC band).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--readers", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of reader operating points (name, sensitivity, specificity[, level]) drawn on the ROC.")
@click.option("--fold-column", help="Cross-validation fold of each row: per-fold results, mean and SD.")
def evaluate(run_dir, scores_csv, manifest, roc, out, label_column, positive, score_columns, threshold,
             patient_column, aggregate, ci, n_bootstrap, seed, readers, fold_column):
    """Evaluate scores against labels: ROC, AUC with 95% CI (DeLong or bootstrap), the operating
    point at a threshold with exact CIs, per-patient results and DeLong tests between models.

    Either a scores table (--scores), or RUN_DIR with --data to score a manifest with the run's
    model first (its saved threshold is then the default). Conventions follow pROC: controls are
    the negative class, and the curve's direction is chosen as direction="auto" (reported when
    lower scores mean positive).

    \b
    Examples:
      tfxray evaluate --scores scores.csv --label-column outcome --positive Poor \\
          --score-column s100b --score-column wfns --out eval/ --threshold youden
      tfxray evaluate runs/wrist --data test_manifest.csv --roc --out eval/ --patient-column patient_id
    """
    import pandas as pd

    from tfxray.errors import UserError
    from tfxray.evaluation.report import evaluate_table, format_summary, write_report
    from tfxray.io import atomic_write_text

    if (run_dir is None) == (scores_csv is None):
        raise click.UsageError("give either --scores FILE.csv, or RUN_DIR with --data MANIFEST")
    classes = None
    model_threshold = None
    if scores_csv is not None:
        if manifest is not None:
            raise click.UsageError("--data goes with RUN_DIR; with --scores the table already holds the scores")
        if not label_column:
            raise click.UsageError("--scores needs --label-column")
        if not score_columns:
            raise click.UsageError("--scores needs at least one --score-column")
        threshold = threshold or "youden"
        if threshold.strip().lower() == "model":
            raise click.UsageError("--threshold model needs RUN_DIR (the model's saved threshold); with --scores give"
                                   " a number or a rule")
        # Only empty cells are missing: a written "nan" is a model's NaN output and must be reported.
        try:
            table = pd.read_csv(scores_csv, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise UserError(f"{scores_csv}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    else:
        if manifest is None:
            raise click.UsageError("RUN_DIR needs --data MANIFEST (the images to score)")
        if score_columns:
            raise click.UsageError("--score-column goes with --scores; RUN_DIR's model gives the scores")
        from tfxray.scoring.predict import predict_manifest

        table, info = predict_manifest(run_dir, manifest)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "scores.csv", table.to_csv(index=False))
        label_column = label_column or "label"
        classes = list(info.get("classes") or [])
        if len(classes) > 2:
            score_columns = [f"score_{c}" for c in classes]
        else:
            score_columns = ["score"]
            classes = None
            positive = positive or info["positive"]
        threshold = threshold or "model"
        model_threshold = info.get("threshold")

    reader_table = None
    if readers is not None:
        try:
            reader_table = pd.read_csv(readers)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise UserError(f"{readers}: not a readable CSV ({str(exc).splitlines()[0]})") from None

    report = evaluate_table(
        table, label_column=label_column, positive=positive, score_columns=list(score_columns),
        patient_column=patient_column, aggregate=aggregate, threshold=threshold, model_threshold=model_threshold,
        ci=ci, n_bootstrap=n_bootstrap, seed=seed, fold_column=fold_column, readers=reader_table, classes=classes,
    )
    paths = write_report(report, table, out)
    click.echo(format_summary(report))
    figures = [p for p in paths.values() if p.suffix == ".png"]
    click.echo(f"report: {paths['report.md']} and {paths['report.json']}; {len(figures)} figures in {out}")
