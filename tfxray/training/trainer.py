"""Training a classifier from a recipe and a manifest into a run directory.

Run directory:
  model.keras, tfxray.json   the bundle scoring needs (see models/bundle.py)
  recipe.yaml                the resolved recipe (after overrides)
  split.csv                  which image went where (patient-grouped)
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
from ..data.manifest import Manifest
from ..data.online import online_augmentation
from ..data.pipeline import ImageGeometry, training_dataset
from ..data.splits import check_user_split, holdout_assignments
from ..errors import RunError, UserError
from ..io import atomic_write_text
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


@dataclass
class TrainResult:
    run_dir: Path
    threshold: float
    threshold_rule: str
    history: pd.DataFrame


def assign_splits(manifest: Manifest, recipe: Recipe, allow_leaks: bool = False) -> pd.DataFrame:
    """The manifest's own split column (checked for leaks) or a patient-grouped holdout split."""
    images = manifest.images
    if "split" in images.columns and images["split"].notna().all():
        check_user_split(images, "split", allow_leaks=allow_leaks)
        split = images["split"].astype(str).to_numpy()
    else:
        split = holdout_assignments(images, tuple(recipe.data.split), seed=recipe.train.seed)
    table = images[["path", "label", "patient_id"]].copy()
    if "study_id" in images.columns:
        table["study_id"] = images["study_id"]
    table["split"] = split
    return table


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
        weights=recipe.model.weights,
        freeze=recipe.model.freeze,
        normalization=recipe.data.normalization,
        dataset_mean=mean,
        dataset_std=std,
        dropout=recipe.model.dropout,
        l2=recipe.model.l2,
        pooling=recipe.model.pooling,
        gray_input=recipe.model.gray_input,
    )


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


def _dataset_stats(paths, geometry: ImageGeometry) -> tuple[float, float]:
    """Mean and std of the training split's pixels, for ``normalization: dataset``."""
    from ..data.pipeline import load_resized

    total, total_sq, count = 0.0, 0.0, 0
    for path in paths:
        pixels = load_resized(path, geometry).astype(np.float64)
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
) -> TrainResult:
    """Train ``recipe`` on ``manifest`` into ``run_dir`` (see the module docstring for its files).

    The recipe's precision (Keras' global dtype policy) and op determinism are set for this
    training only and put back when it ends (``distribute.training_settings``).
    """
    from .distribute import make_strategy, training_settings

    strategy = make_strategy(recipe.train.strategy)  # before any other TensorFlow work
    with training_settings(recipe.train.precision, recipe.train.deterministic, verbose):
        return _train(recipe, manifest, Path(run_dir), strategy, resume=resume, allow_leaks=allow_leaks, verbose=verbose)


