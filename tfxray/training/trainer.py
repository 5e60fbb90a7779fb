"""Training a classifier from a recipe and a manifest into a run directory.

Run directory:
  model.keras, tfxray.json   the bundle scoring needs (see models/bundle.py)
  recipe.yaml                the resolved recipe (after overrides)
  split.csv                  which image went where (patient-grouped; ``group_by`` names the unit), with every
                             image column of the manifest (series, slice position, fold), so a resumed run
                             rebuilds its inputs
  test.csv, val.csv          the test and validation sides as manifests (absolute paths, every image column,
                             one row per box) for ``tfxray evaluate RUN --data RUN/test.csv``; absent when empty
  history.csv, history.png   per-epoch loss and metrics, rewritten atomically each epoch
  checkpoint/                BackupAndRestore state for --resume, written atomically (removed when done)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Recipe, save_recipe
from ..data.geometry import ImageGeometry
from ..data.inputs import InputBuilder, input_builder
from ..data.manifest import Manifest
from ..data.online import online_augmentation
from ..data.pipeline import training_dataset
from ..data.splits import GROUP_COLUMN, assign_splits, read_split_table
from ..errors import RunError, UserError
from ..io import atomic_write_text
from ..progress import keras_verbose
from ..models.backbones import get_spec
from ..models.bundle import BundleMeta, save_bundle
from ..models.classifier import build_classifier
from ..models.freeze import apply_freeze, format_parameter_table, parameter_table
from .callbacks import AtomicBackupAndRestore, HistoryCSV, PlateauSchedule, RestoreBest
from .schedules import KerasSchedule

SPLIT_FILE = "split.csv"
CHECKPOINT_DIR = "checkpoint"
PHASE_ONE_WEIGHTS = "head-phase.weights.h5"  # staged schedule: the state after the head-only phase
AMPLIFIED_DIR = "amplified"
SIDE_FILES = {"test": "test.csv", "validation": "val.csv"}  # split side -> its manifest in the run folder


@dataclass(frozen=True)
class Restored:
    """The epoch whose weights a training ended on, when it kept its best rather than its last."""

    epoch: int  # 1-based, as history.csv numbers it
    monitor: str
    value: float

    mode: str = "min"

    def line(self) -> str:
        best = "lowest" if self.mode == "min" else "highest"
        return f"restored the weights of epoch {self.epoch} ({best} {self.monitor} {self.value:.4f})"


@dataclass
class TrainResult:
    run_dir: Path
    threshold: float
    threshold_rule: str
    history: pd.DataFrame
    restored: Restored | None = None  # the epoch whose weights were kept (restore_best / early stopping)


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Weight per class n / (k * n_c) (scikit-learn's ``class_weight="balanced"``): each class then
    carries the same total weight n / k. A class absent from ``labels`` gets n / k (it weighs nothing).
    Not sklearn's compute_class_weight: it refuses a class absent from the labels, which a small
    fold or split can have."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    return len(labels) / (n_classes * np.maximum(counts, 1))


def _build_model(recipe: Recipe, geometry: ImageGeometry, mean: float, std: float):
    return build_classifier(
        recipe.model.backbone,
        input_size=geometry.size,
        channels=geometry.channels,
        n_classes=len(recipe.classes),
        weights="none" if recipe.train.init else recipe.model.weights,  # --init's run brings its own
        freeze=recipe.model.freeze,
        normalization=recipe.data.normalization,
        dataset_mean=mean,
        dataset_std=std,
        dropout=recipe.model.dropout,
        l2=recipe.model.l2,
        pooling=recipe.model.pooling,
        gray_input=recipe.model.gray_input,
    )


def _start_from(recipe: Recipe, model, verbose: int) -> dict:
    """``train.init``: copy another run's weights into ``model`` by layer name (``models.transfer``);
    the run it started from, for tfxray.json."""
    from ..models.bundle import load_bundle
    from ..models.transfer import transfer_weights

    if not recipe.train.init:
        return {}
    source = load_bundle(recipe.train.init)
    copied, total = transfer_weights(source.model, model)
    if copied == 0:
        raise UserError(f"--init {recipe.train.init}: no layer of that run matches this model "
                        f"({source.meta.backbone} vs {recipe.model.backbone})")
    if verbose:
        print(f"started from {recipe.train.init}: {copied} of {total} weight tensors copied "
              f"(the rest, e.g. a head for other classes, start fresh)")
    return {"run": str(Path(recipe.train.init).resolve()), "task": source.meta.task, "backbone": source.meta.backbone,
            "copied": copied, "of": total}


def _synchronize_batchnorm(model, on: bool) -> None:
    """With several replicas, BatchNorm statistics come from the global batch, so every
    replica (and every worker) keeps identical moving means and variances."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = on


