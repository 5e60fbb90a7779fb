"""tfxray demo: the whole job on built-in synthetic radiographs."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="tfxray-demo", show_default=True)
@click.option("--task", type=click.Choice(["wrist", "pelvis"]), default="wrist", show_default=True,
              help="wrist: the fracture classifier; pelvis: the femoral-neck fracture detector (boxes).")
@click.option("--n", "n_images", type=int,
              help="Synthetic images to draw  [wrist: 500; pelvis: 300 pelvis, plus two thirds as many skeleton phantoms].")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--epochs", type=int, help="Override the demo recipe's epochs.")
def demo(out: Path, task: str, n_images: int | None, seed: int, epochs: int | None):
    """Synthesise phantoms, train, evaluate on held-out patients, score a folder, explain, report.

    Runs offline on a CPU in a few minutes. The small CNN learns from random weights;
    real use starts from ImageNet weights (see the wrist and femoral-neck recipes).
    --task pelvis: a generic fracture detector trained on skeleton phantoms is fine-tuned on pelvis
    phantoms with hard-positive mining; both are evaluated per image and per box on the same
    held-out patients (paired DeLong, McNemar), a folder is scored into scores.csv and boxes.csv.

    \b
    Example:
      tfxray demo --out tfxray-demo
      tfxray demo --task pelvis --out tfxray-demo-pelvis
    """
    if task == "pelvis":
        from tfxray.demo.pelvis import run_pelvis_demo

        n_pelvis = n_images or 300
        result = run_pelvis_demo(out, n_pelvis=n_pelvis, n_skeleton=n_pelvis * 2 // 3, seed=seed, epochs=epochs,
                                 say=click.echo)
        report = result.report
        click.echo("")
        click.echo(f"test per-image AUC {report['auc']:.3f} (before fine-tuning {report['auc_before']:.3f}); box recall "
                   f"{report['box_recall']:.3f} (boxes placed at random: {report['box_recall_random_boxes']:.3f})")
        click.echo(f"report: {out / 'report.json'} and {out / 'report.md'}")
        for name in ("evaluation_after", "comparison", "scores_csv", "boxes_csv"):
            click.echo(f"  {name.replace('_', ' ')}: {report['files'][name]}")
        return
    from tfxray.demo import run_demo

    n_images = n_images or 500

    result = run_demo(out, n_images=n_images, seed=seed, epochs=epochs, say=click.echo)
    report = result.report
    click.echo("")
    click.echo(f"test AUC {report['auc']:.3f}; report: {out / 'report.json'} and {out / 'report.md'}")
    for name, path in report["files"]["evaluation"].items():
        click.echo(f"  {name}: {path}")
    click.echo(f"  training curves: {report['files']['history_png']}")
    click.echo(f"  scores: {report['files']['scores_csv']}")
    click.echo(f"  Grad-CAM panels: {out / 'gradcam'}")
