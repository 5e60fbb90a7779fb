"""Training a detector (``task: detection``): the classifier's run directory, splits and phases, with boxes.

The steps follow ``trainer._train``: rows and splits (``prepare_rows``: the same patient-grouped
split, split.csv, test.csv and val.csv with every box) -> the initial weights (``train.init``: another
run's, matched layer by layer) -> hard-example mining with that initial model (``mine_hard_examples``,
written to mined.csv) -> the box-aware tf.data pipeline (``data.detection``) -> the model
(``models.detector``) -> the phases (backbone frozen per ``model.freeze`` for ``train.epochs``, then
``model.unfreeze`` at ``lr x finetune_lr_factor`` for ``finetune_epochs``, each resumable; the model
is chosen on the validation (tuning) split's per-image AUC with ``restore_best``) -> the bundle,
whose ``threshold`` is the box cut-off (``detection.cutoff``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Recipe
from ..data.geometry import ImageGeometry
from ..data.manifest import BOX_COLUMNS, Manifest
from ..errors import UserError
from ..io import atomic_write_text
from ..models.bundle import BundleMeta, load_bundle, save_bundle
from ..models.detector import build_detector, compile_detector, set_backbone_trainable
from ..models.inference import detect_paths
from ..models.transfer import transfer_weights

MINED_FILE = "mined.csv"
PHASE_ONE_WEIGHTS = "head-phase.weights.h5"
CHECKPOINT_DIR = "checkpoint"


def detector_options(recipe: Recipe) -> dict:
    d = recipe.detection
    options = dict(fpn_filters=d.fpn_filters, head_units=d.head_units, anchor_scale=d.anchor_scale,
                   rpn_weight=d.rpn_weight, rcnn_weight=d.rcnn_weight, rpn_samples=d.rpn_samples,
                   roi_samples=d.roi_samples, proposals_train=d.proposals_train, proposals_test=d.proposals_test,
                   max_detections=d.max_detections, min_score=d.min_score,
                   normalization=recipe.data.normalization if recipe.data.normalization != "dataset" else "backbone")
    return options


def box_classes(recipe_classes: list[str]) -> list[str]:
    """Every class but the first (negative) one is a kind of box."""
    return list(recipe_classes[1:])


# --------------------------------------------------------------------------- mining


def mine_hard_examples(init_bundle, train_rows: pd.DataFrame, boxes: pd.DataFrame, *, cutoff: float, iou: float,
                       positives: bool, negatives: bool, negative_class: str, verbose: int = 0) -> pd.DataFrame:
    """Images of the training split the initial model gets wrong, with why: a positive image on which
    it misses a reference box (no predicted box with IoU >= ``iou`` at the cut-off: ``hard positive``),
    and, with ``negatives``, a normal image on which it calls a box (``hard negative``).
    Returns ``path, kind, reason`` (one row per mined image)."""
    from ..evaluation.boxes import match_boxes

    paths = train_rows["path"].drop_duplicates().tolist()
    detections, statuses, reasons = detect_paths(init_bundle, paths, progress=verbose > 0, check_profile=False)
    failed = [f"{p}: {r}" for p, s, r in zip(paths, statuses, reasons) if s != 0]
    if failed:
        raise UserError(f"hard-example mining: {len(failed)} training image(s) could not be read, first {failed[0]}")
    truth = boxes[boxes["path"].isin(paths)][["path", *BOX_COLUMNS]]
    matched = match_boxes(detections.drop(columns=["class"]), truth, paths, cutoff, iou_threshold=iou,
                          by_class=False)
    labels = train_rows.drop_duplicates("path").set_index("path")["label"]
    per_image = matched.images
    rows = []
    for path, counts in per_image.iterrows():
        if positives and counts["truth"] > 0 and counts["fn"] > 0:
            rows.append((path, "hard positive", f"missed {counts['fn']} of {counts['truth']} reference box(es) "
                                                 f"at cut-off {cutoff:g}, IoU {iou:g}"))
        elif negatives and labels.get(path) == negative_class and counts["predicted"] > 0:
            rows.append((path, "hard negative", f"{counts['predicted']} box(es) called at cut-off {cutoff:g} "
                                                f"on a normal image"))
    return pd.DataFrame(rows, columns=["path", "kind", "reason"])


# --------------------------------------------------------------------------- validation


class ImageAUC:
    """Per-image AUC of a detector on the validation split (image score = its highest box confidence),
    logged as ``val_auc`` at each epoch's end, before the history and the best-epoch callbacks read it."""

    def __init__(self, dataset, labels: np.ndarray):
        self.dataset = dataset
        self.labels = np.asarray(labels)

    def callback(self):
        import keras

        outer = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if logs is not None:
                    logs["val_auc"] = outer.auc(self.model)

        return _Callback()

    def scores(self, model) -> np.ndarray:
        from ..models.inference import detector_predictor_for

        predict = detector_predictor_for(model)  # traced once: the graph reads the weights as they are now
        out = []
        for images, _ in self.dataset:
            found = predict(images)
            scores = np.where(np.arange(found["scores"].shape[1])[None] < found["num_detections"][:, None],
                              found["scores"], 0.0)
            out.append(scores.max(axis=1) if scores.shape[1] else np.zeros(len(scores)))
        return np.concatenate(out) if out else np.zeros(0)

    def auc(self, model) -> float:
        from ..evaluation.roc import auc

        if len(np.unique(self.labels)) < 2:
            return float("nan")
        return float(auc(self.labels.astype(int), self.scores(model)))


