"""A trained model is a folder: ``model.keras`` plus ``tfxray.json`` with all scoring needs.

``tfxray.json`` holds classes (negative first), positive class, input size and channels,
resize mode, backbone, threshold and the rule that chose it, the resolved recipe, and
``trained_on``: the profile of the training images (``data.profile``: modalities, photometric
interpretations, view positions, file kinds, size range), which inference checks every input
against. Runs saved before it have ``{}``: no check.
``channels`` is what the model takes (1 for a gray radiograph); ``gray_input`` records how the
model turns it into the backbone's input (replicate or sum-first-conv), which happens inside
the model, so ``score`` feeds ``channels`` either way.

A run directory is user input like any other: ``load_meta`` validates every field of
``tfxray.json`` in one place (types, finite numbers in range, known choices, distinct class
names) and ``load_bundle`` checks the classes and input size against the loaded model; a bad
value is one line naming the file and the field, never a traceback or a silent wrong call.
Models are loaded with Keras' safe mode, after tfxray's own check of the archive's
``config.json``: a Lambda layer, a Python lambda, or any class that is neither Keras' nor one
registered by tfxray is refused before Keras reads the model. No code from a user's file is
ever run, and nothing in a run directory is unpickled.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..io import atomic_path, atomic_write_json

MODEL_FILE = "model.keras"
META_FILE = "tfxray.json"
MAX_META_BYTES = 16 * 1024 * 1024  # a run's metadata is a few kB (the profile and the recipe)
MAX_CONFIG_BYTES = 64 * 1024 * 1024  # config.json inside model.keras: the architecture, a few MB at most
MAX_DEPTH = 64  # nesting of JSON objects and lists (a deeper file is not tfxray's)
SHOWN = 60  # characters of a value quoted in an error message


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
    """``RUN_DIR/tfxray.json``, every field validated (``meta_from_dict``)."""
    path = Path(run_dir) / META_FILE
    if not path.is_file():
        raise UserError(f"{run_dir}: not a tfxray run directory (no {META_FILE}; train one with 'tfxray train')")
    data = read_json(path, MAX_META_BYTES, "model metadata")
    return meta_from_dict(data, path)


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
    check_archive(model_path, compile=compile)
    try:
        model = keras.saving.load_model(model_path, compile=compile, safe_mode=True)
    except Exception as exc:  # noqa: BLE001  whatever Keras says, the user gets one line
        raise UserError(f"{model_path}: could not be loaded ({_first_line(exc)})") from None
    check_model(model, meta, run_dir / META_FILE)
    return Bundle(model=model, meta=meta, path=run_dir)


# --------------------------------------------------------------------------- reading JSON a user may have edited


def read_json(path: Path, limit: int, what: str) -> Any:
    """A JSON file as plain data, or one line naming what is wrong with it: too large, not UTF-8
    (with the byte offset), invalid JSON (line and column), nested too deeply, a key given twice."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise UserError(f"{path}: {size:,} bytes; {what} over {limit:,} bytes is refused")
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_json(raw, str(path), what)


def parse_json(raw: bytes, where: str, what: str) -> Any:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: not UTF-8 text (byte {exc.start}: 0x{raw[exc.start]:02x}); {what} is "
                        f"written as UTF-8 JSON") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_repeated_keys)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: unreadable {what} (not valid JSON: {exc.msg} at line {exc.lineno} "
                        f"column {exc.colno})") from None
    except _RepeatedKey as exc:
        raise UserError(f"{where}: unreadable {what} (key {_shown(exc.args[0])} given twice)") from None
    except RecursionError:
        raise UserError(f"{where}: unreadable {what} (nested too deeply)") from None
    if _depth(data) > MAX_DEPTH:
        raise UserError(f"{where}: unreadable {what} (nested more than {MAX_DEPTH} levels deep)")
    return data


class _RepeatedKey(ValueError):
    pass


def _no_repeated_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise _RepeatedKey(key)
        result[key] = value
    return result