def _optimizer(recipe: Recipe, total_steps: int, lr_scale: float = 1.0):
    import keras

    t = recipe.train
    s = t.schedule
    if s.name == "plateau":  # a plain variable that PlateauSchedule sets every epoch
        lr = t.lr * lr_scale
    else:
        lr = KerasSchedule(s.name, t.lr * lr_scale, every=s.every, factor=s.factor, total=total_steps, warmup=s.warmup)
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=t.momentum)
    if t.optimizer == "adam":
        return keras.optimizers.Adam(lr, beta_1=t.beta_1)
    return keras.optimizers.AdamW(lr, beta_1=t.beta_1, weight_decay=t.weight_decay or 0.004)


def _dataset_stats(paths, inputs: InputBuilder) -> tuple[float, float]:
    """Mean and std of the training inputs' pixels, for ``normalization: dataset``."""
    total, total_sq, count = 0.0, 0.0, 0
    for path in paths:
        pixels = inputs.load_path(path)[0].astype(np.float64)
        total += pixels.sum()
        total_sq += (pixels**2).sum()
        count += pixels.size
    mean = total / count
    return float(mean), float(max(math.sqrt(max(total_sq / count - mean**2, 0.0)), 1e-6))


def choose_saved_threshold(labels: np.ndarray, scores: np.ndarray, rule: str) -> tuple[float, str]:
    """The operating threshold saved with the model, chosen on the validation split."""
    from ..evaluation.thresholds import choose_threshold

    if len(np.unique(labels)) < 2:
        return 0.5, "fixed 0.5 (validation split has one class only)"
    choice = choose_threshold(labels, scores, rule)
    threshold, note = float(choice.threshold), ""
    # The rule may pick an end of the curve (-inf: call everything positive, +inf: nothing),
    # e.g. when the validation scores do not separate the classes. Save the finite threshold
    # that does the same to scores in [0, 1]: tfxray.json must stay strict JSON, and evaluation
    # and scoring apply it as a number.
    if threshold == -math.inf:
        threshold, note = 0.0, " (no better cut on the validation split: every image is called positive)"
    elif threshold == math.inf:
        threshold, note = float(np.nextafter(1.0, 2.0)), " (no better cut on the validation split: no image is called positive)"
    return threshold, f"{choice.rule} on the validation split{note}"