# --------------------------------------------------------------------------- training


def _check_anchor_matches(model, data, geometry: ImageGeometry, anchor_scale: float, verbose: int) -> None:
    """RetinaNet learns nothing from a box no anchor matches (its loss is zero, silently): refuse when none
    matches, say how many do not otherwise."""
    from ..data.detection import detection_targets
    from ..models.retinanet import ANCHOR_MATCH_IOU, unmatched_boxes

    _, boxes, _ = detection_targets(data, geometry)
    boxes = boxes.reshape(-1, 4)
    boxes = boxes[boxes[:, 0] >= 0]
    missed = unmatched_boxes(model, boxes)
    advice = (f"anchors are {anchor_scale:g} x the stride at P3-P7 ({anchor_scale * 8:g} px and up at input size "
              f"{geometry.size}); lower detection.anchor_scale, raise data.input_size, or use faster_rcnn")
    if len(boxes) and missed == len(boxes):
        raise UserError(f"detection.anchor_scale: none of the {len(boxes)} training boxes overlaps an anchor at IoU >= "
                        f"{ANCHOR_MATCH_IOU:g}, so retinanet would learn nothing; {advice}")
    if missed and verbose:
        print(f"warning: {missed} of {len(boxes)} training boxes overlap no anchor at IoU >= {ANCHOR_MATCH_IOU:g} and "
              f"give retinanet no signal; {advice}")


