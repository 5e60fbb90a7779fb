"""tfxray evaluate: ROC/AUC with CIs, thresholds, per-patient results, DeLong tests, clinical
usefulness (PPV/NPV, likelihood ratios, AUPRC, decision curves, calibration) and reader studies (MRMC)."""

from __future__ import annotations

from pathlib import Path

import click

from tfxray.evaluation.choices import (AGGREGATIONS, CI_METHODS, DEFAULT_AGGREGATION, DIRECTION_FOR_TABLES,
                                       DIRECTIONS)


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
                   " (ROC, score histograms, confusion matrices, precision-recall, decision and calibration curves)."
                   " The report's numbers are the same.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for report.json, report.md and the PNGs.")
@click.option("--label-column", help="Column holding the true class [--scores: required; RUN_DIR: label].")
@click.option("--positive", help="Value of the label column that is positive (RUN_DIR: the model's).")
@click.option("--score-column", "score_columns", multiple=True,
              help="Score column; repeat to compare models on the same cases (DeLong test).")
@click.option("--threshold", help="0.5 | youden | sensitivity:0.95 | specificity:0.9 | model"
                                  "  [--scores: youden; RUN_DIR: model; --detections: the box cut-off, a number in"
                                  " [0, 1], required]")
@click.option("--direction", type=click.Choice(DIRECTIONS),
              help="Which way the scores point: higher (a higher score means positive), lower, or auto (pROC's"
                   " direction=\"auto\": chosen per model and level from the class medians, with pROC's warning when"
                   " it picks lower; the folds keep the pooled choice)  [--scores: auto; RUN_DIR: higher, a model's"
                   " score being its positive-class probability]")
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
              help="Either a CSV of reader operating points (name, sensitivity, specificity[, level]) drawn on the"
                   " ROC, or a reads table for a multi-reader multi-case study (CSV with case, reader, modality, truth,"
                   " rating; or a LABMRMC .lrc file): Obuchowski-Rockette analysis with Hillis' ddf into mrmc.*; alone"
                   " (no --scores, no RUN_DIR) it is the whole evaluation.")
@click.option("--reader-cutoff", type=float, metavar="X",
              help="With a reads table: a rating >= X is a positive call, for each reader's sensitivity and"
                   " specificity without vs with assistance (McNemar); not needed when the ratings are 0/1 calls.")
@click.option("--model-as-reader", is_flag=True,
              help="With a reads table and --scores/RUN_DIR: also run the reader study with each model added as one"
                   " more reader, reading every modality with its scores (OUT/with_model/); the readers' own analysis"
                   " is unchanged. The scores table's --case-column holds the reads table's case ids.")
@click.option("--case-column", metavar="COLUMN",
              help="With --model-as-reader: the column of the scores table holding the reads table's case ids"
                   " [case].")
@click.option("--prevalence", "prevalences", multiple=True, metavar="P",
              help="Deployment prevalence for PPV and NPV (Bayes' theorem from sensitivity and specificity, logit"
                   " CIs), besides the sample's; repeat or give a comma list (0.05,0.1). Two-class only.")
@click.option("--subgroup", "subgroups", multiple=True, metavar="COLUMN",
              help="Every metric per group of COLUMN (sex, site, age band, ...) with CIs, the test of equal AUCs"
                   " across the groups and the Holm-adjusted pairwise tests; report.json subgroups.COLUMN, report.md"
                   " and subgroups_COLUMN.png/.svg (not with --roc). Repeatable. [--scores: a column of the table;"
                   " RUN_DIR: a column of the manifest]")
@click.option("--fold-column", help="Cross-validation fold of each row: per-fold results, mean and SD.")
@click.option("--detections", "detections_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A detector's boxes.csv (path, frame, x1, y1, x2, y2, score, class; `tfxray score` on a detector"
                   " run), evaluated against --truth: per image (max box score) and per box (recall, precision, AP50,"
                   " FROC). Needs --threshold CUTOFF.")
@click.option("--truth", "truth_manifest", type=click.Path(exists=True, path_type=Path),
              help="With --detections: the manifest of every evaluated image, its label and reference boxes (x1, y1,"
                   " x2, y2); an image with no box row has no reference box.")