def train(
    recipe: Recipe,
    manifest: Manifest,
    run_dir: str | Path,
    *,
    resume: bool = False,
    allow_leaks: bool = False,
    verbose: int = 1,
    budget_source: str = "",
) -> TrainResult:
    """Train ``recipe`` on ``manifest`` into ``run_dir`` (see the module docstring for its files).

    ``preflight.check_training`` runs first, before anything is made; a training that fails before
    its first epoch is done removes what it made (``rundir.removed_unless``), so the same command
    can simply be run again. The recipe's precision (Keras' global dtype policy) and op
    determinism are set for this training only and put back when it ends
    (``distribute.training_settings``). ``budget_source`` (e.g. 'command line') is printed with the
    budget.
    """
    from .distribute import make_strategy, training_settings
    from .preflight import check_training
    from .rundir import removed_unless

    check_training(recipe)
    run_dir = Path(run_dir)

    def started() -> bool:  # a finished epoch is worth keeping: --resume continues from it
        return resume or any(run_dir.glob("history.csv")) or any(run_dir.glob("worker-*/history.csv"))

    with removed_unless(run_dir, started):
        strategy = make_strategy(recipe.train.strategy)  # before any other TensorFlow work
        with training_settings(recipe.train.precision, recipe.train.deterministic, verbose):
            return _train(recipe, manifest, run_dir, strategy, resume=resume, allow_leaks=allow_leaks, verbose=verbose,
                          budget_source=budget_source)


def _train(recipe: Recipe, manifest: Manifest, run_dir: Path, strategy, *, resume: bool, allow_leaks: bool,
           verbose: int, budget_source: str = "") -> TrainResult:
    """The steps: rows (``prepare_rows``) -> inputs (``build_inputs``) -> model -> phases (``_fit_phases``)
    -> threshold and bundle (``_finalize``)."""
    import keras

    from .distribute import is_chief

    if not is_chief(strategy):  # in a multi-worker run only the chief writes the run directory itself
        run_dir = run_dir / f"worker-{strategy.cluster_resolver.task_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(recipe.train.seed)
    geometry = ImageGeometry(recipe.data.input_size, recipe.data.channels, recipe.data.resize)

    save_recipe(recipe, run_dir / "recipe.yaml")
    if recipe.is_detection:
        from .detection import train_detector

        return train_detector(recipe, manifest, run_dir, strategy, resume=resume, allow_leaks=allow_leaks,
                              verbose=verbose, budget_source=budget_source)
    rows = prepare_rows(recipe, manifest, run_dir, geometry, resume=resume, allow_leaks=allow_leaks, verbose=verbose)
    replicas = strategy.num_replicas_in_sync
    plan = fit_plan(recipe, len(rows.train), replicas)
    if verbose:
        print(f"budget: {describe_budget(recipe, plan)}" + (f" ({budget_source})" if budget_source else ""))
    inputs = build_inputs(recipe, rows, geometry, plan, verbose=verbose)

    mean, std = 0.0, 1.0
    if recipe.data.normalization == "dataset":
        mean, std = _dataset_stats(rows.train["path"].tolist(), rows.train_inputs)
    with strategy.scope():
        model = _build_model(recipe, geometry, mean, std)
        started_from = _start_from(recipe, model, verbose)
    _synchronize_batchnorm(model, replicas > 1)
    if verbose:
        print(format_parameter_table(parameter_table(model, recipe.model.backbone)))
        if replicas > 1:
            print(f"{type(strategy).__name__}: {replicas} replicas, global batch {plan.batch}")

    lr_scale = replicas if recipe.train.scale_lr else 1
    phase, restored = _fit_phases(recipe, model, inputs, plan, strategy, run_dir, resume=resume, lr_scale=lr_scale,
                                  verbose=verbose)
    result = _finalize(recipe, model, phase, rows.y_val, geometry, run_dir, split_table=rows.table,
                       started_from=started_from)
    result.restored = restored
    return result


# --------------------------------------------------------------------------- step 1: rows


@dataclass
class RunRows:
    """What every step reads: the split table (every image column of the manifest, with ``split``),
    the manifest's box table, and the rows and labels of the training and validation sides.

    ``train_inputs`` and ``val_inputs`` build each side's model inputs (``data.inputs``): plain
    images, or a CT slice's region and neighbours, found in the whole table. Offline amplification
    replaces the training rows with the written variants (``source`` names the original), whose
    inputs are the written files.
    """

    table: pd.DataFrame
    boxes: pd.DataFrame
    train: pd.DataFrame
    validation: pd.DataFrame
    y_train: np.ndarray
    y_val: np.ndarray
    train_inputs: InputBuilder
    val_inputs: InputBuilder


