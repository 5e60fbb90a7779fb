"""Export a run's model for serving: a TensorFlow SavedModel (TF Serving) or a TFLite file.

Both take what ``read_image`` + resize give: float32 pixels in [0, 1], shape
[batch, size, size, channels]; the backbone's normalization is already a layer of the model,
so a client sends decoded pixels and nothing else. Both give ``scores``: the model's output
(the positive class's probability for two classes, else one probability per class).

The SavedModel is written with Keras 3's ``ExportArchive`` (``Model.export`` builds on it; the
archive lets us name the signature ``serving_default``, its input ``pixels`` and its output
``scores``). TFLite is converted from that SavedModel: ``TFLiteConverter.from_keras_model``
does not take Keras 3 models (TF 2.16+), ``from_saved_model`` is the supported path.
Outputs are written under a temporary name beside the target and renamed into place, so a
crash never leaves a half-written export where a server would pick it up.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import UserError
from ..io import atomic_write_json
from ..models.bundle import Bundle, load_bundle

FORMATS = ("savedmodel", "tflite")
SIGNATURE = "serving_default"
INPUT_NAME = "pixels"
OUTPUT_NAME = "scores"


def export_model(run_dir: str | Path, out: str | Path, fmt: str = "savedmodel", *, overwrite: bool = False) -> Path:
    """Write the run's model as ``fmt`` to ``out`` (a folder for savedmodel, a file for tflite)."""
    if fmt not in FORMATS:
        raise UserError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out}: already exists (choose another --out, or --overwrite)")
    bundle = load_bundle(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        saved = Path(tmp) / "savedmodel"
        write_saved_model(bundle, saved)
        if fmt == "savedmodel":
            _replace(saved, out)
        else:
            target = Path(tmp) / "model.tflite"
            target.write_bytes(convert_tflite(saved))
            _replace(target, out)
            # the file has no room for classes and threshold: they go beside it
            os.chmod(atomic_write_json(tflite_meta_path(out), _serving_meta(bundle)), 0o644)  # mkstemp gives 0600
    return out


def tflite_meta_path(tflite: Path) -> Path:
    return Path(tflite).with_name(Path(tflite).name + ".json")


def write_saved_model(bundle: Bundle, path: Path) -> Path:
    """A SavedModel with one ``serving_default`` signature: {pixels: [None, s, s, c] float32} -> {scores}."""
    import keras
    import tensorflow as tf

    model = bundle.model
    size, channels = bundle.meta.input_size, bundle.meta.channels
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(pixels):
        return {OUTPUT_NAME: model(pixels, training=False)}

    archive.add_endpoint(name=SIGNATURE, fn=serve,
                         input_signature=[tf.TensorSpec([None, size, size, channels], tf.float32, name=INPUT_NAME)])
    archive.write_out(str(path), verbose=False)
    # What a client needs besides the signature: classes, threshold, input geometry (plain data).
    (path / "assets").mkdir(exist_ok=True)
    (path / "assets" / "tfxray.json").write_text(json.dumps(_serving_meta(bundle), indent=2) + "\n")
    return path


def convert_tflite(saved_model: Path) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SIGNATURE])
    try:
        return converter.convert()
    except Exception as exc:  # noqa: BLE001  an op TFLite lacks: say which, on one line
        raise UserError(f"TFLite conversion failed: {str(exc).strip().splitlines()[0]}") from None


def _serving_meta(bundle: Bundle) -> dict:
    meta = bundle.meta
    return {"classes": meta.classes, "positive": meta.positive, "threshold": meta.threshold,
            "threshold_rule": meta.threshold_rule, "input_size": meta.input_size, "channels": meta.channels,
            "resize": meta.resize, "backbone": meta.backbone, "trained_on": meta.trained_on,
            "input": INPUT_NAME, "output": OUTPUT_NAME,
            "pixels": "float32 in [0, 1], bone bright, resized to input_size (tfxray read_image + resize)"}


def _replace(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` atomically, replacing an existing target (overwrite)."""
    if target.is_dir() and not target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)  # a folder cannot be replaced in one rename: move it aside first
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, target)
