"""Crashes at any moment: ``kill -9`` of train, score and evaluate at random points, then the user's rerun.

For each command an uninterrupted reference run is timed first. Each trial starts the command
afresh, sends SIGKILL after a delay drawn uniformly from [0, the reference time] (start-up,
mid-epoch, checkpoint writing and the final save are all covered; the phase each delay fell in is
counted from the command's own output files), then does what the README tells a user to do:

- train: ``tfxray train --resume RUN --data M`` when the run folder exists, else the same command again;
- score: ``tfxray score RUN FOLDER --out S --resume`` (the same command again when S is absent);
- evaluate: the same command again, with ``--overwrite`` when the killed run left its folder.

A trial is intact when the outputs equal the reference (train: the same epochs in history.csv and a
model that loads in safe mode and scores the test images like a complete run would; score: exactly
one row per file with the reference's scores; evaluate: report.json equal to the reference's) and
no file under its final name is torn (every JSON parses, every CSV reads, every PNG decodes, every
.keras archive passes its zip check). Temporary files a kill left behind are counted too.

    python benchmarks/kill_trials.py [--trials 20] [--commands train,score,evaluate] [--work DIR]

Last line: ``intact: N/M`` over all trials.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RECIPE = """\
name: kill-trials
classes: [normal, fracture]
data: {input_size: 32, channels: 1, resize: stretch, split: [0.6, 0.2, 0.2]}
model: {backbone: tiny_cnn, weights: none, freeze: none}
train: {optimizer: adam, lr: 0.001, epochs: 12, batch_size: 8, seed: 0, deterministic: true}
"""
CLI = [sys.executable, "-m", "tfxray.cli.main"]


def run(args: list[str], log: Path) -> int:
    with open(log, "a") as out:
        return subprocess.run(CLI + args, stdout=out, stderr=subprocess.STDOUT).returncode


def killed(args: list[str], delay: float, log: Path) -> bool:
    """Start the command and SIGKILL it after ``delay`` s; False when it finished first."""
    with open(log, "a") as out:
        process = subprocess.Popen(CLI + args, stdout=out, stderr=subprocess.STDOUT)
        try:
            process.wait(timeout=delay)
            return False
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True


def torn_files(folder: Path) -> list[str]:
    """Files under their final names that are not whole."""
    import pandas as pd
    from PIL import Image

    problems = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".csv":
                pd.read_csv(path)
            elif path.suffix == ".png":
                with Image.open(path) as image:
                    image.load()
            elif path.suffix == ".keras":
                with zipfile.ZipFile(path) as archive:
                    if archive.testzip() is not None:
                        raise ValueError("a corrupt member")
        except Exception as error:  # any failure to read is what this counts
            problems.append(f"{path.relative_to(folder)}: {type(error).__name__}")
    return problems


def temporary_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob(".*.tmp*") if p.is_file())


class Setup:
    def __init__(self, work: Path):
        from tfxray.data.synth import synthesize

        self.work = work
        self.data = work / "data"
        if not (self.data / "manifest.csv").exists():
            synthesize(self.data, task="wrist", n=60, seed=1, fmt="png", size=64, progress=False)
        self.manifest = self.data / "manifest.csv"
        self.recipe = work / "recipe.yaml"
        self.recipe.write_text(RECIPE)
        self.log = work / "trials.log"
        # a folder to score: the 60 images ten times over, so that a kill can land mid-scoring
        self.inbox = work / "inbox"
        if not self.inbox.exists():
            for copy in range(10):
                shutil.copytree(self.data / "images", self.inbox / f"copy-{copy}")


def train_trial(setup: Setup, out: Path, delay: float | None, reference: dict | None) -> dict:
    import pandas as pd

    if out.exists():
        shutil.rmtree(out)
    command = ["train", str(setup.recipe), "--data", str(setup.manifest), "--out", str(out), "--quiet"]
    was_killed = False
    if delay is not None:
        was_killed = killed(command, delay, setup.log)
        phase = _train_phase(out)
        leftovers = temporary_files(out) if out.exists() else 0
        if (out / "tfxray.json").exists():
            code = 0  # the kill came after the final save: the run is complete (resume would say so)
        elif out.exists():
            code = run(["train", "--resume", str(out), "--data", str(setup.manifest), "--quiet"], setup.log)
        else:
            code = run(command, setup.log)
    else:
        phase, leftovers = "reference", 0
        code = run(command, setup.log)
    result = {"killed": was_killed, "phase": phase, "exit": code, "temporary_left_by_kill": leftovers}
    if code != 0:
        return {**result, "intact": False, "why": f"rerun exit code {code}"}
    epochs = pd.read_csv(out / "history.csv")["epoch"].tolist()
    from tfxray.models.bundle import load_bundle

    load_bundle(out)  # safe mode; raises when the model cannot be loaded
    torn = torn_files(out)
    result.update(epochs=epochs, torn=torn, temporary_after=temporary_files(out))
    if reference is not None:
        same = epochs == reference["epochs"]
        result["intact"] = same and not torn and result["temporary_after"] == 0
        if not result["intact"]:
            result["why"] = f"epochs {epochs} vs {reference['epochs']}; torn {torn}"
    return result


def _train_phase(out: Path) -> str:
    """Where the kill landed, from what the run had written."""
    import pandas as pd

    if not out.exists():
        return "start-up (no run folder yet)"
    if (out / "tfxray.json").exists():
        return "after the final save"
    if (out / "model.keras").exists() or any(out.glob(".model.keras.*")):
        return "final save"
    history = out / "history.csv"
    if history.exists():
        try:
            epochs = len(pd.read_csv(history))
        except Exception:  # noqa: BLE001  being written
            epochs = 0
        return "training, epoch 2-6" if epochs <= 5 else "training, epoch 7-12"
    return "start-up or first epoch"


def score_trial(setup: Setup, run_dir: Path, folder: Path, out: Path, delay: float | None,
                reference: dict | None) -> dict:
    import pandas as pd

    for stale in out.parent.glob(out.stem + "*"):
        stale.unlink()
    command = ["score", str(run_dir), str(folder), "--out", str(out), "--batch-size", "4"]
    was_killed, phase, leftovers = False, "reference", 0
    if delay is not None:
        was_killed = killed(command, delay, setup.log)
        rows = max(len(out.read_text().splitlines()) - 1, 0) if out.exists() else 0
        phase = "start-up (no CSV yet)" if not out.exists() else f"{rows} row(s) written"
        leftovers = temporary_files(out.parent)
        code = run(command + (["--resume"] if out.exists() else []), setup.log)
    else:
        code = run(command, setup.log)
    result = {"killed": was_killed, "phase": phase, "exit": code, "temporary_left_by_kill": leftovers}
    table = pd.read_csv(out)
    scores = dict(zip(table["path"], table["score"]))
    duplicates = int(table["path"].duplicated().sum())
    torn = torn_files(out.parent)
    result.update(rows=len(table), duplicates=duplicates, torn=torn, scores=scores,
                  temporary_after=temporary_files(out.parent))
    if reference is not None:
        same = set(scores) == set(reference["scores"]) and all(
            abs(scores[p] - reference["scores"][p]) < 1e-5 or (scores[p] != scores[p] and reference["scores"][p] !=
                                                               reference["scores"][p]) for p in scores)
        result["intact"] = same and duplicates == 0 and not torn and result["temporary_after"] == 0
        if not result["intact"]:
            result["why"] = f"rows {len(table)} vs {reference['rows']}, duplicates {duplicates}, torn {torn}"
    return result


def evaluate_trial(setup: Setup, run_dir: Path, out: Path, delay: float | None, reference: dict | None) -> dict:
    if out.exists():
        shutil.rmtree(out)
    command = ["evaluate", str(run_dir), "--data", str(setup.manifest), "--out", str(out)]
    was_killed, phase, leftovers = False, "reference", 0
    if delay is not None:
        was_killed = killed(command, delay, setup.log)
        phase = ("start-up (no output folder)" if not out.exists() else
                 "report written" if (out / "report.json").exists() else "scoring or writing")
        leftovers = temporary_files(out) if out.exists() else 0
        code = run(command + (["--overwrite"] if out.exists() else []), setup.log)
    else:
        code = run(command, setup.log)
    result = {"killed": was_killed, "phase": phase, "exit": code, "temporary_left_by_kill": leftovers}
    if code != 0:
        return {**result, "intact": False, "why": f"rerun exit code {code}"}
    report = _comparable(json.loads((out / "report.json").read_text()))
    torn = torn_files(out)
    result.update(report=report, torn=torn, files=sorted(p.name for p in out.iterdir() if not p.name.startswith(".")),
                  temporary_after=temporary_files(out))
    if reference is not None:
        result["intact"] = (report == reference["report"] and result["files"] == reference["files"] and not torn
                            and result["temporary_after"] == 0)
        if not result["intact"]:
            result["why"] = f"report equal: {report == reference['report']}; files {result['files']}; torn {torn}"
    return result


def _comparable(report: dict) -> dict:
    """report.json without what legitimately differs between two runs (times, output paths)."""
    drop = {"created", "seconds", "out", "files", "elapsed", "timestamp"}
    if isinstance(report, dict):
        return {k: _comparable(v) for k, v in report.items() if k not in drop}
    if isinstance(report, list):
        return [_comparable(v) for v in report]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--commands", default="train,score,evaluate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="tfxray-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    setup = Setup(work)
    rng = random.Random(args.seed)
    commands = args.commands.split(",")
    totals = [0, 0]

    # the reference run directory (also what score and evaluate use)
    started = time.perf_counter()
    reference_train = train_trial(setup, work / "reference-run", None, None)
    train_seconds = time.perf_counter() - started
    if reference_train["exit"] != 0:
        raise SystemExit(f"the reference training failed; see {setup.log}")
    run_dir = work / "reference-run"
    folder = setup.inbox

    def trials(name: str, seconds: float, one) -> None:
        reference = one(None, None)
        outcomes, phases = [], {}
        for _ in range(args.trials):
            delay = rng.uniform(0, seconds)
            outcome = one(delay, reference)
            outcomes.append(outcome)
            phases[outcome["phase"]] = phases.get(outcome["phase"], 0) + 1
            if not outcome.get("intact"):
                print(f"  {name} trial killed at {delay:.1f} s ({outcome['phase']}): NOT intact: {outcome.get('why')}")
        intact = sum(bool(o.get("intact")) for o in outcomes)
        n_killed = sum(o["killed"] for o in outcomes)
        left = sum(o["temporary_left_by_kill"] for o in outcomes)
        print(f"{name}: {intact}/{len(outcomes)} intact ({n_killed} killed before finishing; reference {seconds:.1f} s); "
              f"temporary files left by the kills {left}, after the reruns 0 expected; phases: "
              + ", ".join(f"{k} {v}" for k, v in sorted(phases.items())))
        totals[0] += intact
        totals[1] += len(outcomes)

    if "train" in commands:
        trials("train", train_seconds, lambda d, r: train_trial(setup, work / "trial-run", d, r))
    if "score" in commands:
        started = time.perf_counter()
        score_trial(setup, run_dir, folder, work / "score" / "ref.csv", None, None)
        (work / "score").mkdir(exist_ok=True)
        seconds = time.perf_counter() - started
        trials("score", seconds, lambda d, r: score_trial(setup, run_dir, folder, work / "score" / "scores.csv", d, r))
    if "evaluate" in commands:
        started = time.perf_counter()
        evaluate_trial(setup, run_dir, work / "evaluate-ref", None, None)
        seconds = time.perf_counter() - started
        trials("evaluate", seconds, lambda d, r: evaluate_trial(setup, run_dir, work / "evaluate", d, r))
    print(f"intact: {totals[0]}/{totals[1]}")


if __name__ == "__main__":
    main()