def _train(recipe: Recipe, manifest: Manifest, run_dir: Path, strategy, *, resume: bool, allow_leaks: bool,
           verbose: int) -> TrainResult:
    import keras

    from .distribute import is_chief

    if not is_chief(strategy):  # in a multi-worker run only the chief writes the run directory itself
        run_dir = run_dir / f"worker-{strategy.cluster_resolver.task_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(recipe.train.seed)
    if list(manifest.classes) != list(recipe.classes):
        manifest = Manifest(manifest.images, manifest.boxes, list(recipe.classes), manifest.source)

    split_path = run_dir / SPLIT_FILE
    if resume and split_path.is_file():
        table = pd.read_csv(split_path, dtype={"patient_id": str, "study_id": str})
    else:
        table = assign_splits(manifest, recipe, allow_leaks=allow_leaks)
        atomic_write_text(split_path, table.to_csv(index=False))
    save_recipe(recipe, run_dir / "recipe.yaml")

    class_index = {c: i for i, c in enumerate(recipe.classes)}
    train_rows = table[table["split"] == "train"]
    val_rows = table[table["split"] == "validation"]
    if train_rows.empty:
        raise UserError("split: the training split is empty")
    if train_rows["label"].nunique() < 2:
        raise UserError("split: the training split holds one class only")
    if recipe.train.schedule.name == "plateau" and val_rows.empty:
        raise UserError("train.schedule.name: plateau follows the validation loss, but the validation split is empty "
                        "(give data.split a validation share, or mark rows 'validation' in the manifest)")

    geometry = ImageGeometry(recipe.data.input_size, recipe.data.channels, recipe.data.resize)
    spec = get_spec(recipe.model.backbone)
    if geometry.size < spec.min_size:
        raise UserError(f"data.input_size: {recipe.model.backbone} needs at least {spec.min_size} px, got {geometry.size}")

    if recipe.augment.offline.factor > 1:  # the training split only; validation and test stay as they are
        from ..data.augment import amplify_offline

        load = None
        if recipe.data.roi or recipe.data.neighbours:  # CT: amplify the cropped slice-and-neighbours input
            from ..data.ct import ct_loader, ct_rows

            rows = ct_rows(manifest.images, manifest.boxes, roi=recipe.data.roi, neighbours=recipe.data.neighbours,
                           paths=train_rows["path"].tolist())
            train_rows = rows.assign(**{c: train_rows[c].to_numpy() for c in train_rows.columns if c not in rows})
            load = ct_loader(rows, geometry.size, geometry.channels)
        train_rows = amplify_offline(
            train_rows, geometry, recipe.augment.offline, recipe.train.seed, run_dir / AMPLIFIED_DIR,
            progress=verbose > 0, load=load,
        )
        if verbose:
            print(f"offline amplification: {train_rows['source'].nunique()} training images -> {len(train_rows)}")

    y_train = train_rows["label"].map(class_index).to_numpy()
    y_val = val_rows["label"].map(class_index).to_numpy()
    sample_weights = None
    if recipe.data.class_balance == "weights":
        sample_weights = balanced_class_weights(y_train, len(recipe.classes))[y_train]

    mean, std = 0.0, 1.0
    if recipe.data.normalization == "dataset":
        mean, std = _dataset_stats(train_rows["path"].tolist(), geometry)

    replicas = strategy.num_replicas_in_sync
    batch = recipe.train.batch_size * replicas  # global batch: per-replica batch x replicas
    lr_scale = replicas if recipe.train.scale_lr else 1
    steps_per_epoch = max(1, math.ceil(len(train_rows) / batch))
    epochs = recipe.train.epochs
    budget_in_steps = recipe.train.iterations > 0
    if budget_in_steps:  # whole epochs of (at most) one pass each; overshoot below one epoch
        steps_per_epoch = min(steps_per_epoch, recipe.train.iterations)
        epochs = math.ceil(recipe.train.iterations / steps_per_epoch)

    augment = online_augmentation(recipe.augment.online, recipe.train.seed)
    with strategy.scope():
        model = _build_model(recipe, geometry, mean, std)
    _synchronize_batchnorm(model, replicas > 1)
    if verbose:
        print(format_parameter_table(parameter_table(model, recipe.model.backbone)))
        if replicas > 1:
            print(f"{type(strategy).__name__}: {replicas} replicas, global batch {batch}")
    binary = len(recipe.classes) == 2

    frozen_backbone = recipe.model.freeze in ("all-but-top", "all")
    use_cache = frozen_backbone and recipe.train.feature_cache and augment is None
    if frozen_backbone and recipe.train.feature_cache and augment is not None and verbose:
        print("feature cache off: online augmentation changes the backbone's input every epoch")

    train_paths, val_paths = train_rows["path"].tolist(), val_rows["path"].tolist()
    balanced = recipe.data.class_balance == "balanced"  # an endless stream: fit needs steps_per_epoch
    ct_inputs = recipe.data.roi or recipe.data.neighbours
    if ct_inputs and use_cache:
        use_cache = False
        if verbose:
            print("feature cache off: CT inputs are built from several slices and a box")

    def labelled(paths, labels, *, shuffle, seed, train_side):
        options = dict(batch_size=batch, shuffle=shuffle, seed=seed)
        if train_side:
            options.update(augment=augment, sample_weights=sample_weights, repeat=budget_in_steps, balanced=balanced)
        if ct_inputs:
            from ..data.ct import ct_rows, roi_dataset

            source = train_rows if train_side else val_rows
            if "prev_path" in source.columns:  # offline-amplified CT rows: already cropped, three slices
                rows = source.set_index("path", drop=False).loc[paths].reset_index(drop=True)
            else:
                rows = ct_rows(manifest.images, manifest.boxes, roi=recipe.data.roi, neighbours=recipe.data.neighbours,
                               paths=paths)
            return roi_dataset(rows, geometry.size, labels, channels=geometry.channels, **options)
        return training_dataset(paths, labels, geometry, **options)

    if use_cache:
        from .features import cached_features, head_model

        cache_dir = Path(recipe.train.cache_dir) if recipe.train.cache_dir else None
        # one pass for both splits: the extractor is traced once
        features, computed = cached_features(
            model, train_paths + val_paths, geometry, cache_dir=cache_dir, progress=verbose > 0
        )
        x_train, x_val = features[: len(train_paths)], (features[len(train_paths) :] if val_paths else None)
        if verbose:
            reused = len(train_paths) + len(val_paths) - computed
            print(f"feature cache: {reused} of {len(train_paths) + len(val_paths)} images reused")
        with strategy.scope():
            fit_model = head_model(model)  # shares its layers with ``model``
        train_data = _feature_dataset(x_train, y_train, sample_weights, batch, recipe.train.seed, shuffle=True,
                                      repeat=budget_in_steps)
        val_data = _feature_dataset(x_val, y_val, None, batch, 0, shuffle=False) if x_val is not None else None
    else:
        fit_model = model
        train_data = labelled(train_paths, y_train, shuffle=True, seed=recipe.train.seed, train_side=True)
        val_data = labelled(val_paths, y_val, shuffle=False, seed=0, train_side=False) if val_paths else None

    loss = "binary_crossentropy" if binary else "sparse_categorical_crossentropy"
    metrics = (lambda: [keras.metrics.AUC(name="auc")]) if binary else (lambda: ["accuracy"])
    with strategy.scope():
        fit_model.compile(optimizer=_optimizer(recipe, steps_per_epoch * epochs, lr_scale), loss=loss, metrics=metrics())
    phase_one_done = run_dir / PHASE_ONE_WEIGHTS
    if resume and phase_one_done.is_file():  # resuming inside the fine-tuning phase
        model.load_weights(phase_one_done)
    else:
        _fit(fit_model, train_data, val_data, recipe, run_dir, CHECKPOINT_DIR, epochs, 0, verbose,
             steps_per_epoch if (budget_in_steps or (balanced and not use_cache)) else None, lr=recipe.train.lr * lr_scale)

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
        fit_model = model
        train_data = labelled(train_paths, y_train, shuffle=True, seed=recipe.train.seed + 1, train_side=True)
        val_data = labelled(val_paths, y_val, shuffle=False, seed=0, train_side=False) if val_paths else None
        with strategy.scope():
            model.compile(
                optimizer=_optimizer(recipe, steps_per_epoch * finetune, lr_scale * recipe.train.finetune_lr_factor),
                loss=loss, metrics=metrics(),
            )
        _fit(model, train_data, val_data, recipe, run_dir, CHECKPOINT_DIR + "-finetune", epochs + finetune, epochs, verbose,
             steps_per_epoch if (budget_in_steps or balanced) else None,
             lr=recipe.train.lr * lr_scale * recipe.train.finetune_lr_factor)

    threshold, rule = 0.5, "fixed 0.5 (no validation split)"
    if val_data is not None and binary:
        val_scores = fit_model.predict(val_data, verbose=0)[:, 0]
        threshold, rule = choose_saved_threshold(y_val, val_scores, recipe.evaluate.threshold)
    _synchronize_batchnorm(model, False)  # the saved model runs on one device
    meta = BundleMeta(
        classes=list(recipe.classes),
        input_size=geometry.size,
        channels=geometry.channels,
        resize=geometry.resize,
        backbone=recipe.model.backbone,
        threshold=threshold,
        threshold_rule=rule,
        gradcam_layer=spec.gradcam_layer,
        roi=recipe.data.roi,
        neighbours=recipe.data.neighbours,
        gray_input=recipe.model.gray_input,
        recipe=recipe.to_dict(),
    )
    save_bundle(model, meta, run_dir)
    (run_dir / PHASE_ONE_WEIGHTS).unlink(missing_ok=True)
    history = pd.read_csv(run_dir / "history.csv")
    return TrainResult(run_dir, threshold, rule, history)