@click.option("--iou", "iou_threshold", type=click.FloatRange(0, 1, min_open=True),
              help="With --detections: the IoU a predicted box needs with a reference box to count as found [0.5].")
@click.option("--compare", is_flag=True,
              help="RUN_A RUN_B: compare two runs on the same cases (paired DeLong test on the AUCs; for detectors"
                   " also McNemar's test on sensitivity and specificity at each run's cut-off).")
@click.option("--overlays/--no-overlays", default=None,
              help="With --detections: box overlays of detected, missed and false-positive boxes in OUT/overlays/"
                   " [on].")
@click.option("--overwrite", is_flag=True, allow_from_autoenv=False,
              help="Write into a --out folder that holds other files than an earlier evaluate report (they are"
                   " kept; an earlier report's files are replaced either way).")
def evaluate(run_dirs, scores_csv, manifest, split, allow_modality, worst, roc_only, out, label_column, positive,
             score_columns, threshold, direction, patient_column, aggregate, ci, n_bootstrap, seed, readers,
             reader_cutoff, model_as_reader, case_column, prevalences, subgroups, fold_column, detections_csv,
             truth_manifest, iou_threshold, overlays, compare, overwrite):
    """Evaluate scores against labels: ROC, AUC with 95% CI (DeLong or bootstrap), the operating
    point at a threshold with exact CIs, per-patient results and DeLong tests between models.

    Either a scores table (--scores), or RUN_DIR with --data to score a manifest with the run's
    model first (its saved threshold is then the default), or with --split test|val to score the
    run's own held-out rows. Several RUN_DIRs score the same cases and are compared directly
    (paired DeLong test; score columns named after the runs, each at its own saved threshold);
    they must share their classes. Conventions follow pROC: controls are the negative class. A
    run's scores are "higher = positive" (--direction higher, so a model worse than chance reads an
    AUC below 0.5); a --scores table's direction is pROC's direction="auto" unless --direction
    fixes it (the report says which, and warns when auto picks lower). A threshold chosen on the
    evaluated data (youden, sensitivity:X, specificity:X) is flagged exploratory, with CIs that
    bootstrap the choice; a run's saved threshold (chosen on validation data) is the default.

    With RUN_DIR, images outside what the model was trained on (tfxray.json's trained_on: another
    modality, colour images for a gray model, thumbnails) are left out of the analysis, counted,
    and listed in OUT/excluded.csv; --allow-modality keeps them. A file that cannot be read stops
    the evaluation. --positive must be the model's positive class (or left out).

    With a patient column (--patient-column, or the recipe's evaluate.patient_level) the patient
    level is the headline: the images of one patient are not independent, so the image-level AUC
    gets a CI clustered by patient (Obuchowski 1997 with --ci delong, the cluster bootstrap with
    --ci bootstrap) beside DeLong's, which assumes independent images, and two models are compared
    by Obuchowski's clustered test. Several pairwise tests in one report are Holm-adjusted. Every
    report has the flow of cases (STARD 2015 item 19: rows read, rows left out and why, images and
    patients analysed; flow.png). With --scores, a row with an empty label, no score in any score
    column, or status error/skipped from `tfxray score` is left out and counted there.

    Every figure is a PNG at 300 dpi with an SVG beside it.

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
      tfxray evaluate --detections boxes.csv --truth test.csv --threshold 0.4 --out eval/   # a detector
      tfxray evaluate runs/fn --data test.csv --out eval/                  # a detector run: boxes + report
      tfxray evaluate --compare runs/generic runs/fn --data test.csv --out compare/   # before/after
      tfxray evaluate --scores s.csv --label-column y --positive 1 --score-column p --prevalence 0.05 --out eval/
      tfxray evaluate --readers examples/vandyke_reads.csv --out mrmc/    # a reader study (MRMC) alone
      tfxray evaluate --scores examples/asah.csv --label-column outcome --positive Poor \
          --score-column s100b --subgroup gender --out eval/               # per-subgroup metrics and tests

    With --detections boxes.csv --truth MANIFEST --threshold CUTOFF: every image of the manifest is
    a case scored by its highest box confidence (0 without a box), called positive when a box
    scores >= CUTOFF (AUC with CI, sensitivity and specificity as above); the boxes at or above
    CUTOFF are matched to the reference boxes greedily by confidence at IoU >= --iou (box recall and
    precision with exact CIs), and every box gives AP50 (COCO) and the FROC curve and score.
    Writes froc.png, pr.png and box overlays in OUT/overlays/ besides the per-image report.

    Two-class models also get PPV, NPV and likelihood ratios at the operating point (PPV/NPV at
    each --prevalence too), AUPRC with a bootstrap CI, and, when the scores are probabilities in
    [0, 1], a decision curve and the calibration slope/intercept with a smoothed curve (pr_*,
    decision_*, calibration_*; not with --roc).

    --readers with a reads table (case, reader, modality, truth, rating; or .lrc) runs the
    multi-reader multi-case analysis (Obuchowski-Rockette, random readers and cases, Hillis'
    ddf; also fixed readers, fixed cases): OUT/mrmc.json, .md, .png, .svg, and report.json's
    "mrmc" (f, ddf, p, auc per modality, ci_difference). Alone, it is the whole evaluation.

    --out is checked writable before anything is scored. It must be empty, or hold an earlier
    evaluate report, which the new one replaces as a whole (the earlier report's files this run does
    not write again, such as the PNGs of other options, are removed; OUT/.tfxray-outputs.json lists
    what evaluate wrote). Other files need --overwrite and are kept. A scores.csv or boxes.csv that
    `tfxray score` wrote is never replaced by RUN_DIR's: choose another --out.
    """
    from tfxray.io import check_writable, earlier_run_files, owned_folder

    check_writable(out, "--out", folder=True)
    if run_dirs:
        _refuse_to_replace_score_outputs(out, earlier_run_files(out, "evaluate", _earlier_report))
    inputs = [p for p in (scores_csv, manifest, readers, detections_csv, truth_manifest) if p is not None]
    with owned_folder(out, command="evaluate", overwrite=overwrite, earlier=_earlier_report, keep=inputs) as owned:
        _evaluate(run_dirs, scores_csv, manifest, split, allow_modality, worst, roc_only, out, label_column, positive,
                  score_columns, threshold, direction, patient_column, aggregate, ci, n_bootstrap, seed, readers,
                  reader_cutoff, model_as_reader, case_column, prevalences, subgroups, fold_column, detections_csv,
                  truth_manifest, iou_threshold, overlays, compare)
    if owned.removed:
        click.echo(f"replaced the earlier report in {out}: removed {len(owned.removed)} of its file(s) this run did"
                   f" not write ({', '.join(owned.removed[:3])}{', ...' if len(owned.removed) > 3 else ''})")


