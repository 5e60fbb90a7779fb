import pytest
import yaml

from tfxray.config import builtin_recipe_names, load_recipe, parse_override, recipe_from_dict
from tfxray.errors import UserError


def test_builtin_recipes_load_and_validate():
    names = builtin_recipe_names()
    assert {"wrist", "demo"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert recipe.name == name


def test_wrist_recipe_carries_the_published_protocol():
    recipe = load_recipe("wrist")
    assert recipe.model.backbone == "inception_v3"
    assert recipe.model.freeze == "all-but-top"
    assert recipe.data.input_size == 299
    assert recipe.augment.offline.factor == 8
    assert recipe.augment.offline.rotation == 25
    assert (recipe.train.lr, recipe.train.schedule.every, recipe.train.schedule.factor) == (0.02, 1800, 0.67)
    assert recipe.train.iterations == 20000
    assert recipe.data.split == [0.8, 0.1, 0.1]


def test_unknown_key_is_refused_with_the_nearest_valid_key():
    with pytest.raises(UserError, match=r"unknown key 'learning_rat'.*did you mean 'lr'|unknown key 'learning_rat'"):
        recipe_from_dict({"train": {"learning_rat": 0.1}})
    with pytest.raises(UserError, match=r"did you mean 'backbone'"):
        recipe_from_dict({"model": {"backbon": "resnet50"}})


def test_types_are_checked():
    with pytest.raises(UserError, match=r"train\.epochs: an integer expected"):
        recipe_from_dict({"train": {"epochs": "many"}})
    assert recipe_from_dict({"train": {"lr": 1}}).train.lr == 1.0


def test_overrides_take_precedence_and_are_validated():
    recipe = load_recipe("wrist", [parse_override("train.lr=0.001"), parse_override("model.freeze=until:mixed5")])
    assert recipe.train.lr == 0.001
    assert recipe.model.freeze == "until:mixed5"
    with pytest.raises(UserError, match="model.freeze"):
        load_recipe("wrist", [parse_override("model.freeze=sometimes")])
    with pytest.raises(UserError, match="unknown backbone 'resnet5'.*resnet50"):
        load_recipe("wrist", [parse_override("model.backbone=resnet5")])


def test_recipe_from_file_and_missing_recipe(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "model": {"backbone": "tiny_cnn", "weights": "none"}}))
    assert load_recipe(str(path)).model.backbone == "tiny_cnn"
    with pytest.raises(UserError, match="recipe 'wirst' not found.*wrist"):
        load_recipe("wirst")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(str(bad))


def test_yaml_cannot_run_code(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(str(path))
