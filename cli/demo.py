"""tfxray demo: the whole job on built-in synthetic radiographs."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="tfxray-demo", show_default=True)
@click.option("--n", "n_images", default=500, show_default=True, type=int, help="Synthetic images to draw.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--epochs", type=int, help="Override the demo recipe's epochs.")
def demo(out: Path, n_images: int, seed: int, epochs: int | None):
    """Synthesise wrist phantoms, train, evaluate on held-out patients, score a folder, Grad-CAM, report.

    Runs offline on a CPU in a few minutes. The small CNN learns from random weights;
    real use starts from ImageNet weights (see the wrist recipe).

    \b
    Example:
      tfxray demo --out tfxray-demo
    """
    from tfxray.demo import run_demo

    result = run_demo(out, n_images=n_images, seed=seed, epochs=epochs, say=click.echo)
    report = result.report
    click.echo("")
    click.echo(f"test AUC {report['auc']:.3f}; report: {out / 'report.json'} and {out / 'report.md'}")
    for name, path in report["files"]["evaluation"].items():
        click.echo(f"  {name}: {path}")
    click.echo(f"  training curves: {report['files']['history_png']}")
    click.echo(f"  scores: {report['files']['scores_csv']}")
    click.echo(f"  Grad-CAM panels: {out / 'gradcam'}")
