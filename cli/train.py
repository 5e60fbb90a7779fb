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
@click.option("--epochs", type=int)
@click.option("--iterations", type=int, help="Budget in optimizer steps (overrides epochs).")
@click.option("--batch-size", type=int)
@click.option("--lr", type=float, help="Initial learning rate.")
@click.option("--seed", type=int)
@click.option("--folds", type=int, help="K-fold cross-validation (patient-grouped, stratified): K trainings.")
@click.option("--strategy", type=click.Choice(["auto", "default", "mirrored", "multiworker"]),
              help="tf.distribute: mirrored over this machine's GPUs, multiworker from TF_CONFIG.")
@click.option("--precision", type=click.Choice(["float32", "mixed", "mixed_float16", "mixed_bfloat16"]),
              help="mixed: float16 compute with a GPU, bfloat16 without (float16 is emulated on CPUs).")
@click.option("--deterministic", is_flag=True, default=None, help="TensorFlow op determinism (reproducible, slower).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any recipe field, e.g. --set augment.online.enabled=true.")
@click.option("--allow-leaks", is_flag=True, help="Accept a manifest split column that puts a patient on two sides.")
@click.option("--quiet", is_flag=True, help="No per-epoch progress.")
def train(recipe, data, out, resume_dir, sets, allow_leaks, quiet, **shortcuts):
    """Train RECIPE (a built-in name or a YAML file) on --data into --out.

    \b
    Examples:
      tfxray train wrist --data data/manifest.csv --out runs/wrist --freeze all-but-top
      tfxray train wrist --data data/manifest.csv --out runs/w2 --set train.lr=0.01 --epochs 5
      tfxray train --resume runs/wrist --data data/manifest.csv
      tfxray train vertebral-radiograph --data spine.csv --out runs/spine --folds 5
    """
    from tfxray.config import load_recipe, parse_override
    from tfxray.data.manifest import load_manifest
    from tfxray.errors import UserError
    from tfxray.training.trainer import train as run_training

    if resume_dir is not None:
        if not (resume_dir / "recipe.yaml").is_file():
            raise UserError(f"--resume {resume_dir}: no recipe.yaml there; not a run directory")
        if recipe is not None or sets or any(v is not None for v in shortcuts.values()):
            raise click.UsageError("--resume continues the run's own recipe.yaml: leave out RECIPE and overrides")
        recipe = str(resume_dir / "recipe.yaml")
        out = out or resume_dir
        if data is None:
            raise UserError("--resume needs --data (the manifest the run was trained on)")
    if recipe is None:
        raise click.UsageError("RECIPE is required (a built-in name such as 'wrist' or a YAML file)")
    if data is None or out is None:
        raise click.UsageError("--data and --out are required")
    if out.exists() and any(out.iterdir()) and resume_dir is None:
        raise UserError(f"--out {out}: already exists and is not empty (use --resume {out} to continue it)")
    overrides = [parse_override(text) for text in sets]
    overrides += [(SHORTCUTS[key].split("."), value) for key, value in shortcuts.items() if value is not None]
    resolved = load_recipe(recipe, overrides)
    manifest = load_manifest(data, classes=resolved.classes)
    if resolved.data.folds > 1:
        from tfxray.training.crossval import OOF_FILE, cross_validate

        oof = cross_validate(resolved, manifest, out, allow_leaks=allow_leaks, verbose=0 if quiet else 1)
        click.echo(f"cross-validation: {oof['fold'].nunique()} folds, {len(oof)} out-of-fold scores in {out / OOF_FILE}")
        click.echo(f"evaluate them: tfxray evaluate --scores {out / OOF_FILE} --label-column label "
                   f"--positive {resolved.classes[-1]} --score-column score --fold-column fold --out {out / 'evaluation'}")
        return
    result = run_training(resolved, manifest, out, resume=resume_dir is not None, allow_leaks=allow_leaks,
                          verbose=0 if quiet else 1)
    last = result.history.iloc[-1].to_dict() if len(result.history) else {}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "epoch")
    click.echo(f"trained {len(result.history)} epoch(s); last: {shown}")
    click.echo(f"threshold {result.threshold:.4f} ({result.threshold_rule})")
    click.echo(f"run directory: {result.run_dir}")
