"""Safe loading: a model file, a run directory or a scored folder can carry code; none of it ever runs.

A ``.keras`` archive naming a Lambda layer, a Python lambda, an unknown custom object or an arbitrary
importable target (``{"module": "os", "class_name": "system"}``) is refused before Keras reads it, in
one line naming the file; pickles planted in a run directory, inside the archive, or among the images
are never unpickled. Each payload would create a marker file if it ran; the controls show it would.
"""

from __future__ import annotations

import codecs
import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.folder_helpers import copy_images
from tfxray.cli.main import cli
from tfxray.errors import UserError
from tfxray.models.bundle import load_bundle


class Payload:
    """Unpickling it opens (creates) ``path``: the marker of code run from a user's file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def pickled(marker) -> bytes:
    return pickle.dumps(Payload(marker))


def lambda_code(marker) -> str:
    """The serialised code (Keras' ``__lambda__`` format) of ``lambda t: (open(marker, 'w').close(), t)[1]``,
    compiled but never defined or called here."""
    import marshal
    import types

    module = compile(f"lambda t: (open({str(marker)!r}, 'w').close(), t)[1]", "<payload>", "eval")
    code = next(c for c in module.co_consts if isinstance(c, types.CodeType))
    return codecs.encode(marshal.dumps(code), "base64").decode("ascii")


def rewrite(archive: Path, edit=None, add: dict | None = None, drop=()) -> None:
    """Rewrite a .keras archive in place: ``edit(config)`` on config.json, members added or dropped."""
    with zipfile.ZipFile(archive) as source:
        members = {name: source.read(name) for name in source.namelist() if name not in drop}
    if edit is not None:
        config = json.loads(members["config.json"])
        edit(config)
        members["config.json"] = json.dumps(config).encode()
    members.update(add or {})
    with zipfile.ZipFile(archive, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)


def layer(config, class_name):
    return next(entry for entry in config["config"]["layers"] if entry["class_name"] == class_name)


@pytest.fixture()
def run(tiny_run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(tiny_run, target)
    return target


@pytest.fixture()
def inbox(wrist_png, tmp_path):
    """Six wrist PNGs, both classes."""
    folder, manifest = wrist_png
    return copy_images(folder, manifest.path[:6], tmp_path / "inbox")


def make_lambda_run(run: Path, marker: Path) -> None:
    """Replace the run's model by a Lambda model whose function would create ``marker`` when called."""
    import keras

    inputs = keras.Input((48, 48, 1), name="image")
    x = keras.layers.Lambda(lambda t: t * 1.0, name="lam")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x)).save(run / "model.keras")

    def edit(config):
        layer(config, "Lambda")["config"]["function"]["config"]["code"] = lambda_code(marker)

    rewrite(run / "model.keras", edit)


def refusal(run: Path) -> str:
    with pytest.raises(UserError) as caught:
        load_bundle(run)
    message = str(caught.value)
    assert message.startswith(f"{run / 'model.keras'}: ") and "\n" not in message and len(message) < 500, message
    return message[len(f"{run / 'model.keras'}: "):]


SAFE_MODE = "; tfxray runs no code from a model file"


