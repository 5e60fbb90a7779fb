"""tfxray train: fit a recipe's model on a manifest into a run directory."""

from __future__ import annotations

from pathlib import Path

import click

# Shortcut options and the recipe field each one sets (command line > environment > recipe > default).
SHORTCUTS = {
    "backbone": "model.backbone",
    "weights": "model.weights",
    "freeze": "model.freeze",
    "input_size": "data.input_size",
    "epochs": "train.epochs",
    "iterations": "train.iterations",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "seed": "train.seed",
    "folds": "data.folds",
    "strategy": "train.strategy",
    "precision": "train.precision",
    "deterministic": "train.deterministic",
    "init": "train.init",
}


@click.command("train")
@click.argument("recipe", required=False)
@click.option("--data", type=click.Path(exists=True, path_type=Path), help="CSV manifest or class-per-folder tree.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run directory to create.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Continue an interrupted run from its last checkpoint.")
@click.option("--backbone", help="Registered backbone name (overrides model.backbone).")
@click.option("--weights", help="imagenet, none, or a weights file.")
@click.option("--freeze", help="all-but-top | none | until:STAGE | until:LAYER.")
@click.option("--input-size", type=int, help="Input side in pixels.")
@click.option("--epochs", type=int, help="Budget in epochs (replaces the recipe's train.iterations).")
@click.option("--iterations", type=int, help="Budget in optimizer steps (replaces epochs).")
@click.option("--batch-size", type=int)
@click.option("--lr", type=float, help="Initial learning rate.")
@click.option("--seed", type=int)
@click.option("--folds", type=int, help="K-fold cross-validation (patient-grouped, stratified): K trainings.")
@click.option("--strategy", type=click.Choice(["auto", "default", "mirrored", "multiworker"]),
              help="tf.distribute: mirrored over this machine's GPUs, multiworker from TF_CONFIG.")
@click.option("--precision", type=click.Choice(["float32", "mixed", "mixed_float16", "mixed_bfloat16"]),
              help="mixed: float16 compute with a GPU, bfloat16 without (float16 is emulated on CPUs).")
@click.option("--deterministic", is_flag=True, default=None, help="TensorFlow op determinism (reproducible, slower).")
@click.option("--init", type=click.Path(exists=True, file_okay=False),
              help="Start from another run's weights (layers matched by name), e.g. a generic detector.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any recipe field, e.g. --set augment.online.enabled=true.")
@click.option("--allow-leaks", is_flag=True, help="Accept a manifest split column that puts a patient on two sides.")
@click.option("--overwrite", is_flag=True, allow_from_autoenv=False,
              help="Replace the run folder at --out (one tfxray wrote), once every check has passed.")
