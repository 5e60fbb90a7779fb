"""Offline ImageNet files: where Keras looks, list, import with a hash check."""

import hashlib

import pytest
from click.testing import CliRunner

from tfxray.cli.main import cli
from tfxray.errors import UserError
from tfxray.models import backbones
from tfxray.models.weights import import_imagenet_file, imagenet_files, keras_cache_dir


@pytest.fixture()
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


def test_cache_dir_follows_keras_home(keras_home):
    assert keras_cache_dir() == keras_home / "models"
    rows = {r["backbone"]: r for r in imagenet_files()}
    assert rows["inception_v3"]["path"] == str(keras_home / "models" / "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert not rows["inception_v3"]["present"]


def test_import_checks_name_and_hash(keras_home, tmp_path, monkeypatch):
    content = b"pretend weights"
    spec = backbones.BACKBONES["resnet50"]
    monkeypatch.setitem(backbones.BACKBONES, "resnet50",
                        backbones.BackboneSpec(**{**spec.__dict__, "imagenet_md5": hashlib.md5(content).hexdigest()}))
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
    with pytest.raises(UserError, match="not a file tfxray knows"):
        import_imagenet_file(other)


def test_cli_list_and_path(keras_home):
    runner = CliRunner()
    listed = runner.invoke(cli, ["weights", "list"])
    assert listed.exit_code == 0 and "inception_v3" in listed.output and "missing" in listed.output
    path = runner.invoke(cli, ["weights", "path", "resnet50"])
    assert path.output.strip() == str(keras_home / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