def _fit(model, train_data, val_data, recipe: Recipe, run_dir: Path, checkpoint: str, epochs: int, initial_epoch: int,
         verbose: int, steps_per_epoch: int | None = None, lr: float = 0.0) -> None:
    """One training phase with the run directory's callbacks; resumable from its checkpoint.

    At an epoch's end the plateau schedule (if any) sets the next rate, history.csv is written,
    and only then is the checkpoint saved (atomically: ``AtomicBackupAndRestore``). A run killed
    between the two resumes by re-running the epoch (its history row is replaced), never with a
    checkpoint ahead of history.csv, from which the plateau schedule recomputes the rate.
    """
    import keras
    import tensorflow as tf

    callbacks = []
    s = recipe.train.schedule
    if s.name == "plateau":
        callbacks.append(PlateauSchedule(
            run_dir / "history.csv", first_epoch=initial_epoch, lr=lr, factor=s.factor, patience=s.patience,
            min_delta=s.min_delta, cooldown=s.cooldown, min_lr=s.min_lr,
        ))
    callbacks += [
        HistoryCSV(run_dir / "history.csv", run_dir / "history.png"),
        AtomicBackupAndRestore(str(run_dir / checkpoint), save_freq="epoch", delete_checkpoint=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False),
        keras.callbacks.TerminateOnNaN(),
    ]
    if recipe.train.restore_best and val_data is not None:
        callbacks.append(RestoreBest("val_loss"))
    if recipe.train.early_stopping > 0 and val_data is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=recipe.train.early_stopping, restore_best_weights=True)
        )
    try:
        model.fit(
            train_data, validation_data=val_data, epochs=epochs, initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose,
            shuffle=False,  # the dataset shuffles itself, seeded
        )
    except tf.errors.InvalidArgumentError as exc:  # a file that fails to decode mid-training
        raise RunError(f"training stopped: {str(exc.message).splitlines()[0]}") from None
    if model.stop_training and not np.isfinite(model.history.history.get("loss", [np.nan])[-1]):
        raise RunError("training stopped: the loss became NaN (lower train.lr?)")


def _feature_dataset(features, labels, weights, batch_size: int, seed: int, shuffle: bool, repeat: bool = False):
    import tensorflow as tf

    parts = (features, labels.astype(np.float32)) + ((weights.astype(np.float32),) if weights is not None else ())
    ds = tf.data.Dataset.from_tensor_slices(parts)
    if shuffle:
        ds = ds.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