def prepare_rows(recipe: Recipe, manifest: Manifest, run_dir: Path, geometry: ImageGeometry, *, resume: bool = False,
                 allow_leaks: bool = False, verbose: int = 0) -> RunRows:
    """The split table (written to ``split.csv``; read back from it on resume), each side's rows,
    CT input rows and offline amplification of the training side."""
    split_path = run_dir / SPLIT_FILE
    if resume and split_path.is_file():
        table = read_split_table(split_path)
    else:
        table = assign_splits(manifest.images, recipe.data.split, seed=recipe.train.seed, allow_leaks=allow_leaks)
        atomic_write_text(split_path, table.to_csv(index=False))
    write_side_manifests(manifest, table, run_dir)
    boxes = manifest.boxes
    if verbose:
        print(split_summary(table))

    train_rows = table[table["split"] == "train"].reset_index(drop=True)
    val_rows = table[table["split"] == "validation"].reset_index(drop=True)
    if train_rows.empty:
        raise UserError("split: the training split is empty")
    if train_rows["label"].nunique() < 2:
        raise UserError("split: the training split holds one class only")
    if recipe.train.schedule.name == "plateau" and val_rows.empty:
        raise UserError("train.schedule.name: plateau follows the validation loss, but the validation split is empty "
                        "(give data.split a validation share, or mark rows 'validation' in the manifest)")

    # decided once; neighbours come from the whole table (a side alone would lose some)
    inputs = input_builder(geometry, roi=recipe.data.roi, neighbours=recipe.data.neighbours, images=table, boxes=boxes)
    train_inputs = inputs
    if recipe.augment.offline.factor > 1:  # the training split only; validation and test stay as they are
        from ..data.augment import amplify_offline

        train_rows, train_inputs = amplify_offline(
            train_rows, inputs, recipe.augment.offline, recipe.train.seed, run_dir / AMPLIFIED_DIR,
            progress=verbose > 0,
        )
        if verbose:
            print(f"offline amplification: {train_rows['source'].nunique()} training images -> {len(train_rows)}")

    class_index = {c: i for i, c in enumerate(recipe.classes)}
    return RunRows(table, boxes, train_rows, val_rows, train_rows["label"].map(class_index).to_numpy(),
                   val_rows["label"].map(class_index).to_numpy(), train_inputs, inputs)


def write_side_manifests(manifest: Manifest, table: pd.DataFrame, run_dir: Path) -> dict[str, Path]:
    """``test.csv`` and ``val.csv``: the manifest's rows of each side (``SIDE_FILES``), as a manifest
    holds them (absolute paths, every image column, one row per box; the split itself left out,
    the file is the side), written atomically. A side without images gets no file."""
    written = {}
    for side, name in SIDE_FILES.items():
        paths = set(table.loc[table["split"] == side, "path"])
        if not paths:
            (run_dir / name).unlink(missing_ok=True)
            continue
        rows = manifest.subset(manifest.images["path"].isin(paths).to_numpy()).table()
        atomic_write_text(run_dir / name, rows.drop(columns=["split"], errors="ignore").to_csv(index=False))
        written[side] = run_dir / name
    return written


def split_summary(table: pd.DataFrame) -> str:
    """'split: 48 train / 6 validation / 6 test images, grouped by patient_id' (from a split table)."""
    counts = table["split"].value_counts()
    sides = " / ".join(f"{int(counts.get(side, 0))} {side}" for side in ("train", "validation", "test"))
    unit = table[GROUP_COLUMN].iloc[0] if GROUP_COLUMN in table.columns and len(table) else "patient_id"
    return f"split: {sides} images, grouped by {unit}"


# --------------------------------------------------------------------------- step 2: inputs


