"""Offline ImageNet files: where Keras looks, list, import with a hash check, backbone weight files."""

import dataclasses
import hashlib

import numpy as np
import pytest
from click.testing import CliRunner

from tests.models.backbone_cases import FAMILY_REPRESENTATIVES, backbone_params
from tfxray.cli.main import cli
from tfxray.errors import UserError
from tfxray.models import backbones
from tfxray.models.weights import import_imagenet_file, imagenet_files, keras_cache_dir

KERAS_FILE_BACKBONES = sorted(name for name, spec in backbones.BACKBONES.items() if spec.imagenet_file)
MOBILENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


@pytest.fixture()
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


def with_md5(monkeypatch, name, md5):
    monkeypatch.setitem(backbones.BACKBONES, name, dataclasses.replace(backbones.BACKBONES[name], imagenet_md5=md5))


def test_cache_dir_follows_keras_home(keras_home):
    assert keras_cache_dir() == keras_home / "models"
    rows = {r["backbone"]: r for r in imagenet_files()}
    assert rows["inception_v3"]["path"] == str(keras_home / "models" / "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert not rows["inception_v3"]["present"]


def test_cache_dir_defaults_to_home_dot_keras(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert keras_cache_dir() == tmp_path / ".keras" / "models"


# Every backbone's request is checked in test_models (built once there); the offline failure is
# one code path, shown here on one member of each family.
@pytest.mark.parametrize("name", backbone_params(sorted(set(KERAS_FILE_BACKBONES) & set(FAMILY_REPRESENTATIVES))))
def test_offline_imagenet_request_fails_in_one_line_naming_the_file_keras_asked_for(name, monkeypatch):
    """Keras itself is asked: the file name, URL and hash it passes to get_file, offline."""
    from keras.src.utils import file_utils

    requests = []

    def offline_get_file(fname, origin=None, **kwargs):
        requests.append((fname, origin, kwargs.get("file_hash")))
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline_get_file)
    spec = backbones.BACKBONES[name]
    with pytest.raises(UserError) as caught:
        backbones.build_backbone(name, (spec.min_size, spec.min_size, 3), weights="imagenet")
    assert requests == [(spec.imagenet_file, spec.imagenet_url, spec.imagenet_md5)]
    message = str(caught.value)
    assert "\n" not in message and spec.imagenet_url in message
    assert f"tfxray weights import {spec.imagenet_file}" in message


def test_import_checks_name_and_hash(keras_home, tmp_path, monkeypatch):
    content = b"pretend weights"
    with_md5(monkeypatch, "resnet50", hashlib.md5(content).hexdigest())
    spec = backbones.BACKBONES["resnet50"]
    good = tmp_path / spec.imagenet_file
    good.write_bytes(content)
    target = import_imagenet_file(good)
    assert target.read_bytes() == content and target.parent == keras_home / "models"
    assert {r["backbone"]: r["present"] for r in imagenet_files()}["resnet50"]

    (tmp_path / "bad").mkdir()
    bad = tmp_path / "bad" / spec.imagenet_file
    bad.write_bytes(b"truncated")
    with pytest.raises(UserError, match="does not match Keras"):
        import_imagenet_file(bad)
    other = tmp_path / "weights.h5"
    other.write_bytes(content)
    with pytest.raises(UserError, match=f"not a file tfxray knows.*{MOBILENET_FILE}"):
        import_imagenet_file(other)


def test_import_without_a_declared_hash_needs_hdf5(keras_home, tmp_path):
    assert backbones.BACKBONES["mobilenet_v2"].imagenet_md5 is None  # Keras declares none for this file
    (tmp_path / "html").mkdir()
    fake = tmp_path / "html" / MOBILENET_FILE
    fake.write_bytes(b"<html>captive portal</html>")
    result = CliRunner().invoke(cli, ["weights", "import", str(fake)])
    assert result.exit_code == 2 and "not an HDF5 weights file" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (keras_home / "models" / MOBILENET_FILE).exists()


def test_cli_list_and_path(keras_home, tmp_path, monkeypatch):
    content = b"pretend resnet"
    with_md5(monkeypatch, "resnet50", hashlib.md5(content).hexdigest())
    models = keras_home / "models"
    models.mkdir(parents=True)
    (models / backbones.BACKBONES["resnet50"].imagenet_file).write_bytes(content)
    (models / backbones.BACKBONES["inception_v3"].imagenet_file).write_bytes(b"a truncated download")
    runner = CliRunner()
    listed = runner.invoke(cli, ["weights", "list", "--urls"])
    assert listed.exit_code == 0, listed.output
    status = {line.split()[0]: line.split()[1] for line in listed.output.splitlines()[1:] if not line.startswith(" ")}
    assert status["resnet50"] == "present" and status["inception_v3"] == "corrupt"
    assert status["densenet121"] == "missing" and status["resnext50_32x4d"] == "convert" and status["tiny_cnn"] == "none"
    assert set(status) == set(backbones.BACKBONES)  # one row per registered backbone
    assert backbones.BACKBONES["densenet121"].imagenet_url in listed.output
    assert backbones.BACKBONES["resnet50"].imagenet_url not in listed.output  # present: nothing to fetch

    path = runner.invoke(cli, ["weights", "path", "resnet50"])
    assert path.output.strip() == str(models / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    refused = runner.invoke(cli, ["weights", "path", "resnext50_32x4d"])
    assert refused.exit_code == 2 and "tfxray weights convert" in refused.output


def test_imported_file_is_the_one_keras_loads_offline(keras_home, tmp_path, monkeypatch):
    """End to end: a file imported into $KERAS_HOME/models is what keras.applications loads."""
    import h5py
    import keras
    from keras.src.backend import config
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group
    from keras.src.utils import file_utils

    def no_network(*args, **kwargs):
        raise AssertionError("the test tried to download")

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    monkeypatch.setattr(config, "_KERAS_DIR", str(keras_home))  # Keras reads KERAS_HOME once, at import

    source = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    downloaded = tmp_path / "download" / MOBILENET_FILE
    downloaded.parent.mkdir()
    with h5py.File(downloaded, "w") as handle:  # the legacy layout keras.applications ships
        save_weights_to_hdf5_group(handle, source)
    result = CliRunner().invoke(cli, ["weights", "import", str(downloaded)])
    assert result.exit_code == 0, result.output

    model = backbones.build_backbone("mobilenet_v2", (32, 32, 3), weights="imagenet")
    for name in ("Conv1", "block_8_expand", "Conv_1_bn"):
        for loaded, saved in zip(model.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(loaded, saved)


def test_backbone_weights_file_loads_despite_generated_layer_names(tmp_path):
    """EfficientNet's Normalization layer gets a generated name that differs between builds."""
    from tfxray.models.classifier import build_classifier

    source = backbones.build_backbone("efficientnet_b0", (32, 32, 3), weights=None)
    rng = np.random.default_rng(0)
    normalization = next(layer for layer in source.layers if layer.name.startswith("normalization"))
    normalization.set_weights([rng.random(w.shape).astype(w.dtype) + 0.5 for w in normalization.get_weights()])
    source.save_weights(tmp_path / "effnet.weights.h5")

    model = build_classifier("efficientnet_b0", input_size=32, weights=str(tmp_path / "effnet.weights.h5"))
    target = next(layer for layer in model.layers if layer.name.startswith("normalization"))
    for loaded, saved in zip(target.get_weights(), normalization.get_weights()):
        np.testing.assert_array_equal(loaded, saved)
    np.testing.assert_array_equal(model.get_layer("stem_conv").kernel.numpy(), source.get_layer("stem_conv").kernel.numpy())


@pytest.mark.parametrize("name,constructor", [("mobilenet_v3_small", "MobileNetV3Small"),
                                              ("efficientnet_v2_b0", "EfficientNetV2B0")])
def test_backbone_built_without_keras_preprocessing_loads_its_file_and_computes_the_same(name, constructor, keras_home,
                                                                                          monkeypatch):
    """These are built with include_preprocessing=False and declare tfxray's equivalent mode instead: Keras'
    ImageNet file (written here from random weights) still loads, and the features on [0, 1] pixels equal
    those of Keras' own model, with its preprocessing, on the same pixels times 255."""
    import h5py
    import keras
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group
    from keras.src.utils import file_utils

    from tfxray.models.preprocessing import RadiographPreprocessing

    spec = backbones.BACKBONES[name]
    cached = keras_home / "models" / spec.imagenet_file

    def cached_file(fname, origin=None, **kwargs):  # Keras' hash would reject these random weights
        assert (fname, origin, kwargs.get("file_hash")) == (spec.imagenet_file, spec.imagenet_url, spec.imagenet_md5)
        return str(cached)

    monkeypatch.setattr(file_utils, "get_file", cached_file)
    reference = getattr(keras.applications, constructor)(include_top=False, weights=None, input_shape=(32, 32, 3))
    rng = np.random.default_rng(0)
    for layer in reference.layers:  # random statistics too, so that BatchNorm is not an identity
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([1 + 0.1 * rng.standard_normal(gamma.shape), 0.1 * rng.standard_normal(beta.shape),
                               0.1 * rng.standard_normal(mean.shape), 0.5 + rng.random(var.shape)])
    cached.parent.mkdir(parents=True)
    with h5py.File(cached, "w") as handle:
        save_weights_to_hdf5_group(handle, reference)

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, backbones.build_backbone_output(name, RadiographPreprocessing(spec.preprocessing)(inputs),
                                                                "imagenet"))
    x = rng.random((2, 32, 32, 3)).astype("float32")
    # at stage1's end (random MobileNetV3 weights lose the input's trace deeper down) and at the output
    for ours, theirs in ((spec.stages[1][1],) * 2, (model.layers[-1].name, reference.layers[-1].name)):
        expected = np.asarray(keras.Model(reference.input, reference.get_layer(theirs).output)(x * 255, training=False))
        got = np.asarray(keras.Model(model.input, model.get_layer(ours).output)(x, training=False))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    # control: stage1's features do depend on the pixels
    stage1 = keras.Model(model.input, model.get_layer(spec.stages[1][1]).output)
    features = np.asarray(stage1(x))
    assert np.abs(features - np.asarray(stage1(x[::-1]))).max() > 1e-2 * np.abs(features).max()