def test_a_lambda_layer_is_refused_and_never_runs(run, inbox, tmp_path):
    marker = tmp_path / "lambda-ran"
    make_lambda_run(run, marker)
    assert refusal(run) == "refused in safe mode: a Lambda layer ('lam') holds Python code" + SAFE_MODE
    for args in (["score", str(run), str(inbox), "--out", str(tmp_path / "s.csv")],
                 ["evaluate", str(run), "--split", "test", "--out", str(tmp_path / "e")],
                 ["gradcam", str(run), str(inbox), "--out", str(tmp_path / "g")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
        assert "a Lambda layer ('lam') holds Python code" in result.output and "Traceback" not in result.output
    assert not marker.exists()


def test_control_the_lambda_payload_is_live(run, tmp_path):
    """Without safe mode Keras would run the planted lambda on loading: the payload is real."""
    import keras

    control = tmp_path / "control-ran"
    make_lambda_run(run, control)
    keras.saving.load_model(run / "model.keras", safe_mode=False)
    assert control.exists()


def _unknown_custom(config, marker):
    dense = layer(config, "Dense")
    dense.update(module="evil.layers", class_name="Evil", registered_name="evil>Evil")


def _os_system(config, marker):
    dense = layer(config, "Dense")
    dense.update(module="os", class_name="system", registered_name=None)
    dense["config"] = {"command": f"touch {marker}"}


def _function(config, marker):
    layer(config, "Dense")["config"]["activation"] = {"module": "os", "class_name": "function", "config": "system",
                                                      "registered_name": "system"}


def _bare_lambda(config, marker):
    layer(config, "Dense")["config"]["activation"] = {
        "class_name": "__lambda__", "config": {"code": lambda_code(marker), "defaults": None, "closure": None}}


def _registered_name_spoof(config, marker):
    dense = layer(config, "Dense")
    dense.update(module="subprocess", class_name="Popen", registered_name="tfxray>Popen")
    dense["config"] = {"args": ["touch", str(marker)]}


@pytest.mark.parametrize(("edit", "reason"), [
    (_unknown_custom, "unknown custom object 'evil>Evil' ('evil.layers.Evil': not registered by tfxray)"),
    (_os_system, "the object 'os.system' is neither a Keras class nor one registered by tfxray"),
    (_function, "the function 'os.system' is neither Keras' nor registered by tfxray"),
    (_bare_lambda, "a serialised Python lambda"),
    (_registered_name_spoof, "unknown custom object 'tfxray>Popen' ('subprocess.Popen': not registered by tfxray)"),
])
def test_objects_that_name_code_are_refused_before_keras_reads_them(run, inbox, tmp_path, edit, reason):
    marker = tmp_path / "ran"
    rewrite(run / "model.keras", lambda config: edit(config, marker))
    assert refusal(run) == f"refused in safe mode: {reason}{SAFE_MODE}"
    result = CliRunner().invoke(cli, ["score", str(run), str(inbox), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2 and result.output == f"error: {run / 'model.keras'}: refused in safe mode: {reason}" \
                                                      f"{SAFE_MODE}\n"
    assert not marker.exists() and not (tmp_path / "s.csv").exists()


def test_keras_non_modeling_apis_are_refused_by_keras_in_one_line(run):
    def edit(config):
        dense = layer(config, "Dense")
        dense.update(module="keras.utils", class_name="get_file", registered_name=None)

    rewrite(run / "model.keras", edit)
    message = refusal(run)
    assert message.startswith("could not be loaded (") and "get_file" in message


def test_a_compile_config_is_only_read_when_compiling(run):
    """Keras never reads compile_config with compile=False (tfxray's loaders); with compile=True it is checked."""
    def edit(config):
        config["compile_config"]["loss"] = {"module": "os", "class_name": "function", "config": "system",
                                            "registered_name": "system"}

    rewrite(run / "model.keras", edit)
    assert load_bundle(run).model is not None
    with pytest.raises(UserError, match="refused in safe mode: the function 'os.system'"):
        load_bundle(run, compile=True)


def test_not_an_archive(run):
    (run / "model.keras").write_bytes(pickled(run / "marker"))  # a pickle named model.keras
    assert refusal(run).startswith("not a Keras model archive (File is not a zip file)")
    rewrite_target = run / "model.keras"
    with zipfile.ZipFile(rewrite_target, "w") as archive:
        archive.writestr("model.pkl", pickled(run / "marker"))
    assert refusal(run) == "not a Keras model archive (no config.json)"
    assert not (run / "marker").exists()


# --------------------------------------------------------------------------- pickles are never unpickled


def object_npy(marker) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def object_npz(marker) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{"layers/dense/vars/0": np.array([Payload(marker)], dtype=object)})
    return buffer.getvalue()


def test_control_the_pickle_payloads_are_live(tmp_path):
    for i, load in enumerate((lambda m: pickle.loads(pickled(m)),
                              lambda m: np.load(io.BytesIO(object_npy(m)), allow_pickle=True),
                              lambda m: np.load(io.BytesIO(object_npz(m)), allow_pickle=True)["layers/dense/vars/0"])):
        marker = tmp_path / f"control-{i}"
        load(marker)
        assert marker.exists()


def plant(run: Path, inbox: Path, marker: Path) -> None:
    for name in ("model.pkl", "tfxray.pkl", "history.pkl", "checkpoint.pkl", "recipe.pickle", "scores.joblib"):
        (run / name).write_bytes(pickled(marker))
    (run / "features.npy").write_bytes(object_npy(marker))
    (run / "features.npz").write_bytes(object_npz(marker))
    (run / "checkpoint").mkdir(exist_ok=True)
    (run / "checkpoint" / "weights.pkl").write_bytes(pickled(marker))
    rewrite(run / "model.keras", add={"assets/payload.pkl": pickled(marker), "model.weights.npz": object_npz(marker),
                                      "payload.pkl": pickled(marker), "assets/payload.npy": object_npy(marker)})
    for name in ("evil.pkl", "evil.npy", "evil.dcm", "IM0001"):
        (inbox / name).write_bytes(object_npy(marker) if name.endswith(".npy") else pickled(marker))


def test_pickles_in_the_run_the_archive_and_the_folder_are_never_unpickled(run, inbox, wrist_png, tmp_path):
    marker = tmp_path / "unpickled"
    plant(run, inbox, marker)
    import pandas as pd

    bundle = load_bundle(run)  # the pickles beside the weights are simply not read
    assert bundle.model is not None
    result = CliRunner().invoke(cli, ["score", str(run), str(inbox), "--out", str(tmp_path / "s.csv"),
                                      "--gradcam", str(tmp_path / "panels")])
    assert result.exit_code in (0, 1) and "Traceback" not in result.output, result.output
    table = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)
    planted = table[table.path.isin(["evil.pkl", "evil.npy", "evil.dcm", "IM0001"])]
    assert len(planted) == 4 and set(planted.status) <= {"skipped", "error"}
    _, manifest = wrist_png
    labels = {path.split("/")[-1]: label for path, label in zip(manifest.path, manifest.label)}
    table.assign(label=table.path.map(labels).fillna("")).to_csv(tmp_path / "labelled.csv", index=False)
    commands = [
        ["evaluate", "--scores", str(tmp_path / "labelled.csv"), "--label-column", "label", "--positive", "fracture",
         "--score-column", "score", "--out", str(tmp_path / "e1"), "--roc"],
        ["evaluate", str(run), "--split", "test", "--out", str(tmp_path / "e2"), "--roc"],
        ["gradcam", str(run), str(inbox), "--out", str(tmp_path / "g")],
        ["inspect", str(inbox), "--run", str(run), "--out", str(tmp_path / "audit.csv")],
    ]
    for args in commands:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args[0], result.output)
        assert "Traceback" not in result.output
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Skipping nested container:UserWarning")  # Keras, on the npz it cannot use
def test_weights_only_as_a_pickled_npz_are_refused(run, tmp_path):
    """An archive whose weights are an npz holding an object array: Keras reads it with allow_pickle=False."""
    marker = tmp_path / "unpickled"
    rewrite(run / "model.keras", add={"model.weights.npz": object_npz(marker)}, drop=("model.weights.h5",))
    message = refusal(run)
    assert message.startswith("could not be loaded (")
    assert not marker.exists()