@dataclass(frozen=True)
class FitPlan:
    """Batch and steps, computed once and shared by both phases."""

    batch: int  # global batch: per-replica batch x replicas
    steps_per_epoch: int
    epochs: int  # of the first phase
    repeat: bool  # an iteration budget: the training data repeats without end
    balanced: bool  # class_balance: balanced: classes drawn equally from an endless stream

    @property
    def fit_steps(self) -> int | None:
        """``steps_per_epoch`` for fit when the training stream is endless (it cannot end an epoch itself)."""
        return self.steps_per_epoch if (self.repeat or self.balanced) else None


def fit_plan(recipe: Recipe, n_train: int, replicas: int = 1) -> FitPlan:
    batch = recipe.train.batch_size * replicas
    steps_per_epoch = max(1, math.ceil(n_train / batch))
    epochs = recipe.train.epochs
    repeat = recipe.train.iterations > 0
    if repeat:  # whole epochs of (at most) one pass each; overshoot below one epoch
        steps_per_epoch = min(steps_per_epoch, recipe.train.iterations)
        epochs = math.ceil(recipe.train.iterations / steps_per_epoch)
    return FitPlan(batch, steps_per_epoch, epochs, repeat, recipe.data.class_balance == "balanced")


def describe_budget(recipe: Recipe, plan: FitPlan) -> str:
    """'3 epochs of 6 steps' or '20000 iterations = 225 epochs of 89 steps' (+ fine-tuning epochs)."""
    steps = f"{plan.epochs} epoch{'s' if plan.epochs != 1 else ''} of {plan.steps_per_epoch} step" + \
        ("s" if plan.steps_per_epoch != 1 else "")
    text = f"{recipe.train.iterations} iterations = {steps}" if plan.repeat else steps
    if recipe.train.finetune_epochs > 0:
        text += f", then {recipe.train.finetune_epochs} fine-tuning epoch(s)"
    return text


INPUT_KINDS = ("features", "images", "ct")


def input_kind(recipe: Recipe, augmented: bool) -> tuple[str, str]:
    """What the first phase trains on (one of ``INPUT_KINDS``) and, when the feature cache was
    asked for but cannot be used, why."""
    pixels = "ct" if (recipe.data.roi or recipe.data.neighbours) else "images"
    frozen_backbone = recipe.model.freeze == "all-but-top"
    if not (frozen_backbone and recipe.train.feature_cache):
        return pixels, ""
    if augmented:
        return pixels, "feature cache off: online augmentation changes the backbone's input every epoch"
    if pixels == "ct":
        return pixels, "feature cache off: CT inputs are built from several slices and a box"
    return "features", ""


@dataclass
class Phase:
    """What one training phase fits: the model (the full one, or the head on cached features)
    and its data."""

    model: object
    train: object
    validation: object | None
    val_features: np.ndarray | None = None  # the head's validation inputs, when it trains on features

    def validation_scores(self) -> np.ndarray:
        if self.val_features is not None:  # one call of the small head: no predict function to trace
            return np.asarray(self.model(self.val_features, training=False), dtype=np.float32)
        return self.model.predict(self.validation, verbose=0)