def _depth(value, limit: int = MAX_DEPTH + 1) -> int:
    """Nesting depth of lists and dicts, counted without recursion (stops counting past ``limit``)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if depth > limit:
                return deepest
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _first_line(exc: BaseException, limit: int = 300) -> str:
    lines = str(exc).strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + "..."


def _shown(value: Any, limit: int = SHOWN) -> str:
    """``value`` as an error message quotes it: repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _described(value: Any) -> str:
    """What a JSON value is, for 'FIELD is ...; expected ...'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, (int, float)):
        return f"{value!r}"
    if isinstance(value, str):
        return f"the string {_shown(value)}" if value else "an empty string"
    if isinstance(value, list):
        return f"a list of {len(value)}" if value else "an empty list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --------------------------------------------------------------------------- tfxray.json, field by field

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")  # a registered name: backbone
LAYER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,199}")  # a Keras layer name
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TASKS = ("classification", "detection")
ARCHITECTURES = ("faster_rcnn", "retinanet")
MAX_SIZE = 16384


class _Bad(Exception):
    """A field's value is wrong: (field, value, expectation)."""


def _fail(name: str, value: Any, expected: str):
    raise _Bad(f"{name} is {_described(value)}; expected {expected}")


def _number(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    expected = f"a number in {'(' if low_open else '['}{low:g}, {high:g}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(name, value, expected)
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        _fail(name, value, expected)
    return float(value)


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(name, value, f"a whole number in [{low}, {high}]")
    return value


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(name, value, "true or false")
    return value


def _text(name: str, value: Any, limit: int = 1000, pattern: re.Pattern | None = None, what: str = "text",
          empty: bool = True) -> str:
    if not isinstance(value, str):
        _fail(name, value, what)
    if not value and not empty:
        _fail(name, value, what)
    if len(value) > limit:
        raise _Bad(f"{name} is {len(value):,} characters long; expected {what} of at most {limit}")
    if CONTROL.search(value):
        _fail(name, value, f"{what} without control characters")
    if value and pattern is not None and not pattern.fullmatch(value):
        _fail(name, value, what)
    return value


def _choice(name: str, value: Any, allowed: tuple) -> Any:
    if isinstance(value, bool) or value not in allowed:
        _fail(name, value, "one of " + ", ".join(map(str, allowed)))
    return value


def _mapping(name: str, value: Any) -> dict:
    if not isinstance(value, dict):
        _fail(name, value, "an object")
    return value


def _strings(name: str, value: Any, *, at_least: int = 0, what: str = "names") -> list[str]:
    expected = f"a list of {'at least two ' if at_least == 2 else ''}distinct {what}"
    if not isinstance(value, list):
        _fail(name, value, expected)
    if len(value) < at_least:
        _fail(name, value, expected)
    for i, item in enumerate(value):
        _text(f"{name}[{i}]", item, limit=200, what="a non-empty name", empty=False)
        if not item.strip():
            _fail(f"{name}[{i}]", item, "a non-empty name")
    seen = set()
    for item in value:
        if item in seen:
            raise _Bad(f"{name} has {_shown(item)} twice; expected {expected}")
        seen.add(item)
    return value


def _classes(value: Any) -> list[str]:
    return _strings("classes", value, at_least=2, what="class names (negative first)")


def _trained_on(value: Any) -> dict:
    """The training profile (``data.profile.training_profile``); ``{}`` for runs saved without one."""
    _mapping("trained_on", value)
    for key in ("images", "unreadable"):
        if key in value:
            _integer(f"trained_on.{key}", value[key], 0, 10**12)
    for key in ("modalities", "photometric", "view_positions", "kinds"):
        if key in value:
            _strings(f"trained_on.{key}", value[key], what="names")
    for key in ("rows", "cols"):
        if value.get(key) is not None:
            sides = value[key]
            expected = "null or [smallest, largest] in pixels"
            if not isinstance(sides, list) or len(sides) != 2:
                _fail(f"trained_on.{key}", sides, expected)
            low = _integer(f"trained_on.{key}[0]", sides[0], 1, 10**6)
            high = _integer(f"trained_on.{key}[1]", sides[1], 1, 10**6)
            if low > high:
                raise _Bad(f"trained_on.{key} is [{low}, {high}]; expected [smallest, largest] in pixels")
    return value


def _detection(value: Any) -> dict:
    _mapping("detection", value)
    if "architecture" in value:
        _choice("detection.architecture", value["architecture"], ARCHITECTURES)
    if "iou" in value:
        _number("detection.iou", value["iou"], 0, 1, low_open=True)
    if "box_classes" in value:
        _strings("detection.box_classes", value["box_classes"], what="class names")
    if "mined" in value:
        _integer("detection.mined", value["mined"], 0, 10**12)
    return value


# field: check of its value (the value returned is stored); order is tfxray.json's
FIELD_CHECKS = {
    "classes": _classes,
    "input_size": lambda v: _integer("input_size", v, 1, MAX_SIZE),
    "channels": lambda v: _choice("channels", v, (1, 3)),
    "resize": lambda v: _choice("resize", v, ("stretch", "pad")),
    "backbone": lambda v: _text("backbone", v, 100, NAME, "a registered backbone name", empty=False),
    "threshold": lambda v: _number("threshold", v, 0, 1),
    "threshold_rule": lambda v: _text("threshold_rule", v, 1000),
    "gradcam_layer": lambda v: _text("gradcam_layer", v, 200, LAYER, "a layer name"),
    "roi": lambda v: _boolean("roi", v),
    "neighbours": lambda v: _boolean("neighbours", v),
    "gray_input": lambda v: _choice("gray_input", v, ("replicate", "sum-first-conv")),
    "recipe": lambda v: _mapping("recipe", v),
    "tfxray_version": lambda v: _text("tfxray_version", v, 100, NAME, "a version"),
    "trained_on": _trained_on,
    "task": lambda v: _choice("task", v, TASKS),
    "detection": _detection,
    "started_from": lambda v: _mapping("started_from", v),
}
REQUIRED = tuple(f.name for f in fields(BundleMeta) if f.default is MISSING and f.default_factory is MISSING)


def meta_from_dict(data: Any, where: str | Path = META_FILE) -> BundleMeta:
    """A ``BundleMeta`` from ``tfxray.json``'s content, every field checked; a bad one is a ``UserError``
    naming ``where`` and the field: "RUN/tfxray.json: threshold is NaN; expected a number in [0, 1]"."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: {_described(data)}; expected a JSON object of run metadata")
    unknown = [key for key in data if key not in FIELD_CHECKS]
    if unknown:
        raise UserError(f"{where}: unknown field {_shown(unknown[0])} (not written by this tfxray; known: "
                        f"{', '.join(FIELD_CHECKS)})")
    missing = [name for name in REQUIRED if name not in data]
    if missing:
        raise UserError(f"{where}: missing field(s) {', '.join(missing)}")
    values = {}
    try:
        for name, value in data.items():
            values[name] = FIELD_CHECKS[name](value)
        if values.get("task") == "detection" and "architecture" not in values.get("detection", {}):
            raise _Bad("detection has no architecture; expected one of " + ", ".join(ARCHITECTURES))
    except _Bad as exc:
        raise UserError(f"{where}: {exc}") from None
    return BundleMeta(**values)


def check_model(model, meta: BundleMeta, where: str | Path) -> None:
    """The metadata must describe the loaded model: one output per class (one for two classes) and the
    input size and channels it takes. Detectors' outputs are boxes; only classifiers are checked."""
    if meta.is_detection:
        return
    output = _single_shape(getattr(model, "output_shape", None))
    if output is not None and isinstance(output[-1], int):
        width = output[-1]
        expected = 1 if len(meta.classes) == 2 else len(meta.classes)
        if width != expected:
            outputs = "one sigmoid output (a two-class model)" if width == 1 else f"{width} outputs"
            raise UserError(f"{where}: classes has {len(meta.classes)} names but {MODEL_FILE} has {outputs}; "
                            f"expected {2 if width == 1 else width} class names")
    shape = _single_shape(getattr(model, "input_shape", None))
    if shape is not None and len(shape) == 4:
        _, rows, cols, channels = shape
        if isinstance(rows, int) and isinstance(cols, int) and (rows, cols) != (meta.input_size, meta.input_size):
            raise UserError(f"{where}: input_size is {meta.input_size} but {MODEL_FILE} takes {rows} x {cols} px")
        if isinstance(channels, int) and channels != meta.channels:
            raise UserError(f"{where}: channels is {meta.channels} but {MODEL_FILE} takes {channels}")


def _single_shape(shape):
    """A model's one input or output shape as a tuple; None when it has several or none."""
    if isinstance(shape, list):
        shape = shape[0] if len(shape) == 1 else None
    if isinstance(shape, tuple) and shape and all(d is None or isinstance(d, int) for d in shape):
        return shape
    return None


# --------------------------------------------------------------------------- model.keras, before Keras reads it

KERAS_PACKAGES = ("keras", "keras_cv", "keras_hub", "keras_nlp")  # the packages Keras itself imports from
PLAIN_OBJECTS = ("__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__")


def check_archive(model_path: Path, compile: bool = False) -> None:
    """Refuse a ``.keras`` archive whose architecture names code: a ``Lambda`` layer or a serialised
    Python lambda, or a class or function that is neither Keras' own nor registered (tfxray's), such
    as ``{"module": "os", "class_name": "system"}``. Keras' safe mode refuses most of them too; this
    check says why in one line before Keras reads anything. ``compile_config`` is only checked when
    the model is compiled on loading (otherwise Keras never reads it)."""
    import keras

    try:
        with zipfile.ZipFile(model_path) as archive:
            try:
                info = archive.getinfo("config.json")
            except KeyError:
                raise UserError(f"{model_path}: not a Keras model archive (no config.json)") from None
            if info.file_size > MAX_CONFIG_BYTES:
                raise UserError(f"{model_path}: config.json holds {info.file_size:,} bytes; over "
                                f"{MAX_CONFIG_BYTES:,} is refused")
            raw = archive.read(info)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError, ValueError) as exc:
        raise UserError(f"{model_path}: not a Keras model archive ({_first_line(exc)})") from None
    config = parse_json(raw, f"{model_path}: config.json", "model architecture")
    registered = keras.saving.get_custom_objects()
    reason = _unsafe_object(config, registered, compile)
    if reason:
        raise UserError(f"{model_path}: refused in safe mode: {reason}; tfxray runs no code from a model file")


