"""A trained model is a folder: ``model.keras`` plus ``tfxray.json`` with all scoring needs.

``tfxray.json`` holds classes (negative first), positive class, input size and channels,
resize mode, backbone, threshold and the rule that chose it, the resolved recipe, and
``trained_on``: the profile of the training images (``data.profile``: modalities, photometric
interpretations, view positions, file kinds, size range), which inference checks every input
against. Runs saved before it have ``{}``: no check.
``channels`` is what the model takes (1 for a gray radiograph); ``gray_input`` records how the
model turns it into the backbone's input (replicate or sum-first-conv), which happens inside
the model, so ``score`` feeds ``channels`` either way.
Models are loaded with Keras' safe mode: no code from a user's file is ever run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UserError
from ..io import atomic_path, atomic_write_json

MODEL_FILE = "model.keras"
META_FILE = "tfxray.json"


@dataclass
class BundleMeta:
    classes: list[str]
    input_size: int
    channels: int
    resize: str
    backbone: str
    threshold: float = 0.5
    threshold_rule: str = "fixed 0.5"
    gradcam_layer: str = ""
    roi: bool = False
    neighbours: bool = False
    gray_input: str = "replicate"
    recipe: dict = field(default_factory=dict)
    tfxray_version: str = ""
    trained_on: dict = field(default_factory=dict)  # data.profile.training_profile; {} in older runs
    task: str = "classification"  # classification | detection (threshold is then the box cut-off)
    detection: dict = field(default_factory=dict)  # detectors: architecture, iou, box classes
    started_from: dict = field(default_factory=dict)  # train --init: the run whose weights it started from

    @property
    def is_detection(self) -> bool:
        return self.task == "detection"

    @property
    def positive(self) -> str:
        return self.classes[-1]


@dataclass
class Bundle:
    model: object
    meta: BundleMeta
    path: Path


def save_bundle(model, meta: BundleMeta, run_dir: str | Path) -> Path:
    from .. import __version__

    run_dir = Path(run_dir)
    meta.tfxray_version = __version__
    with atomic_path(run_dir / MODEL_FILE) as tmp:  # the temporary name keeps the .keras suffix
        model.save(tmp)
    atomic_write_json(run_dir / META_FILE, asdict(meta))
    return run_dir


def load_meta(run_dir: str | Path) -> BundleMeta:
    path = Path(run_dir) / META_FILE
    if not path.is_file():
        raise UserError(f"{run_dir}: not a tfxray run directory (no {META_FILE}; train one with 'tfxray train')")
    try:
        return BundleMeta(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise UserError(f"{path}: unreadable model metadata ({exc})") from None


def load_bundle(run_dir: str | Path, compile: bool = False) -> Bundle:
    import keras

    from . import detector, preprocessing  # noqa: F401  registers the custom classes before loading

    run_dir = Path(run_dir)
    meta = load_meta(run_dir)
    if meta.detection.get("architecture") == "retinanet":
        from . import retinanet  # noqa: F401  registers its classes (imports keras-cv: only when needed)
    model_path = run_dir / MODEL_FILE
    if not model_path.is_file():
        raise UserError(f"{run_dir}: no {MODEL_FILE} (was training interrupted? resume with 'tfxray train --resume')")
    try:
        model = keras.saving.load_model(model_path, compile=compile, safe_mode=True)
    except Exception as exc:
        raise UserError(f"{model_path}: could not be loaded ({str(exc).splitlines()[0]})") from None
    return Bundle(model=model, meta=meta, path=run_dir)