class Inputs:
    """The training inputs, decided once (``input_kind``).

    ``features``: the frozen backbone's pooled output, computed once and cached, and the first
    phase fits the head alone on it; ``images``: the tf.data image pipeline; ``ct``: the same
    pipeline over CT rows (a slice, its neighbours and a box). A fine-tuning phase changes the
    backbone, so it always reads pixels (images or CT rows).
    """

    def __init__(self, kind: str, rows: RunRows, geometry: ImageGeometry, plan: FitPlan, *, augment=None,
                 sample_weights: np.ndarray | None = None, seed: int = 0, cache_dir: Path | None = None):
        if kind not in INPUT_KINDS:
            raise ValueError(f"input kind {kind!r} (expected one of {INPUT_KINDS})")
        self.kind, self.rows, self.geometry, self.plan = kind, rows, geometry, plan
        self.augment, self.sample_weights, self.seed, self.cache_dir = augment, sample_weights, seed, cache_dir

    def first_phase(self, model, strategy, verbose: int = 0) -> Phase:
        if self.kind == "features":
            return self._features_phase(model, strategy, verbose)
        return Phase(model, *self._pixels(self.seed))

    def fine_tuning(self, model) -> Phase:
        return Phase(model, *self._pixels(self.seed + 1))

    def _pixels(self, seed: int):
        rows = self.rows
        train = self._dataset(rows.train, rows.y_train, shuffle=True, seed=seed, train_side=True)
        val = self._dataset(rows.validation, rows.y_val, shuffle=False, seed=0, train_side=False) \
            if len(rows.validation) else None
        return train, val

    def _dataset(self, rows: pd.DataFrame, labels: np.ndarray, *, shuffle: bool, seed: int, train_side: bool):
        options = dict(batch_size=self.plan.batch, shuffle=shuffle, seed=seed)
        if train_side:
            options.update(augment=self.augment, sample_weights=self.sample_weights, repeat=self.plan.repeat,
                           balanced=self.plan.balanced)
        inputs = self.rows.train_inputs if train_side else self.rows.val_inputs
        return training_dataset(rows["path"].tolist(), labels, inputs, **options)

    def _features_phase(self, model, strategy, verbose: int) -> Phase:
        from .features import cached_features, feature_dataset, head_model

        rows, plan = self.rows, self.plan
        train_paths, val_paths = rows.train["path"].tolist(), rows.validation["path"].tolist()
        # one pass for both splits: the extractor is traced once
        features, computed = cached_features(model, train_paths + val_paths, self.geometry, cache_dir=self.cache_dir,
                                             progress=verbose > 0)
        x_train, x_val = features[: len(train_paths)], (features[len(train_paths):] if val_paths else None)
        if verbose:
            total = len(train_paths) + len(val_paths)
            print(f"feature cache: {total - computed} of {total} images reused")
        with strategy.scope():
            head = head_model(model)  # shares its layers with ``model``
        train = feature_dataset(x_train, rows.y_train, self.sample_weights, plan.batch, self.seed, shuffle=True,
                                repeat=plan.repeat, balanced=plan.balanced)
        val = feature_dataset(x_val, rows.y_val, None, plan.batch, 0, shuffle=False) if x_val is not None else None
        return Phase(head, train, val, val_features=x_val)


def build_inputs(recipe: Recipe, rows: RunRows, geometry: ImageGeometry, plan: FitPlan, verbose: int = 0) -> Inputs:
    """The inputs of both phases, with the online augmentation and per-sample class weights."""
    augment = online_augmentation(recipe.augment.online, recipe.train.seed)
    kind, note = input_kind(recipe, augment is not None)
    if note and verbose:
        print(note)
    sample_weights = None
    if recipe.data.class_balance == "weights":
        sample_weights = balanced_class_weights(rows.y_train, len(recipe.classes))[rows.y_train]
    return Inputs(kind, rows, geometry, plan, augment=augment, sample_weights=sample_weights, seed=recipe.train.seed,
                  cache_dir=Path(recipe.train.cache_dir) if recipe.train.cache_dir else None)


# --------------------------------------------------------------------------- step 3: phases