# What an evaluate report holds, for a folder written before evaluate recorded its files (.tfxray-outputs.json).
REPORT_FILES = {"report.json", "report.md", "excluded.csv", "per_image.csv", "mrmc.json", "mrmc.md",
                "comparison.json", "comparison.md", "scores.csv", "boxes.csv"}
REPORT_FOLDERS = {"worst", "overlays", "with_model"}
FIGURE_STEMS = ("roc_", "folds_roc_", "scores_", "confusion_", "pr_", "pr.", "decision_", "calibration_",
                "subgroups_", "flow.", "froc.", "mrmc.", "auc_", "score_")
SCORE_OUTPUTS = ("scores.csv", "boxes.csv")  # what `tfxray score` writes and evaluate RUN_DIR writes too


def _earlier_report(folder: Path, files: set[str]) -> set[str]:
    """The files of an evaluate report written before evaluate kept a record: none unless report.json is
    evaluate's; then its report files, figures, galleries and overlays (a score CSV of `tfxray score` not)."""
    import json

    try:
        report = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(report, dict) or not ("task" in report or "schema" in report):
        return set()
    ours = set()
    for rel in files:
        parts = rel.split("/")
        name = parts[-1]
        in_report = len(parts) == 1 or parts[0] in REPORT_FOLDERS or (folder / parts[0] / "report.json").is_file()
        if not in_report:
            continue
        figure = name.endswith((".png", ".svg")) and name.startswith(FIGURE_STEMS)
        if parts[0] in REPORT_FOLDERS or name in REPORT_FILES or figure:
            if name in SCORE_OUTPUTS and _written_by_score(folder / rel):
                continue
            ours.add(rel)
    return ours