def train_detector(recipe: Recipe, manifest: Manifest, run_dir: Path, strategy, *, resume: bool, allow_leaks: bool,
                   verbose: int, budget_source: str = ""):
    from ..data.detection import detection_dataset
    from ..data.profile import training_profile
    from .trainer import (Restored, TrainResult, _fit, _optimizer, _synchronize_batchnorm, describe_budget,
                          fit_plan, prepare_rows)

    d = recipe.detection
    geometry = ImageGeometry(recipe.data.input_size, recipe.data.channels, recipe.data.resize)
    rows = prepare_rows(recipe, manifest, run_dir, geometry, resume=resume, allow_leaks=allow_leaks, verbose=verbose)
    classes = box_classes(recipe.classes)
    box_table = manifest.boxes

    init_bundle, started_from = None, {}
    if recipe.train.init:
        init_bundle = load_bundle(recipe.train.init)
        started_from = {"run": str(Path(recipe.train.init).resolve()), "task": init_bundle.meta.task,
                        "backbone": init_bundle.meta.backbone}

    extra_paths: list[str] = []
    mined_path = run_dir / MINED_FILE
    if recipe.train.hard_positives or recipe.train.hard_negatives:
        if resume and mined_path.is_file():
            mined = pd.read_csv(mined_path, dtype=str)
        else:
            mined = mine_hard_examples(init_bundle, rows.train, box_table, cutoff=d.cutoff, iou=d.iou,
                                       positives=recipe.train.hard_positives, negatives=recipe.train.hard_negatives,
                                       negative_class=recipe.classes[0], verbose=verbose)
            atomic_write_text(mined_path, mined.to_csv(index=False))
        if verbose:
            kinds = mined["kind"].value_counts().to_dict() if len(mined) else {}
            print(f"hard-example mining with {recipe.train.init}: "
                  + (", ".join(f"{n} {k}(s)" for k, n in kinds.items()) or "nothing missed")
                  + f" added again to {len(rows.train)} training images ({MINED_FILE})")
        extra_paths = mined["path"].tolist()

    replicas = strategy.num_replicas_in_sync
    plan = fit_plan(recipe, len(rows.train) + len(extra_paths), replicas)
    if verbose:
        print(f"budget: {describe_budget(recipe, plan)}" + (f" ({budget_source})" if budget_source else ""))
    augment = ({"flip": recipe.augment.boxes.flip, "rotation": recipe.augment.boxes.rotation}
               if recipe.augment.boxes.enabled else None)
    max_boxes = d.max_boxes or None
    train_data = detection_dataset((rows.train, box_table, recipe.classes), geometry, batch_size=plan.batch,
                                   shuffle=True, seed=recipe.train.seed, augment=augment, max_boxes=max_boxes,
                                   repeat=True, extra_paths=extra_paths)
    val_rows = rows.validation
    val_data = None
    if len(val_rows):
        val_data = detection_dataset((val_rows, box_table, recipe.classes), geometry, batch_size=plan.batch,
                                     shuffle=False, seed=recipe.train.seed, augment=None, max_boxes=max_boxes)

    with strategy.scope():
        model = build_detector(d.architecture, recipe.model.backbone, input_size=geometry.size,
                               channels=geometry.channels, num_classes=len(classes),
                               weights=None if init_bundle is not None else recipe.model.weights,
                               **detector_options(recipe))
        if init_bundle is not None:
            copied, total = transfer_weights(init_bundle.model, model)
            if verbose:
                print(f"started from {recipe.train.init}: {copied} of {total} weight tensors copied "
                      f"(the rest, e.g. a head for other classes, start fresh)")
            if copied == 0:
                raise UserError(f"--init {recipe.train.init}: no layer of that run matches this model "
                                f"({init_bundle.meta.backbone} vs {recipe.model.backbone})")
            started_from.update(copied=copied, of=total)
    _synchronize_batchnorm(model, replicas > 1)
    if d.architecture == "retinanet":
        _check_anchor_matches(model, (rows.train, box_table, recipe.classes), geometry, d.anchor_scale, verbose)

    validation = ImageAUC(val_data, (val_rows["label"] != recipe.classes[0]).to_numpy()) if val_data is not None else None
    extra_callbacks = [validation.callback()] if validation is not None else []
    monitor = ("val_auc", "max") if validation is not None else ("val_loss", "min")

    def compile_for(epochs: int, scale: float) -> None:
        with strategy.scope():
            compile_detector(model, _optimizer(recipe, plan.steps_per_epoch * epochs, scale))

    lr_scale = replicas if recipe.train.scale_lr else 1
    frozen = recipe.model.freeze != "none"
    set_backbone_trainable(model, not frozen)
    if verbose:
        print(f"{d.architecture} on {recipe.model.backbone}: {model.count_params():,} parameters, backbone "
              f"{'frozen' if frozen else 'trained'}")
    compile_for(plan.epochs, lr_scale)
    phase_one_done = run_dir / PHASE_ONE_WEIGHTS
    restored: Restored | None = None
    if resume and phase_one_done.is_file():
        model.load_weights(phase_one_done)
    else:
        restored = _fit(model, train_data, val_data, recipe, run_dir, CHECKPOINT_DIR, plan.epochs, 0, verbose,
                        plan.steps_per_epoch, lr=recipe.train.lr * lr_scale, extra_callbacks=extra_callbacks,
                        monitor=monitor)
    if recipe.train.finetune_epochs > 0:
        if not phase_one_done.is_file():
            model.save_weights(phase_one_done)
        set_backbone_trainable(model, (recipe.model.unfreeze or "none") == "none")
        scale = lr_scale * recipe.train.finetune_lr_factor
        if verbose:
            print(f"fine-tuning the whole detector for {recipe.train.finetune_epochs} epoch(s) at lr x "
                  f"{recipe.train.finetune_lr_factor}")
        compile_for(recipe.train.finetune_epochs, scale)
        restored = _fit(model, train_data, val_data, recipe, run_dir, CHECKPOINT_DIR + "-finetune",
                        plan.epochs + recipe.train.finetune_epochs, plan.epochs, verbose, plan.steps_per_epoch,
                        lr=recipe.train.lr * scale, extra_callbacks=extra_callbacks, monitor=monitor)

    _synchronize_batchnorm(model, False)
    meta = BundleMeta(
        classes=list(recipe.classes), input_size=geometry.size, channels=geometry.channels, resize=geometry.resize,
        backbone=recipe.model.backbone, threshold=float(d.cutoff),
        threshold_rule=f"fixed {d.cutoff:g} (detection.cutoff: a box at or above it, and its image, is positive)",
        recipe=recipe.to_dict(), task="detection",
        detection={"architecture": d.architecture, "iou": float(d.iou), "box_classes": classes,
                   "mined": len(extra_paths)},
        started_from=started_from,
        trained_on=training_profile(rows.table.loc[rows.table["split"] == "train", "path"]),
    )
    save_bundle(model, meta, run_dir)
    phase_one_done.unlink(missing_ok=True)
    result = TrainResult(run_dir, float(d.cutoff), meta.threshold_rule, pd.read_csv(run_dir / "history.csv"))
    result.restored = restored
    return result