@click.option("--quiet", is_flag=True, help="No per-epoch progress.")
@click.pass_context
def train(ctx, recipe, data, out, resume_dir, sets, allow_leaks, overwrite, quiet, **shortcuts):
    """Train RECIPE (a built-in name or a YAML file) on --data into --out.

    \b
    Precedence: command line > environment (TFXRAY_TRAIN_EPOCHS...) > recipe > default;
    --epochs replaces a recipe's train.iterations, --iterations its epochs.
    \b
    Examples:
      tfxray train wrist --data data/manifest.csv --out runs/wrist --freeze all-but-top
      tfxray train wrist --data data/manifest.csv --out runs/w2 --set train.lr=0.01 --epochs 5
      tfxray train --resume runs/wrist --data data/manifest.csv
      tfxray train vertebral-radiograph --data spine.csv --out runs/spine --folds 5
      tfxray train femoral-neck --data pelvis.csv --out runs/fn --init runs/generic-detector
    """
    # Everything up to check_training is TensorFlow-free: a typo is reported in a fraction of a second.
    from tfxray.config import resolve_recipe
    from tfxray.data.manifest import load_manifest
    from tfxray.data.splits import group_unit, grouping_note
    from tfxray.errors import UserError
    from tfxray.training.preflight import check_training
    from tfxray.io import check_writable, is_temp_name
    from tfxray.training.rundir import is_complete, looks_like_a_run

    layers = override_layers(ctx, sets, shortcuts)
    if resume_dir is not None:
        if not (resume_dir / "recipe.yaml").is_file():
            raise UserError(f"--resume {resume_dir}: no recipe.yaml there; not a run directory")
        if is_complete(resume_dir):  # resuming it would train it again from the start, over its model
            raise UserError(f"--resume {resume_dir}: the run is complete (its model is saved); nothing to resume. "
                            f"Train it again with --out {resume_dir} --overwrite, or into another --out")
        given = [name for name, overrides in layers if overrides]
        if recipe is not None or given:
            raise click.UsageError("--resume continues the run's own recipe.yaml: leave out RECIPE and overrides"
                                   + (f" (given from the {' and the '.join(given)})" if given else ""))
        if overwrite:
            raise click.UsageError("--resume continues a run; --overwrite replaces one: choose one")
        recipe = str(resume_dir / "recipe.yaml")
        out = out or resume_dir
        if data is None:
            raise UserError("--resume needs --data (the manifest the run was trained on)")
    if recipe is None:
        raise click.UsageError("RECIPE is required (a built-in name such as 'wrist' or a YAML file)")
    if data is None or out is None:
        raise click.UsageError("--data and --out are required")
    check_writable(out, "--resume" if resume_dir is not None and out == resume_dir else "--out", folder=True)
    # a temporary file that a killed writer left (tfxray.io) does not make a folder a run
    replace = resume_dir is None and out.exists() and (
        not out.is_dir() or any(not is_temp_name(p.name) for p in out.iterdir()))
    if replace and not overwrite:
        if out.is_dir() and is_complete(out):
            raise UserError(f"--out {out}: already exists and holds a complete run (replace it with --overwrite, "
                            f"or choose another --out)")
        raise UserError(f"--out {out}: already exists and is not empty (continue it with --resume {out}, "
                        f"or replace it with --overwrite)")
    if replace and not (out.is_dir() and looks_like_a_run(out)):
        raise UserError(f"--out {out}: not a tfxray run folder (no recipe.yaml, split.csv...); --overwrite only "
                        f"replaces a run")
    resolved, budget_source = resolve_recipe(recipe, layers)
    manifest = load_manifest(data, classes=resolved.classes)
    if replace:
        _check_outside(out, data, manifest)
    if group_unit(manifest.images) != "patient_id":
        click.echo(grouping_note(manifest.images, data))
    check_training(resolved)  # weights, backbone, freeze: before anything is made
    if replace:
        import shutil

        shutil.rmtree(out)
        click.echo(f"--overwrite: removed the previous run at {out}")

    verbose = 0 if quiet else 1
    if resolved.data.folds > 1:
        from tfxray.training.crossval import OOF_FILE, cross_validate

        oof = cross_validate(resolved, manifest, out, allow_leaks=allow_leaks, verbose=verbose,
                             budget_source=budget_source)
        click.echo(f"cross-validation: {oof['fold'].nunique()} folds, {len(oof)} out-of-fold scores in {out / OOF_FILE}"
                   f" (grouped by {group_unit(manifest.images)}); each fold-K/ holds its test.csv and val.csv")
        click.echo(f"evaluate them: tfxray evaluate --scores {out / OOF_FILE} --label-column label "
                   f"--positive {resolved.classes[-1]} --score-column score --fold-column fold --out {out / 'evaluation'}")
        return
    from tfxray.data.splits import read_split_table
    from tfxray.training.trainer import SIDE_FILES, split_summary
    from tfxray.training.trainer import train as run_training

    result = run_training(resolved, manifest, out, resume=resume_dir is not None, allow_leaks=allow_leaks,
                          verbose=verbose, budget_source=budget_source)
    last = result.history.iloc[-1].to_dict() if len(result.history) else {}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "epoch")
    click.echo(f"trained {len(result.history)} epoch(s); last: {shown}")
    if result.restored is not None:
        click.echo(result.restored.line())
    click.echo(f"threshold {result.threshold:.4f} ({result.threshold_rule})")
    sides = [name for name in SIDE_FILES.values() if (result.run_dir / name).is_file()]
    click.echo(split_summary(read_split_table(result.run_dir / "split.csv"))
               + (f"; {' and '.join(sides)} beside split.csv" if sides else ""))
    click.echo(f"run directory: {result.run_dir}")


def override_layers(ctx, sets, shortcuts) -> list[tuple[str, list]]:
    """The overrides by source, lowest precedence first: [("environment", ...), ("command line", ...)].

    Click fills an option from TFXRAY_TRAIN_<OPTION> when the command line leaves it out; the
    source decides which layer it joins, so an environment variable never beats a command-line
    --set, and either beats the recipe.
    """
    from click.core import ParameterSource

    from tfxray.config import parse_override

    layers = {"environment": [], "command line": []}

    def layer(name):
        source = ctx.get_parameter_source(name)
        return "environment" if source == ParameterSource.ENVIRONMENT else "command line"

    if sets:
        layers[layer("sets")] += [parse_override(text) for text in sets]
    for key, value in shortcuts.items():
        if value is not None:
            layers[layer(key)].append((SHORTCUTS[key].split("."), value))
    return list(layers.items())


def _check_outside(out: Path, data: Path, manifest) -> None:
    """--overwrite never removes the data it trains on."""
    import os

    from tfxray.errors import UserError

    root = os.path.abspath(out) + os.sep
    inside = [p for p in [os.path.abspath(data), *manifest.images["path"]] if str(p).startswith(root)]
    if inside:
        raise UserError(f"--overwrite {out}: the data ({inside[0]}) lies inside it; copy it elsewhere first")