def _written_by_score(path: Path) -> bool:
    """A scores.csv of `tfxray score` (its header), or a boxes.csv beside one."""
    scores = path.with_name("scores.csv")
    try:
        with open(scores, encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
    except OSError:
        return False
    return header.startswith("path,sop_instance_uid,")


def _refuse_to_replace_score_outputs(out: Path, earlier: set[str]) -> None:
    """RUN_DIR writes OUT/scores.csv (boxes.csv for a detector): never over one that evaluate did not write."""
    from tfxray.errors import UserError

    for name in SCORE_OUTPUTS:
        if (out / name).is_file() and name not in earlier:
            raise UserError(f"--out {out}: holds a {name} that tfxray evaluate did not write (tfxray score's?);"
                            f" evaluate RUN_DIR writes its own {name} there: choose another --out")


def _evaluate(run_dirs, scores_csv, manifest, split, allow_modality, worst, roc_only, out, label_column, positive,
              score_columns, threshold, direction, patient_column, aggregate, ci, n_bootstrap, seed, readers,
              reader_cutoff, model_as_reader, case_column, prevalences, subgroups, fold_column, detections_csv,
              truth_manifest, iou_threshold, overlays, compare):
    """The evaluation behind ``evaluate`` (see its help), once --out is known to be writable and free."""
    from tfxray.evaluation.report import evaluate_table, format_summary, write_report
    from tfxray.evaluation.table import read_readers_csv, read_scores_csv, readers_file_kind

    reader_kind = readers_file_kind(readers) if readers is not None else None
    if reader_kind != "reads":
        for given, name in ((reader_cutoff, "--reader-cutoff"), (model_as_reader or None, "--model-as-reader"),
                            (case_column, "--case-column")):
            if given is not None:
                raise click.UsageError(f"{name} goes with --readers READS (a reads table: case, reader, modality,"
                                       " truth, rating; or a .lrc file)")
    if case_column is not None and not model_as_reader:
        raise click.UsageError("--case-column goes with --model-as-reader")

    detector_direction = ("--direction: a detector's image score (its highest box confidence) is higher = positive by"
                          " construction; leave --direction out")
    if detections_csv is not None or truth_manifest is not None:
        if direction is not None:
            raise click.UsageError(detector_direction)
        _refuse_for_detectors("--detections", prevalences, reader_kind, subgroups)
        return _evaluate_boxes(run_dirs, scores_csv, detections_csv, truth_manifest, threshold, out, positive,
                               iou_threshold, overlays, roc_only, patient_column, aggregate, ci, n_bootstrap, seed,
                               readers, refused={"--data": manifest, "--split": split, "--worst": worst,
                                                 "--allow-modality": allow_modality or None,
                                                 "--label-column": label_column,
                                                 "--score-column": score_columns or None,
                                                 "--fold-column": fold_column})
    if compare and len(run_dirs) != 2:
        raise click.UsageError(f"--compare takes two run directories, RUN_A RUN_B (got {len(run_dirs)})")
    if iou_threshold is not None:
        raise click.UsageError("--iou goes with --detections and --truth (a detector run uses its saved IoU)")
    if overlays is not None and not run_dirs:
        raise click.UsageError("--overlays/--no-overlays goes with a detector's boxes (--detections, or a detector"
                               " RUN_DIR)")
    if reader_kind == "reads" and not run_dirs and scores_csv is None:
        return _evaluate_reads_only(readers, out, positive, reader_cutoff, model_as_reader, roc_only,
                                    refused={"--data": manifest, "--split": split, "--worst": worst,
                                             "--allow-modality": allow_modality or None,
                                             "--label-column": label_column, "--score-column": score_columns or None,
                                             "--threshold": threshold, "--direction": direction,
                                             "--patient-column": patient_column, "--aggregate": aggregate,
                                             "--fold-column": fold_column, "--prevalence": prevalences or None,
                                             "--subgroup": subgroups or None, "--compare": compare or None})
    if bool(run_dirs) == (scores_csv is not None):
        raise click.UsageError("give either --scores FILE.csv, or RUN_DIR with --data MANIFEST or --split test|val"
                               " (or --readers READS alone for a reader study)")
    reads = None
    if reader_kind == "reads":  # read and checked before any scoring
        from tfxray.evaluation.table import read_reads_file

        reads = read_reads_file(readers, positive)
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
        from tfxray.evaluation.table import screen_rows

        # rows that cannot be analysed (no label, no score, a file the scorer could not read) are counted in the
        # flow of cases, not dropped silently and not an error
        table, excluded_rows = screen_rows(read_scores_csv(scores_csv), label_column, list(score_columns))
        if len(excluded_rows):
            reasons = excluded_rows["reason"].value_counts(sort=False)
            click.echo(f"left out {len(excluded_rows)} of {len(table) + len(excluded_rows)} rows of {scores_csv}: "
                       + ", ".join(f"{n} {why}" for why, n in reasons.items())
                       + " (counted in report.md's flow of cases)")
        if table.empty:
            raise click.UsageError(f"{scores_csv}: no row has both a label and a score")
        rows_source = f"rows of {scores_csv.name}"
        arguments = {"label_column": label_column, "positive": positive, "score_columns": list(score_columns),
                     "threshold": threshold, "patient_column": patient_column,
                     "aggregate": aggregate or DEFAULT_AGGREGATION, "direction": direction or DIRECTION_FOR_TABLES}
    else:
        if (manifest is None) == (split is None):
            raise click.UsageError("RUN_DIR needs the images to score: --data MANIFEST or --split test|val (not both)")
        if score_columns:
            raise click.UsageError("--score-column goes with --scores; RUN_DIR's model gives the scores")
        from tfxray.io import atomic_write_text
        from tfxray.models.bundle import load_meta
        from tfxray.scoring.predict import evaluate_runs

        kinds = {load_meta(r).is_detection for r in run_dirs}
        if kinds == {True}:
            if direction is not None:
                raise click.UsageError(detector_direction)
            _refuse_for_detectors("a detector RUN_DIR", prevalences, reader_kind, subgroups)
            return _evaluate_detector_runs(run_dirs, manifest, split, out, overlays, roc_only, ci, n_bootstrap, seed,
                                           allow_modality, refused={"--worst": worst, "--label-column": label_column,
                                                                    "--threshold": threshold,
                                                                    "--patient-column": patient_column,
                                                                    "--readers": readers,
                                                                    "--fold-column": fold_column})
        if len(kinds) > 1:
            raise click.UsageError("RUN_DIRs: a detector and a classifier cannot be compared on the same scale; "
                                   "evaluate them one by one")
        evaluation = evaluate_runs(list(run_dirs), manifest, split=split, label_column=label_column,
                                   positive=positive, threshold=threshold, patient_column=patient_column,
                                   aggregate=aggregate, allow_modality=allow_modality, direction=direction,
                                   subgroups=subgroups)
        table, arguments = evaluation.table, evaluation.arguments
        excluded_rows = evaluation.excluded_rows
        rows_source = "images of the manifest" if manifest is not None else f"images of the run's {split} rows"
        for column in subgroups:
            if column not in table.columns and column in evaluation.left_out_columns:
                raise click.UsageError(f"--subgroup {column!r}: {evaluation.left_out_columns[column]}")
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

    reader_table = read_readers_csv(readers) if reader_kind == "points" else None
    report = evaluate_table(table, **arguments, ci=ci, n_bootstrap=n_bootstrap, seed=seed, fold_column=fold_column,
                            readers=reader_table, prevalence=list(prevalences) or None,
                            subgroups=list(subgroups) or None, excluded_rows=excluded_rows, rows_source=rows_source)
    study = None
    if reads is not None:
        study = _reader_study(reads, str(readers), reader_cutoff, model_as_reader, table, report, case_column)
    if evaluation is not None:
        if not evaluation.excluded.empty:
            report["excluded"] = evaluation.excluded_summary()
        if worst:
            from tfxray.scoring.predict import worst_gallery

            report["worst"] = worst_gallery(evaluation, out, worst)
    paths = write_report(report, table, out, roc_only=roc_only, study=study)
    click.echo(format_summary(report))
    if report.get("worst"):
        panels = sum(1 for groups in report["worst"]["models"].values() for cases in groups.values()
                     for case in cases if case.get("panel"))
        click.echo(f"worst cases: {panels} Grad-CAM panel(s) in {out / report['worst']['folder']}")
    figures = [p for p in paths.values() if p.suffix == ".png"]
    click.echo(f"report: {paths['report.md']} and {paths['report.json']}; {len(figures)} figures in {out}")


def _refuse_for_detectors(where: str, prevalences, reader_kind, subgroups=()) -> None:
    """Options the detector reports do not take yet: refused, never ignored."""
    if subgroups:
        raise click.UsageError(f"--subgroup is not available with {where} yet (it goes with --scores or a"
                               " classifier's RUN_DIR)")
    if prevalences:
        raise click.UsageError(f"--prevalence is not available with {where} yet (it goes with --scores or a"
                               " classifier's RUN_DIR)")
    if reader_kind == "reads":
        raise click.UsageError(f"--readers: a reads table (an MRMC study) does not go with {where}; give it alone, or"
                               " with --scores or a classifier's RUN_DIR")


def _reader_study(reads, source, reader_cutoff, model_as_reader, table=None, report=None, case_column=None):
    """The reads table analysed (tfxray.evaluation.report.reader_study), with the models as readers when asked."""
    from tfxray.evaluation.report import add_reader_study, model_readers, reader_study

    models = None
    if model_as_reader:
        models = model_readers(table, report, reads, case_column or "case")
    study = reader_study(reads, reader_cutoff=reader_cutoff, source=source, models=models)
    if report is not None:
        add_reader_study(report, study)
    return study


def _evaluate_reads_only(readers, out, positive, reader_cutoff, model_as_reader, roc_only, refused):
    """tfxray evaluate --readers READS --out OUT: the reader study alone (mrmc.*, report.json, report.md)."""
    for name, given in refused.items():
        if given is not None:
            raise click.UsageError(f"{name} goes with --scores or RUN_DIR; --readers READS alone is a reader study"
                                   " (the reads table holds the truth and the ratings)")
    if model_as_reader:
        raise click.UsageError("--model-as-reader needs a model's scores: --scores FILE.csv or RUN_DIR")
    from tfxray.evaluation.report import format_summary, reader_study_report, write_reader_study_report
    from tfxray.evaluation.table import read_reads_file

    study = _reader_study(read_reads_file(readers, positive), str(readers), reader_cutoff, False)
    report = reader_study_report(study)
    paths = write_reader_study_report(report, study, out)
    click.echo(format_summary(report))
    figures = [p for p in paths.values() if p.suffix == ".png"]
    click.echo(f"report: {paths['report.md']} and {paths['report.json']}; {len(figures)} figure(s) in {out}"
               f"{' (--roc: the reader study has no ROC figure of its own)' if roc_only else ''}")


def _box_cutoff(threshold) -> float:
    """--threshold with --detections: the box cut-off, a number in [0, 1]."""
    if threshold is None:
        raise click.UsageError("--detections needs --threshold CUTOFF: the box confidence cut-off, a number in [0, 1]"
                               " (e.g. 0.4)")
    try:
        cutoff = float(threshold)
    except ValueError:
        raise click.UsageError(f"--threshold {threshold!r}: with --detections give the box cut-off as a number in"
                               " [0, 1] (e.g. 0.4), not a rule") from None
    if not 0 <= cutoff <= 1:
        raise click.UsageError(f"--threshold {threshold}: the box cut-off must be in [0, 1]")
    return cutoff


def _positive_of(truth, positive):
    """--positive, or the one label of the images with reference boxes when the manifest has two classes."""
    if positive is not None:
        return positive
    images = truth.images
    boxed = sorted(set(images.loc[images["path"].isin(truth.boxes["path"]), "label"].astype(str)))
    if len(truth.classes) == 2 and len(boxed) == 1:
        click.echo(f"positive class: {boxed[0]} (the label of the images with reference boxes; --positive sets it)")
        return boxed[0]
    raise click.UsageError(f"--positive: say which label is positive (labels: {', '.join(map(str, truth.classes))})")


def _evaluate_boxes(run_dirs, scores_csv, detections_csv, truth_manifest, threshold, out, positive, iou_threshold,
                    overlays, roc_only, patient_column, aggregate, ci, n_bootstrap, seed, readers, refused):
    """tfxray evaluate --detections boxes.csv --truth MANIFEST --threshold CUTOFF (see the command's help)."""
    if detections_csv is None or truth_manifest is None:
        given, missing = ("--detections", "--truth") if truth_manifest is None else ("--truth", "--detections")
        raise click.UsageError(f"{given} needs {missing}: --detections boxes.csv --truth MANIFEST --threshold CUTOFF")
    if run_dirs or scores_csv is not None:
        raise click.UsageError("--detections takes the place of --scores and RUN_DIR; give one of them")
    for name, given in refused.items():
        if given is not None:
            raise click.UsageError(f"{name} does not apply with --detections (the manifest gives the labels, the boxes"
                                   " the scores)")
    cutoff = _box_cutoff(threshold)
    draw = overlays is not False

    from tfxray.data.manifest import load_manifest
    from tfxray.evaluation.choices import DEFAULT_AGGREGATION
    from tfxray.evaluation.detection import (align_detections, evaluate_detections, format_detection_summary,
                                             read_detections_csv, write_detection_report)
    from tfxray.evaluation.table import read_readers_csv

    truth = load_manifest(truth_manifest, check_files=draw)  # the numbers need no image; the overlays do
    detections = align_detections(read_detections_csv(detections_csv), truth.images["path"], source=str(detections_csv))
    positive = _positive_of(truth, positive)
    report = evaluate_detections(detections, truth.images, truth.boxes, positive=positive, cutoff=cutoff,
                                 iou_threshold=0.5 if iou_threshold is None else iou_threshold, ci=ci,
                                 n_bootstrap=n_bootstrap, seed=seed, patient_column=patient_column,
                                 aggregate=aggregate or DEFAULT_AGGREGATION,
                                 readers=read_readers_csv(readers) if readers is not None else None)
    panels = None
    if draw:
        from tfxray.explain.overlays import write_overlay_panels

        panels = write_overlay_panels(detections, truth.images, truth.boxes, cutoff, out / "overlays",
                                      iou_threshold=report["iou_threshold"])
    paths = write_detection_report(report, out, detections, truth.images, truth.boxes, roc_only=roc_only,
                                   overlays=panels)
    click.echo(format_detection_summary(report))
    if panels is not None:
        kinds = panels["kinds"]
        written = sum(len(k["panels"]) for k in kinds.values())
        counts = [len(kinds[kind]["panels"]) for kind in ("tp", "fn", "fp")]
        click.echo(f"overlays: {written} panel(s) in {panels['folder']} ({counts[0]} with detected, {counts[1]} with"
                   f" missed, {counts[2]} with false-positive boxes)")
        if panels["failures"]:
            first = panels["failures"][0]
            click.echo(f"overlays: {len(panels['failures'])} image(s) could not be drawn (first: {first['path']}:"
                       f" {first['reason']})")
    figures = [p for p in paths.values() if p.suffix == ".png"]
    click.echo(f"report: {paths['report.md']} and {paths['report.json']}; {len(figures)} figures in {out}")


def _evaluate_detector_runs(run_dirs, manifest, split, out, overlays, roc_only, ci, n_bootstrap, seed, allow_modality,
                            refused):
    """tfxray evaluate DETECTOR_RUN [DETECTOR_RUN_B] --data MANIFEST | --split test|val: the report of each run's
    boxes (per image and per box, as --detections), and with two runs the paired comparison (DeLong on the
    per-image AUCs, McNemar on sensitivity and specificity at each run's cut-off)."""
    for name, given in refused.items():
        if given is not None:
            raise click.UsageError(f"{name} does not apply to a detector run (its cut-off and IoU are saved with it;"
                                   " the manifest gives the labels)")
    if len(run_dirs) > 2:
        raise click.UsageError("detector runs are compared two at a time: give RUN_A RUN_B")
    from tfxray.scoring.detections import evaluate_detector_runs

    evaluate_detector_runs(list(run_dirs), manifest, split=split, out=out, overlays=overlays is not False,
                           roc_only=roc_only, ci=ci, n_bootstrap=n_bootstrap, seed=seed, allow_modality=allow_modality,
                           say=click.echo)
