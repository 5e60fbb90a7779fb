"""Hostile recipes: a recipe is plain data, and whatever a file holds, loading it ends in one line
naming the file (and the line), quickly, without echoing the document back."""

from __future__ import annotations

import time

import pytest
import yaml
from click.testing import CliRunner

from tfxray import config
from tfxray.cli.main import cli
from tfxray.config import builtin_recipe_names, load_recipe, parse_override, read_recipe_dict, recipe_path
from tfxray.errors import UserError

# 400 bytes that safe_load expands to 9^9 (387 million) strings: 41 s and a MemoryError before
BILLION_LAUGHS = "\n".join(
    [f'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{b}: &{b} [{','.join(['*' + a] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]) + "\n"


def refused(tmp_path, content: bytes | str, name="hostile.yaml", named: bool = True) -> str:
    """The one-line refusal of a recipe file holding ``content``, less the file's path that starts it
    (``named``; the schema's own messages, past the YAML, name the recipe by its stem and the field)."""
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    started = time.perf_counter()
    with pytest.raises(UserError) as caught:
        load_recipe(str(path))
    assert time.perf_counter() - started < 5
    message = str(caught.value)
    assert "\n" not in message and len(message) < 1000, message
    if not named:
        return message
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: "):]


def test_billion_laughs_is_refused_at_the_first_anchor(tmp_path):
    assert len(BILLION_LAUGHS) < 500
    assert refused(tmp_path, BILLION_LAUGHS) == ("line 1: not valid YAML for a recipe (anchor '&a' refused: a recipe "
                                                 "is plain data, without anchors or aliases; write the value out)")


@pytest.mark.parametrize(("content", "expected"), [
    ("train:\n  lr: &rate 0.1\n", "line 2: not valid YAML for a recipe (anchor '&rate' refused"),
    ("name: *nowhere\n", "line 1: not valid YAML for a recipe (alias '*nowhere' refused"),
    ("base: {a: 1}\ntrain:\n  <<: *base\n", "line 3: not valid YAML for a recipe (alias '*base' refused"),
])
def test_anchors_and_aliases_are_refused(tmp_path, content, expected):
    assert refused(tmp_path, content).startswith(expected)


@pytest.mark.parametrize(("content", "tag", "line"), [
    ("name: !!python/object/apply:os.system ['touch {marker}']\n",
     "'tag:yaml.org,2002:python/object/apply:os.system'", 1),
    ("model:\n  backbone: !!python/object:os.system {{}}\n", "'tag:yaml.org,2002:python/object:os.system'", 2),
    ("name: !!python/name:os.system ''\n", "'tag:yaml.org,2002:python/name:os.system'", 1),
    ("name: !custom x\n", "'!custom'", 1),
    ("name: !!binary aGVsbG8=\n", "'tag:yaml.org,2002:binary'", 1),
    ("classes: !!set {{a, b}}\n", "'tag:yaml.org,2002:set'", 1),
    ("name: !!timestamp 2001-12-14\n", "'tag:yaml.org,2002:timestamp'", 1),
])
def test_python_and_custom_tags_are_refused_not_constructed(tmp_path, content, tag, line):
    marker = tmp_path / "marker"
    message = refused(tmp_path, content.format(marker=marker))
    assert message.startswith(f"line {line}: not valid YAML for a recipe (tag {tag} refused: a recipe is plain data")
    assert not marker.exists()


def test_standard_tags_and_plain_values_still_read(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("name: !!str 2001-12-14\ndescription: 2001-12-14\nclasses: !!seq [a, b]\n"
                    "train: {lr: !!float 1, epochs: !!int 3}\n")
    data = read_recipe_dict(str(path))
    assert data == {"name": "2001-12-14", "description": "2001-12-14", "classes": ["a", "b"],
                    "train": {"lr": 1.0, "epochs": 3}}  # an unquoted date stays text: no implicit timestamps


def test_builtin_recipes_read_as_safe_load_reads_them():
    for name in builtin_recipe_names():
        assert read_recipe_dict(name) == yaml.safe_load(recipe_path(name).read_text()), name


def test_non_utf8_names_line_and_byte(tmp_path):
    content = "name: wrist\ndescription: caf".encode() + b"\xe9" + b"\n"
    assert refused(tmp_path, content) == "line 2: not UTF-8 text (byte 28: 0xe9); save the recipe as UTF-8"


def test_nul_and_control_characters(tmp_path):
    assert refused(tmp_path, b"name: a\x00b\n") == ("character #x0000 at offset 7 is not allowed in YAML "
                                                   "(a binary file?)")
    assert refused(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00") == ("line 1: not UTF-8 text (byte 0: 0x89); save the recipe "
                                                         "as UTF-8")
    assert refused(tmp_path, "name: a\x07b\n").startswith("character #x0007 at offset 7 is not allowed")


def test_size_cap(tmp_path, monkeypatch):
    big = "name: big\ndescription: " + "x" * 300_000 + "\n"
    assert refused(tmp_path, big) == f"{len(big):,} bytes; a recipe is a few kB of YAML; over 256,000 bytes is refused"
    monkeypatch.setattr(config, "MAX_RECIPE_BYTES", 20)
    assert refused(tmp_path, "name: a\ndescription: twenty-one\n").endswith("over 20 bytes is refused")


def test_deep_nesting_and_repeated_keys(tmp_path):
    assert refused(tmp_path, "[" * 50_000) == "line 1: not valid YAML for a recipe (nested more than 32 levels deep)"
    assert refused(tmp_path, "name: " + "{a: " * 40 + "1" + "}" * 40 + "\n").startswith(
        "line 1: not valid YAML for a recipe (nested more than 32 levels deep)")
    assert refused(tmp_path, "train:\n  lr: 0.1\ntrain:\n  epochs: 2\n") == (
        "line 3: not valid YAML for a recipe (key 'train' given twice)")


def test_huge_values_are_cut_in_messages(tmp_path):
    message = refused(tmp_path, "model:\n  backbone: " + "x" * 200_000 + "\n", named=False)
    assert message.startswith("model.backbone: unknown backbone '" + "x" * 59 + "... (valid: densenet121")
    message = refused(tmp_path, "train:\n  lr: [" + ", ".join(["1"] * 20_000) + "]\n", named=False)
    assert message == "hostile.train.lr: a number expected, got " + "[1" + ", 1" * 19 + ",..."
    message = refused(tmp_path, "y" * 1000 + ": 1\n", named=False)
    assert message.startswith("hostile: unknown key 'yyyyy") and len(message) < 300


def test_non_finite_numbers_are_refused(tmp_path):
    assert refused(tmp_path, "train:\n  lr: .nan\n", named=False) == (
        "hostile.train.lr: a finite number expected, got nan")
    assert refused(tmp_path, "train:\n  momentum: .inf\n", named=False) == (
        "hostile.train.momentum: a finite number expected, got inf")


@pytest.mark.parametrize(("content", "expected"), [
    ("model:\n  backbone: os.system\n", "model.backbone: unknown backbone 'os.system'"),
    ("model:\n  backbone: __import__('os').system('x')\n", "model.backbone: unknown backbone"),
    ("model:\n  backbone: {module: os, class_name: system}\n", "r.model.backbone: a string expected, got {"),
    ("train:\n  optimizer: tensorflow.keras.optimizers.Adam\n", "train.optimizer: expected one of sgd, adam"),
    ("classes: [normal, '']\n", "recipe.classes: at least two distinct non-empty class names expected"),
])
def test_code_like_values_can_only_name_registered_components(tmp_path, content, expected):
    message = str(pytest.raises(UserError, load_recipe, str(_write(tmp_path, content))).value)
    assert message.startswith(expected), message


def _write(tmp_path, content):
    path = tmp_path / "r.yaml"
    path.write_text(content)
    return path


def test_overrides_are_plain_data_too():
    assert parse_override("train.lr=0.001") == (["train", "lr"], 0.001)
    assert parse_override("classes=[a, b]") == (["classes"], ["a", "b"])
    # an anchor, alias or tag in a --set value is not read as YAML: the value stays the text it is
    assert parse_override("name=&a [*a]") == (["name"], "&a [*a]")
    tagged = "!!python/object/apply:os.system [x]"
    assert parse_override(f"name={tagged}") == (["name"], tagged)
    laughs = "[" + ",".join(["&a [1,1,1,1,1,1,1,1,1]"] + ["*a"] * 8) + "]"
    assert parse_override(f"name={laughs}") == (["name"], laughs)


def test_the_cli_says_it_in_one_line(tmp_path):
    path = _write(tmp_path, BILLION_LAUGHS)
    result = CliRunner().invoke(cli, ["train", str(path), "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output == (f"error: {path}: line 1: not valid YAML for a recipe (anchor '&a' refused: a recipe is "
                             "plain data, without anchors or aliases; write the value out)\n")
    path.write_bytes(b"name: caf\xe9\n")
    result = CliRunner().invoke(cli, ["recipes", "show", str(path)])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "not UTF-8" in result.output, result.output