def _fit_phases(recipe: Recipe, model, inputs: Inputs, plan: FitPlan, strategy, run_dir: Path, *, resume: bool,
                lr_scale: float, verbose: int) -> tuple[Phase, Restored | None]:
    """The head (or whole model) for ``plan.epochs``, then, with ``finetune_epochs``, deeper layers
    at the learning rate x ``finetune_lr_factor``; each phase resumable. Returns the last phase and
    the epoch its weights were restored from, if any."""
    import keras

    binary = len(recipe.classes) == 2
    loss = "binary_crossentropy" if binary else "sparse_categorical_crossentropy"

    def compile_for(fit_model, epochs: int, scale: float) -> None:
        metrics = [keras.metrics.AUC(name="auc")] if binary else ["accuracy"]
        with strategy.scope():
            fit_model.compile(optimizer=_optimizer(recipe, plan.steps_per_epoch * epochs, scale), loss=loss,
                              metrics=metrics)

    phase = inputs.first_phase(model, strategy, verbose)
    compile_for(phase.model, plan.epochs, lr_scale)
    phase_one_done = run_dir / PHASE_ONE_WEIGHTS
    restored = None
    if resume and phase_one_done.is_file():  # resuming inside the fine-tuning phase
        model.load_weights(phase_one_done)
    else:
        restored = _fit(phase.model, phase.train, phase.validation, recipe, run_dir, CHECKPOINT_DIR, plan.epochs, 0,
                        verbose, plan.fit_steps, lr=recipe.train.lr * lr_scale)

    finetune = recipe.train.finetune_epochs
    if finetune > 0:
        # Staged schedule: the head first, then deeper layers at the learning rate / 10.
        if not phase_one_done.is_file():
            model.save_weights(phase_one_done)
        apply_freeze(model, recipe.model.backbone, recipe.model.unfreeze or "none")
        if verbose:
            print(f"fine-tuning with freeze {recipe.model.unfreeze or 'none'} for {finetune} epoch(s) "
                  f"at lr x {recipe.train.finetune_lr_factor}")
            print(format_parameter_table(parameter_table(model, recipe.model.backbone)))
        phase = inputs.fine_tuning(model)
        scale = lr_scale * recipe.train.finetune_lr_factor
        compile_for(model, finetune, scale)
        restored = _fit(model, phase.train, phase.validation, recipe, run_dir, CHECKPOINT_DIR + "-finetune",
                        plan.epochs + finetune, plan.epochs, verbose, plan.fit_steps, lr=recipe.train.lr * scale)
    return phase, restored


def _fit(model, train_data, val_data, recipe: Recipe, run_dir: Path, checkpoint: str, epochs: int, initial_epoch: int,
         verbose: int, steps_per_epoch: int | None = None, lr: float = 0.0, extra_callbacks=(),
         monitor: tuple[str, str] = ("val_loss", "min")) -> Restored | None:
    """One training phase with the run directory's callbacks; resumable from its checkpoint.

    At an epoch's end the plateau schedule (if any) sets the next rate, history.csv is written,
    the best epoch so far is noted (``RestoreBest``), and only then is the checkpoint saved,
    with the best epoch's weights (atomically: ``AtomicBackupAndRestore``). A run killed between
    the two resumes by re-running the epoch (its history row is replaced), never with a
    checkpoint ahead of history.csv, from which the plateau schedule recomputes the rate.

    Returns the epoch whose weights the model ends with when that is the best, not the last
    (``restore_best``, or early stopping without it), also marked on history.png.
    ``extra_callbacks`` run first at an epoch's end (a detector's validation AUC adds its log
    there); ``monitor`` is what the best epoch is judged on, and in which direction.
    """
    import keras
    import tensorflow as tf

    callbacks = list(extra_callbacks)
    s = recipe.train.schedule
    if s.name == "plateau":
        callbacks.append(PlateauSchedule(
            run_dir / "history.csv", first_epoch=initial_epoch, lr=lr, factor=s.factor, patience=s.patience,
            min_delta=s.min_delta, cooldown=s.cooldown, min_lr=s.min_lr,
        ))
    watched, mode = monitor
    best = RestoreBest(watched, mode) if recipe.train.restore_best and val_data is not None else None
    stopping = None
    if recipe.train.early_stopping > 0 and val_data is not None:
        # RestoreBest, when on, restores (its best survives a resume); else early stopping does
        stopping = keras.callbacks.EarlyStopping(monitor=watched, mode=mode, patience=recipe.train.early_stopping,
                                                 restore_best_weights=best is None)

    def restored() -> Restored | None:
        if best is not None and best.best_epoch is not None:
            return Restored(best.best_epoch, best.monitor, best.best, mode)
        if stopping is not None and stopping.best_weights is not None:
            return Restored(stopping.best_epoch + 1, stopping.monitor, float(stopping.best), mode)
        return None

    callbacks.append(HistoryCSV(run_dir / "history.csv", run_dir / "history.png", restored=restored))
    if best is not None:
        callbacks.append(best)  # before the checkpoint, which saves its best epoch
    callbacks += [
        AtomicBackupAndRestore(str(run_dir / checkpoint), save_freq="epoch", delete_checkpoint=True, best=best),
        keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False),
        keras.callbacks.TerminateOnNaN(),
    ]
    if stopping is not None:
        callbacks.append(stopping)
    _create_variables_before_tracing(model)
    try:
        model.fit(
            train_data, validation_data=val_data, epochs=epochs, initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=keras_verbose(verbose),
            shuffle=False,  # the dataset shuffles itself, seeded
        )
    except tf.errors.InvalidArgumentError as exc:  # a file that fails to decode mid-training
        raise RunError(f"training stopped: {str(exc.message).splitlines()[0]}") from None
    if model.stop_training and not np.isfinite(model.history.history.get("loss", [np.nan])[-1]):
        raise RunError("training stopped: the loss became NaN (lower train.lr?)")
    return restored()