def _unsafe_object(config: Any, registered: dict, compile: bool) -> str:
    """Why the first object of ``config`` Keras would import is unsafe, or ''."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if "class_name" in node and "config" in node:
            reason = _object_reason(node, registered)
            if reason:
                return reason
        stack.extend(value for key, value in node.items() if compile or key != "compile_config")
    return ""


def _object_reason(node: dict, registered: dict) -> str:
    class_name, module = node.get("class_name"), node.get("module")
    registered_name = node.get("registered_name")
    if not isinstance(class_name, str):
        return f"an object whose class_name is {_described(class_name)}"
    if class_name in PLAIN_OBJECTS:
        return ""
    name = node.get("config", {}).get("name") if isinstance(node.get("config"), dict) else None
    if class_name == "Lambda":
        return f"a Lambda layer{f' ({_shown(name)})' if isinstance(name, str) else ''} holds Python code"
    if class_name == "__lambda__":
        return "a serialised Python lambda"
    if class_name == "__typespec__":
        class_name, module = node.get("spec_name"), node.get("module")
    if class_name == "function":
        target = node.get("config") if module == "builtins" else registered_name
        if module == "builtins" or _keras_module(module) or (isinstance(target, str) and target in registered):
            return ""
        return f"the function {_shown(_dotted(module, target))} is neither Keras' nor registered by tfxray"
    if isinstance(registered_name, str) and registered_name in registered:
        return ""
    if _keras_module(module):
        return ""
    what = _dotted(module, class_name)
    if isinstance(registered_name, str) and registered_name not in (class_name, ""):
        return f"unknown custom object {_shown(registered_name)} ({_shown(what)}: not registered by tfxray)"
    return f"the object {_shown(what)} is neither a Keras class nor one registered by tfxray"


def _keras_module(module: Any) -> bool:
    return isinstance(module, str) and module.split(".", 1)[0] in KERAS_PACKAGES


def _dotted(module: Any, name: Any) -> str:
    return f"{module}.{name}" if isinstance(module, str) and module else str(name)
