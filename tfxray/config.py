"""Recipes: typed, validated once when loaded, then trusted by the code below.

A recipe is plain data that can only name registered components. It is read with ``RecipeLoader``,
a stricter ``yaml.SafeLoader``: no anchors or aliases (a few hundred bytes of nested aliases would
expand to gigabytes), no tags but the standard str/int/float/bool/null/map/seq ones (``!!python/...``
and custom tags are refused, not constructed), no implicit dates, no key given twice, nesting at most
``MAX_RECIPE_DEPTH`` deep; files over ``MAX_RECIPE_BYTES`` and files that are not UTF-8 are refused
with the line and byte offset. Such a refusal is one line naming the file and the line; the schema's
refusals name the recipe and the field; none quotes more than ``SHOWN`` characters of a value.
Unknown keys are refused with the nearest valid key (a short or common name such as
``learning_rate`` gets its dotted field, ``train.lr``), so a misspelt field never passes silently.
Precedence is decided here (``resolve_recipe``, over layers the CLI sorts by source):
command-line option > environment variable (Click's ``TFXRAY_*``) > recipe > code default.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .io import read_text_file
from .evaluation.choices import AGGREGATIONS, DEFAULT_AGGREGATION

MAX_RECIPE_BYTES = 256_000  # the published recipes are a few kB; pure-Python YAML reads ~100 kB/s
MAX_RECIPE_DEPTH = 32  # nesting of mappings and lists (a recipe has three levels)
SHOWN = 60  # characters of a value quoted in an error message


def _shown(value: Any, limit: int = SHOWN) -> str:
    """``value`` as an error message quotes it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class RecipeYAMLError(yaml.MarkedYAMLError):
    """YAML that is valid but not plain data: an anchor, alias, tag, repeated key or deep nesting."""


YAML_STANDARD_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}


class RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` for plain data only (see the module docstring): it refuses what it does not
    read while composing, before anything is expanded or constructed."""

    # implicit types: bool, int, float, null; a date, '<<' or '=' stays a string
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag in YAML_STANDARD_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise RecipeYAMLError(None, None, f"alias {_shown('*' + str(event.anchor))} refused: a recipe is plain "
                                              "data, without anchors or aliases; write the value out",
                                  event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise RecipeYAMLError(None, None, f"anchor {_shown('&' + str(event.anchor))} refused: a recipe is plain "
                                              "data, without anchors or aliases; write the value out",
                                  event.start_mark)
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!" and tag not in YAML_STANDARD_TAGS:
            raise RecipeYAMLError(None, None, f"tag {_shown(tag)} refused: a recipe is plain data: strings, "
                                              "numbers, true/false, null, lists and mappings", event.start_mark)
        self._recipe_depth = getattr(self, "_recipe_depth", 0) + 1
        try:
            if self._recipe_depth > MAX_RECIPE_DEPTH:
                raise RecipeYAMLError(None, None, f"nested more than {MAX_RECIPE_DEPTH} levels deep",
                                      event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._recipe_depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise RecipeYAMLError(None, None, f"key {_shown(key_node.value)} given twice",
                                          key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_recipe_yaml(text: str) -> Any:
    """A recipe's YAML text as plain data (``RecipeLoader``); YAML errors propagate."""
    return yaml.load(text, Loader=RecipeLoader)  # noqa: S506  RecipeLoader is a SafeLoader


@dataclass
class DataConfig:
    """Where images come from and how they are cut into splits."""

    input_size: int = 299
    channels: int = 1  # 1: gray (replicated inside the model, see model.gray_input); 3: slice and two neighbours
    resize: str = "stretch"  # stretch | pad (keep aspect, pad to square)
    normalization: str = "backbone"  # backbone | dataset | per_image | unit
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train, validation, test
    folds: int = 0  # >1: patient-grouped stratified k-fold cross-validation
    class_balance: str = "none"  # none | weights | balanced
    roi: bool = False  # crop the manifest box to its enclosing square (CT protocol)
    neighbours: bool = False  # slice plus its two neighbours as channels (CT protocol)

    def validate(self, where: str) -> None:
        _choice(where, "resize", self.resize, ("stretch", "pad"))
        _choice(where, "normalization", self.normalization, ("backbone", "dataset", "per_image", "unit"))
        _choice(where, "class_balance", self.class_balance, ("none", "weights", "balanced"))
        _choice(where, "channels", self.channels, (1, 3))
        if self.input_size < 16:
            raise UserError(f"{where}.input_size: must be at least 16, got {self.input_size}")
        if len(self.split) != 3 or any(r < 0 for r in self.split) or abs(sum(self.split) - 1) > 1e-6:
            raise UserError(f"{where}.split: three non-negative fractions summing to 1 expected, got "
                            f"{_shown(self.split)}")
        if self.folds == 1 or self.folds < 0:
            raise UserError(f"{where}.folds: 0 (holdout) or at least 2, got {self.folds}")
        if self.neighbours and self.channels != 3:
            raise UserError(f"{where}.neighbours: needs channels: 3")


@dataclass
class OfflineAugmentConfig:
    """ImageDataGenerator-style amplification written once, before training (wrist protocol)."""

    factor: int = 1  # 1 = off; 8 = each image, its flip, and 6 random transforms
    flip: bool = True
    rotation: float = 25.0  # degrees
    width_shift: float = 0.15
    height_shift: float = 0.15
    shear: float = 0.10
    zoom: float = 0.15

    def validate(self, where: str) -> None:
        if self.factor < 1:
            raise UserError(f"{where}.factor: must be at least 1, got {self.factor}")


@dataclass
class OnlineAugmentConfig:
    """Random transforms drawn anew every epoch by Keras preprocessing layers."""

    enabled: bool = False
    rotation: float = 0.0  # degrees, symmetric (180 = full circle)
    translate: float = 0.0  # fraction of the size
    zoom: float = 0.0
    shear: float = 0.0
    flip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0


@dataclass
class BoxAugmentConfig:
    """A detector's augmentation, boxes moved with the image (Mu et al. 2021): a horizontal flip with
    probability ``flip`` and a rotation uniform in [-rotation, rotation] degrees, drawn per image."""

    enabled: bool = False
    flip: float = 0.5  # probability
    rotation: float = 180.0  # degrees

    def validate(self, where: str) -> None:
        if not 0 <= self.flip <= 1:
            raise UserError(f"{where}.flip: a probability in [0, 1] expected, got {self.flip}")
        if not 0 <= self.rotation <= 180:
            raise UserError(f"{where}.rotation: degrees in [0, 180] expected, got {self.rotation}")


@dataclass
class AugmentConfig:
    offline: OfflineAugmentConfig = field(default_factory=OfflineAugmentConfig)
    online: OnlineAugmentConfig = field(default_factory=OnlineAugmentConfig)
    boxes: BoxAugmentConfig = field(default_factory=BoxAugmentConfig)  # detection only


@dataclass
class ModelConfig:
    backbone: str = "inception_v3"
    weights: str = "imagenet"  # imagenet | none | path to a weights file
    freeze: str = "all-but-top"  # all-but-top (the whole backbone; the head trains) | none | until:STAGE | until:LAYER
    dropout: float = 0.0
    l2: float = 0.0
    pooling: str = "avg"  # avg | max
    unfreeze: str = ""  # staged schedule: after the first phase, freeze only this far (none | until:STAGE)
    # gray radiographs (data.channels: 1): replicate to RGB inside the model, or sum-first-conv: the
    # backbone takes the one channel and its first convolution sums the pretrained RGB kernel (see
    # models/classifier.py; the same function as replicate at the start, a third of the first conv's input)
    gray_input: str = "replicate"  # replicate | sum-first-conv

    def validate(self, where: str) -> None:
        from .models.backbones import BACKBONES  # registry; keras is imported lazily there
        from .models.freeze import check_freeze_mode

        if self.backbone not in BACKBONES:
            raise UserError(
                f"{where}.backbone: unknown backbone {_shown(self.backbone)}{_did_you_mean(self.backbone, BACKBONES)}"
            )
        check_freeze_mode(self.freeze, f"{where}.freeze")
        _choice(where, "pooling", self.pooling, ("avg", "max"))
        if not 0 <= self.dropout < 1:
            raise UserError(f"{where}.dropout: must be in [0, 1), got {self.dropout}")
        _choice(where, "gray_input", self.gray_input, ("replicate", "sum-first-conv"))
        if self.gray_input == "sum-first-conv" and not BACKBONES[self.backbone].starts_with_conv:
            raise UserError(
                f"{where}.gray_input: sum-first-conv needs a backbone whose first layer is a convolution; "
                f"{self.backbone} preprocesses its input inside the network before its first convolution (use gray_input: replicate)"
            )


@dataclass
class ScheduleConfig:
    name: str = "constant"  # constant | step | exponential | cosine | plateau
    every: int = 0  # step: decay every N iterations
    factor: float = 1.0  # step/exponential/plateau: multiply by this
    warmup: int = 0  # cosine: warm-up iterations
    # plateau (reduce on plateau of the validation loss, as keras.callbacks.ReduceLROnPlateau):
    patience: int = 5  # epochs without improvement before the rate is multiplied by factor
    min_delta: float = 0.0  # a decrease smaller than this is no improvement
    cooldown: int = 0  # epochs after a reduction before patience counts again
    min_lr: float = 0.0  # the rate never goes below this

    def validate(self, where: str) -> None:
        _choice(where, "name", self.name, ("constant", "step", "exponential", "cosine", "plateau"))
        if self.name in ("step", "exponential") and self.every <= 0:
            raise UserError(f"{where}.every: a {self.name} schedule needs every > 0")
        if self.name == "plateau":
            if not 0 < self.factor < 1:
                raise UserError(f"{where}.factor: a plateau schedule needs 0 < factor < 1 (e.g. 0.1), got {self.factor}")
            if self.patience < 1:
                raise UserError(f"{where}.patience: must be at least 1 epoch, got {self.patience}")
            for name in ("min_delta", "cooldown", "min_lr"):
                if getattr(self, name) < 0:
                    raise UserError(f"{where}.{name}: must not be negative, got {getattr(self, name)}")


PRECISIONS = ("float32", "mixed", "mixed_float16", "mixed_bfloat16")


@dataclass
class TrainConfig:
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.01
    momentum: float = 0.9
    beta_1: float = 0.9
    weight_decay: float = 0.0
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    epochs: int = 10
    iterations: int = 0  # >0 overrides epochs: a budget in optimizer steps
    batch_size: int = 32
    finetune_epochs: int = 0  # staged schedule: epochs after unfreezing to model.unfreeze
    finetune_lr_factor: float = 0.1  # ... at the learning rate times this
    early_stopping: int = 0  # patience in epochs on validation loss; 0 = off
    restore_best: bool = False  # keep the epoch with the lowest validation loss, not the last
    seed: int = 0
    strategy: str = "auto"  # auto | default | mirrored | multiworker (tf.distribute)
    scale_lr: bool = False  # multiply lr by the number of replicas (linear scaling rule)
    # float32 | mixed (mixed_float16 with a GPU, else mixed_bfloat16: float16 is emulated on CPUs,
    # ~100x slower) | mixed_float16 | mixed_bfloat16 (forced); see training/distribute.py
    precision: str = "float32"
    deterministic: bool = False  # TensorFlow op determinism: reproducible, slower
    feature_cache: bool = True  # frozen backbone: train the head on cached features
    cache_dir: str = ""  # default: $TFXRAY_CACHE/features or ~/.cache/tfxray/features
    init: str = ""  # a run directory whose weights this training starts from (tfxray train --init RUN_DIR)
    # detectors, with init: before training, the initial model runs over the training images; positives where
    # it misses a reference box (hard positives) are added again; hard_negatives also adds normal images where
    # it calls a box (off by default: Mu et al. found it made the model miss more)
    hard_positives: bool = False
    hard_negatives: bool = False

    def validate(self, where: str) -> None:
        _choice(where, "optimizer", self.optimizer, ("sgd", "adam", "adamw"))
        _choice(where, "strategy", self.strategy, ("auto", "default", "mirrored", "multiworker"))
        _choice(where, "precision", self.precision, PRECISIONS)
        for name in ("lr", "epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise UserError(f"{where}.{name}: must be positive, got {getattr(self, name)}")
        if self.schedule.name == "plateau" and self.schedule.min_lr >= self.lr:
            raise UserError(f"{where}.schedule.min_lr: must be below train.lr ({self.lr}), got {self.schedule.min_lr}")


DETECTORS = ("faster_rcnn", "retinanet")
RCNN_ONLY = ("fpn_filters", "head_units", "rpn_weight", "rcnn_weight", "rpn_samples", "roi_samples", "proposals_train",
             "proposals_test")
TASKS = ("classification", "detection")


@dataclass
class DetectionConfig:
    """A detector (``task: detection``): its architecture, sizes and loss weights, and the cut-off and IoU
    of its evaluation. Defaults are Faster R-CNN + FPN as in Mu et al. 2021 (loss = rpn_weight x RPN
    loss + rcnn_weight x R-CNN loss, zeta = 1 and eta = 0.1)."""

    architecture: str = "faster_rcnn"  # faster_rcnn | retinanet
    fpn_filters: int = 256
    head_units: int = 1024  # the box head's two dense layers
    anchor_scale: float = 8.0  # anchor side = anchor_scale x the level's stride (P2: 32 px; retinanet: P3-P7)
    rpn_weight: float = 1.0  # zeta
    rcnn_weight: float = 0.1  # eta
    rpn_samples: int = 256  # anchors sampled per image for the RPN loss
    roi_samples: int = 512  # proposals sampled per image for the R-CNN loss
    proposals_train: int = 2000  # proposals kept per level before NMS (training)
    proposals_test: int = 1000
    max_detections: int = 100  # boxes per image after NMS
    min_score: float = 0.01  # boxes below this confidence are dropped (the image score is 0 then)
    cutoff: float = 0.5  # box confidence at which a box (and its image) is called positive
    iou: float = 0.5  # IoU at which a predicted box matches a reference box
    max_boxes: int = 0  # reference boxes per image in a batch; 0 = the most in the training data

    def validate(self, where: str) -> None:
        _choice(where, "architecture", self.architecture, DETECTORS)
        if self.architecture == "retinanet":  # one stage: keras-cv's own pyramid, heads and focal loss
            default = DetectionConfig()
            for name in RCNN_ONLY:
                if getattr(self, name) != getattr(default, name):
                    raise UserError(f"{where}.{name}: a Faster R-CNN setting; retinanet does not read it")
        for name in ("cutoff", "iou", "min_score"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"{where}.{name}: a number in [0, 1] expected, got {getattr(self, name)}")
        for name in ("fpn_filters", "head_units", "rpn_samples", "roi_samples", "proposals_train", "proposals_test",
                     "max_detections"):
            if getattr(self, name) < 1:
                raise UserError(f"{where}.{name}: must be positive, got {getattr(self, name)}")
        if self.anchor_scale <= 0 or self.rpn_weight < 0 or self.rcnn_weight < 0:
            raise UserError(f"{where}: anchor_scale must be positive and the loss weights non-negative")
        if self.min_score > self.cutoff:
            raise UserError(f"{where}.min_score: {self.min_score} is above the cut-off {self.cutoff}: "
                            f"no box could reach it")


@dataclass
class EvaluateConfig:
    """Read by training (threshold) and by ``tfxray evaluate RUN_DIR`` (patient_level, aggregate),
    where a command-line option or its TFXRAY_EVALUATE_* variable wins over them."""

    threshold: str = "youden"  # rule used on the validation split to choose the saved threshold
    aggregate: str = DEFAULT_AGGREGATION  # a patient's score from its images': max | mean | noisy-or
    patient_level: bool = False  # true: also evaluate per patient (the manifest's patient_id)

    def validate(self, where: str) -> None:
        _choice(where, "aggregate", self.aggregate, AGGREGATIONS)


@dataclass
class Recipe:
    name: str = "custom"
    description: str = ""
    task: str = "classification"  # classification | detection (boxes; see the detection section)
    classes: list[str] = field(default_factory=lambda: ["normal", "fracture"])  # negative class first
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)

    @property
    def is_detection(self) -> bool:
        return self.task == "detection"

    def validate(self) -> Recipe:
        _choice("recipe", "task", self.task, TASKS)
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes) or \
                not all(c.strip() for c in self.classes):
            raise UserError(f"recipe.classes: at least two distinct non-empty class names expected, got "
                            f"{_shown(self.classes)}")
        for section in dataclasses.fields(self):
            _validate_tree(getattr(self, section.name), section.name)
        if self.model.gray_input == "sum-first-conv" and self.data.channels != 1:
            raise UserError(f"model.gray_input: sum-first-conv is for gray input (data.channels: 1), got channels "
                            f"{self.data.channels}")
        self._check_task_fields()
        return self

    def _check_task_fields(self) -> None:
        """Refuse fields the recipe's task does not read, so none is silently ignored."""
        default = Recipe()
        if self.is_detection:
            unread = {
                "data.roi": self.data.roi, "data.neighbours": self.data.neighbours,
                "data.folds": self.data.folds, "data.class_balance": self.data.class_balance,
                "augment.offline.factor": self.augment.offline.factor,
                "augment.online.enabled": self.augment.online.enabled,
                "model.dropout": self.model.dropout, "model.l2": self.model.l2, "model.pooling": self.model.pooling,
                "model.gray_input": self.model.gray_input, "train.feature_cache": self.train.feature_cache,
                "evaluate.patient_level": self.evaluate.patient_level,
            }
            wanted = {"data.roi": False, "data.neighbours": False, "data.folds": 0, "data.class_balance": "none",
                      "augment.offline.factor": 1, "augment.online.enabled": False, "model.dropout": 0.0,
                      "model.l2": 0.0, "model.pooling": "avg", "model.gray_input": "replicate",
                      "train.feature_cache": default.train.feature_cache, "evaluate.patient_level": False}
            for key, value in unread.items():
                if value != wanted[key]:
                    raise UserError(f"{key}: not read by a detector (task: detection); remove it from the recipe")
            if self.data.channels != 1:
                raise UserError("data.channels: a detector reads gray radiographs (channels: 1)")
            if self.model.freeze not in ("all-but-top", "none") or self.model.unfreeze not in ("", "none"):
                raise UserError("model.freeze: a detector freezes its whole backbone (all-but-top) or nothing (none), "
                                "and model.unfreeze can only be none")
            if self.evaluate.threshold != default.evaluate.threshold:
                raise UserError("evaluate.threshold: a detector calls boxes at detection.cutoff; set that instead")
        else:
            changed = _changed_fields(self.augment.boxes, default.augment.boxes, "augment.boxes")
            if changed:
                raise UserError(f"{changed[0]}: moves boxes with the image for a detector; this recipe is "
                                "task: classification (add task: detection)")
            if self.train.hard_positives or self.train.hard_negatives:
                raise UserError("train.hard_positives: hard-example mining is for detectors (task: detection)")
            changed = _changed_fields(self.detection, default.detection, "detection")
            if changed:
                raise UserError(f"{changed[0]}: a detector's setting; this recipe is task: classification "
                                "(add task: detection)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _changed_fields(node: Any, default: Any, where: str) -> list[str]:
    """Dotted names of the fields of ``node`` that differ from ``default``."""
    return [f"{where}.{f.name}" for f in dataclasses.fields(node) if getattr(node, f.name) != getattr(default, f.name)]


def _validate_tree(node: Any, where: str) -> None:
    if not dataclasses.is_dataclass(node):
        return
    if hasattr(node, "validate"):
        node.validate(where)
    for f in dataclasses.fields(node):
        _validate_tree(getattr(node, f.name), f"{where}.{f.name}")


def _choice(where: str, key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise UserError(f"{where}.{key}: expected one of {', '.join(map(str, allowed))}, got {_shown(value)}")


def _did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(str(word)[:100], list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid: {', '.join(sorted(options))})"


# Names people reach for first, each to the recipe field it means (normalised: lower case, no separators).
KEY_ALIASES = {
    "learningrate": "train.lr", "lr": "train.lr", "rate": "train.lr",
    "epochs": "train.epochs", "epoch": "train.epochs", "nepochs": "train.epochs", "numepochs": "train.epochs",
    "iterations": "train.iterations", "steps": "train.iterations", "iters": "train.iterations",
    "batch": "train.batch_size", "batchsize": "train.batch_size", "bs": "train.batch_size",
    "backbone": "model.backbone", "arch": "model.backbone", "architecture": "model.backbone",
    "network": "model.backbone", "net": "model.backbone",
    "size": "data.input_size", "imagesize": "data.input_size", "inputsize": "data.input_size",
    "imgsize": "data.input_size", "resolution": "data.input_size",
    "freeze": "model.freeze", "weights": "model.weights", "pretrained": "model.weights",
    "seed": "train.seed", "optimizer": "train.optimizer", "optim": "train.optimizer",
    "momentum": "train.momentum", "weightdecay": "train.weight_decay", "wd": "train.weight_decay",
    "schedule": "train.schedule.name", "scheduler": "train.schedule.name", "lrschedule": "train.schedule.name",
    "folds": "data.folds", "kfold": "data.folds", "split": "data.split", "channels": "data.channels",
    "dropout": "model.dropout", "l2": "model.l2", "pooling": "model.pooling",
    "earlystopping": "train.early_stopping", "patience": "train.early_stopping",
    "precision": "train.precision", "strategy": "train.strategy", "threshold": "evaluate.threshold",
    "augment": "augment.online.enabled", "augmentation": "augment.online.enabled",
}


def _normalised(key: str) -> str:
    return "".join(ch for ch in str(key).lower() if ch.isalnum())


def _dotted_fields(cls: type = None, prefix: str = "") -> list[str]:
    """Every leaf field of the recipe as a dotted path: ``train.lr``, ``train.schedule.name``..."""
    cls = cls or Recipe
    paths = []
    for f, hint in ((f, typing.get_type_hints(cls)[f.name]) for f in dataclasses.fields(cls)):
        path = f"{prefix}{f.name}"
        paths += _dotted_fields(hint, f"{path}.") if dataclasses.is_dataclass(hint) else [path]
    return paths


def _section_of(cls: type) -> str:
    """The dotted place of a recipe dataclass: '' for Recipe, 'train.schedule' for ScheduleConfig."""
    def walk(node: type, prefix: str):
        if node is cls:
            return prefix
        for f in dataclasses.fields(node):
            hint = typing.get_type_hints(node)[f.name]
            if dataclasses.is_dataclass(hint):
                found = walk(hint, f"{prefix}.{f.name}" if prefix else f.name)
                if found is not None:
                    return found
        return None

    return walk(Recipe, "") or ""


def _nearest_key(key: str, section: str, known: set[str]) -> str:
    """' (did you mean ...?)' for an unknown ``key`` in ``section`` ('' at the top level): a field of the
    same section by its spelling first, then any field of the recipe by a common alias, its leaf name
    or its spelling (named by its dotted path), else the section's valid keys."""
    key = str(key)[:100]
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    if close:
        return f" (did you mean {close[0]!r}?)"
    fields = _dotted_fields()
    here = f"{section}." if section else ""
    target = KEY_ALIASES.get(_normalised(key))
    if target is None:
        by_leaf = [f for f in fields if _normalised(f.rsplit(".", 1)[-1]) == _normalised(key)]
        target = by_leaf[0] if len(by_leaf) == 1 else None
    if target is None:
        close = difflib.get_close_matches(_normalised(key), list(KEY_ALIASES), n=1, cutoff=0.85)
        target = KEY_ALIASES[close[0]] if close else None
    if target is None:
        close = difflib.get_close_matches(_normalised(key), [_normalised(f.rsplit(".", 1)[-1]) for f in fields],
                                          n=1, cutoff=0.8)
        matches = [f for f in fields if close and _normalised(f.rsplit(".", 1)[-1]) == close[0]]
        target = matches[0] if len(matches) == 1 else None
    if target is not None and target.startswith(here) and target[len(here):] in known:
        return f" (did you mean {target[len(here):]!r}?)"
    if target is not None and target in fields:
        return f" (did you mean {target!r}?)" if "." in target else f" (did you mean the top-level {target!r}?)"
    return _did_you_mean(key, known)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a field's type hint, converting only where it is lossless."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise UserError(f"{where}: a mapping expected, got {_shown(value)}")
        return _from_dict(hint, value, where)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise UserError(f"{where}: a list expected, got {_shown(value)}")
        return [_coerce(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, where)
            except UserError:
                continue
        raise UserError(f"{where}: {_shown(value)} does not fit {hint}")
    if hint is type(None):
        if value is None:
            return None
        raise UserError(f"{where}: null expected")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: true or false expected, got {_shown(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{where}: an integer expected, got {_shown(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise UserError(f"{where}: a finite number expected, got {value}")
            return float(value)
        raise UserError(f"{where}: a number expected, got {_shown(value)}")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"{where}: a string expected, got {_shown(value)}")
    raise TypeError(f"unsupported recipe type {hint!r} at {where}")


def _from_dict(cls: type, data: dict, where: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise UserError(f"{where}: unknown key {_shown(key)}{_nearest_key(key, _section_of(cls), known)}")
    kwargs = {key: _coerce(value, hints[key], f"{where}.{key}") for key, value in data.items()}
    return cls(**kwargs)


def recipe_from_dict(data: dict, where: str = "recipe") -> Recipe:
    if not isinstance(data, dict):
        raise UserError(f"{where}: a YAML mapping expected at the top level")
    return _from_dict(Recipe, data, where)


def builtin_recipe_names() -> list[str]:
    folder = resources.files("tfxray.recipes") if _recipes_installed() else _source_recipes()
    return sorted(Path(str(p)).stem for p in folder.iterdir() if str(p).endswith(".yaml"))


def _recipes_installed() -> bool:
    try:
        resources.files("tfxray.recipes")
        return True
    except ModuleNotFoundError:
        return False


def _source_recipes() -> Path:
    return Path(__file__).resolve().parent.parent / "recipes"


def recipe_path(name_or_path: str) -> Path:
    """A recipe is a built-in name (``wrist``) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise UserError(f"{name_or_path}: recipe file not found")
        return candidate
    folder = Path(str(resources.files("tfxray.recipes"))) if _recipes_installed() else _source_recipes()
    path = folder / f"{name_or_path}.yaml"
    if not path.is_file():
        names = builtin_recipe_names()
        raise UserError(f"recipe {name_or_path!r} not found{_did_you_mean(name_or_path, names)}")
    return path


def read_recipe_dict(name_or_path: str) -> dict:
    """A recipe file as plain data; a file too large, not UTF-8 or not plain YAML is one line naming it."""
    path = recipe_path(name_or_path)
    text = read_text_file(path, cap=MAX_RECIPE_BYTES, not_utf8="save the recipe as UTF-8",
                          over_cap=f"a recipe is a few kB of YAML; over {MAX_RECIPE_BYTES:,} bytes is refused")
    try:
        data = parse_recipe_yaml(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise UserError(f"{path}: not valid YAML (nested too deeply)") from None
    return {} if data is None else data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """'line N: not valid YAML (problem)' in one line, whatever kind of YAML error."""
    if isinstance(exc, yaml.reader.ReaderError):
        return (f"character #x{ord(exc.character) if isinstance(exc.character, str) else exc.character:04x} at "
                f"offset {exc.position} is not allowed in YAML (a binary file?)")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    problem = " ".join(str(problem).split())
    problem = problem if len(problem) <= 200 else problem[:200] + "..."
    where = f"line {mark.line + 1}: " if mark is not None else ""
    kind = "not valid YAML for a recipe" if isinstance(exc, RecipeYAMLError) else "not valid YAML"
    return f"{where}{kind} ({problem})"


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=0.001`` -> (['train', 'lr'], 0.001); the value is read as YAML (numbers, lists, true)."""
    if "=" not in text:
        raise UserError(f"--set {text}: expected KEY=VALUE, e.g. train.lr=0.001")
    key, raw = text.split("=", 1)
    try:  # anchors, aliases and tags are not read: such a value is taken as the string it is
        value = parse_recipe_yaml(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[tuple[list[str], Any]]) -> dict:
    data = copy.deepcopy(data)
    for keys, value in overrides:
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {'.'.join(keys)}: {key} is not a section")
        node[keys[-1]] = value
    return data


def load_recipe(name_or_path: str, overrides: list[tuple[list[str], Any]] = ()) -> Recipe:
    """Load a built-in or file recipe, apply dotted overrides, validate once."""
    return resolve_recipe(name_or_path, [("overrides", list(overrides))])[0]


def resolve_recipe(name_or_path: str, layers: list[tuple[str, list[tuple[list[str], Any]]]]) -> tuple[Recipe, str]:
    """The recipe with override layers of rising precedence applied (e.g. ``[("environment", ...),
    ("command line", ...)]``), validated once; and where its training budget came from (a layer's
    name, 'recipe' or 'default').

    A layer wins over every field below it that it conflicts with: setting ``train.epochs`` clears a
    lower ``train.iterations`` (which would otherwise take precedence), and naming a backbone that
    has no pretrained weights (``tiny_cnn``) sets ``model.weights: none`` unless the layer names weights
    too. One layer setting both epochs and iterations is refused: a budget is one or the other.
    """
    data = read_recipe_dict(name_or_path)
    train = data.get("train") if isinstance(data, dict) else None
    train = train if isinstance(train, dict) else {}
    source = "recipe" if (train.get("iterations") or "epochs" in train) else "default"
    for name, overrides in layers:
        overrides = list(overrides)
        values = {tuple(keys): value for keys, value in overrides}
        epochs, iterations = ("train", "epochs") in values, ("train", "iterations") in values
        if epochs and iterations and values[("train", "iterations")]:
            raise UserError(f"{name}: train.epochs and train.iterations both given; a budget is one or the other "
                            f"(iterations take precedence when both are in a recipe)")
        if epochs and not iterations:
            overrides.append((["train", "iterations"], 0))  # an explicit epoch budget beats a recipe's iterations
        if epochs or iterations:
            source = name
        backbone = values.get(("model", "backbone"))
        if backbone is not None and ("model", "weights") not in values and not _has_pretrained_weights(backbone):
            overrides.append((["model", "weights"], "none"))
        data = apply_overrides(data, overrides)
    return recipe_from_dict(data, where=Path(name_or_path).stem).validate(), source


def _has_pretrained_weights(backbone: Any) -> bool:
    from .models.backbones import BACKBONES  # registry; keras is imported lazily there

    spec = BACKBONES.get(str(backbone))
    return spec is None or spec.pretrained


def evaluate_config(recipe: dict, where: str = "recipe") -> EvaluateConfig:
    """The ``evaluate`` section of a saved recipe (a run's tfxray.json), validated. Only that
    section is read, so a run saved with fields since removed from other sections still evaluates."""
    if not isinstance(recipe, dict):
        raise UserError(f"{where}: a mapping expected, got {_shown(recipe)}")
    section = recipe.get("evaluate") or {}
    config = _coerce(section, EvaluateConfig, f"{where}.evaluate")
    config.validate(f"{where}.evaluate")
    return config


def save_recipe(recipe: Recipe, path: Path) -> None:
    from .io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(recipe.to_dict(), sort_keys=False))