def _create_variables_before_tracing(model) -> None:
    """Create eagerly what the first traced train step would otherwise create: the optimizer's slots and
    Keras' global seed generator (keras-cv's box samplers draw unseeded). A variable created inside the
    trace makes tf.function trace the whole step a second time, about half of a small model's first epoch."""
    try:  # keras has no public accessor for its global generator; this only creates it where the step would
        from keras.src.random.seed_generator import global_seed_generator
    except ImportError:  # another Keras: the step may trace twice, nothing worse
        global_seed_generator = None
    with model.distribute_strategy.scope():
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        if global_seed_generator is not None:
            global_seed_generator()


# --------------------------------------------------------------------------- step 4: threshold and bundle


def _finalize(recipe: Recipe, model, phase: Phase, y_val: np.ndarray, geometry: ImageGeometry,
              run_dir: Path, split_table: pd.DataFrame | None = None, started_from: dict | None = None) -> TrainResult:
    """The operating threshold (on the validation split, with the last phase's model) and the bundle,
    with the profile of the training split's images (``split_table``; before any amplification)."""
    from ..data.profile import training_profile

    threshold, rule = 0.5, "fixed 0.5 (no validation split)"
    if phase.validation is not None and len(recipe.classes) == 2:
        threshold, rule = choose_saved_threshold(y_val, phase.validation_scores()[:, 0], recipe.evaluate.threshold)
    _synchronize_batchnorm(model, False)  # the saved model runs on one device
    meta = BundleMeta(
        classes=list(recipe.classes),
        input_size=geometry.size,
        channels=geometry.channels,
        resize=geometry.resize,
        backbone=recipe.model.backbone,
        threshold=threshold,
        threshold_rule=rule,
        gradcam_layer=get_spec(recipe.model.backbone).gradcam_layer,
        roi=recipe.data.roi,
        neighbours=recipe.data.neighbours,
        gray_input=recipe.model.gray_input,
        recipe=recipe.to_dict(),
        trained_on=training_profile(split_table.loc[split_table["split"] == "train", "path"])
        if split_table is not None else {},
        started_from=started_from or {},
    )
    save_bundle(model, meta, run_dir)
    (run_dir / PHASE_ONE_WEIGHTS).unlink(missing_ok=True)
    history = pd.read_csv(run_dir / "history.csv")
    return TrainResult(run_dir, threshold, rule, history)
