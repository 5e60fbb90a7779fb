import pytest
import yaml

from tfxray.config import (EvaluateConfig, apply_overrides, builtin_recipe_names, evaluate_config, load_recipe,
                           parse_override, recipe_from_dict)
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


def test_data_task_is_gone_and_refused_in_one_line(tmp_path):
    """data.task was read by nothing (the phantom kind is `tfxray synth --task`); the recipe's task
    (classification or detection) is a top-level field, which the error points to."""
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"name": "old", "data": {"task": "wrist", "input_size": 64}}))
    with pytest.raises(UserError) as info:
        load_recipe(str(path))
    assert str(info.value) == "old.data: unknown key 'task' (did you mean the top-level 'task'?)"
    assert "\n" not in str(info.value)
    for name in builtin_recipe_names():
        assert "task" not in load_recipe(name).to_dict()["data"]


def test_freeze_all_is_refused_naming_all_but_top():
    with pytest.raises(UserError) as info:
        load_recipe("wrist", [parse_override("model.freeze=all")])
    assert str(info.value) == ("model.freeze: 'all' is not a mode; all-but-top freezes the whole backbone and"
                               " trains the head")
    assert load_recipe("wrist", [parse_override("model.freeze=none")]).model.freeze == "none"


def test_ct_recipe_evaluates_per_patient_by_max():
    recipe = load_recipe("vertebral-ct")
    assert (recipe.evaluate.patient_level, recipe.evaluate.aggregate) == (True, "max")
    assert (load_recipe("wrist").evaluate.patient_level, load_recipe("wrist").evaluate.aggregate) == (False, "max")


def test_evaluate_config_reads_only_the_evaluate_section():
    saved = load_recipe("vertebral-ct").to_dict()
    saved["data"]["task"] = "ct"  # a run saved before data.task was removed still evaluates
    assert evaluate_config(saved) == EvaluateConfig(threshold="0.5", aggregate="max", patient_level=True)
    assert evaluate_config({}) == EvaluateConfig()
    with pytest.raises(UserError, match=r"^run: recipe.evaluate: unknown key 'agregate' \(did you mean 'aggregate'\?\)$"):
        evaluate_config({"evaluate": {"agregate": "max"}}, where="run: recipe")
    with pytest.raises(UserError, match=r"recipe.evaluate.patient_level: true or false expected"):
        evaluate_config({"evaluate": {"patient_level": "yes"}})


def test_overrides_leave_the_loaded_data_untouched():
    data = {"data": {"split": [0.8, 0.1, 0.1]}, "train": {"lr": 0.1}}
    changed = apply_overrides(data, [(["train", "lr"], 0.5), (["data", "split"], [0.5, 0.25, 0.25])])
    assert changed == {"data": {"split": [0.5, 0.25, 0.25]}, "train": {"lr": 0.5}}
    assert data == {"data": {"split": [0.8, 0.1, 0.1]}, "train": {"lr": 0.1}}
    assert changed["data"] is not data["data"]


@pytest.mark.parametrize(("text", "field"), [
    ("learning_rate=0.1", "train.lr"), ("lr=0.1", "train.lr"), ("epochs=3", "train.epochs"),
    ("batch=8", "train.batch_size"), ("batch_size=8", "train.batch_size"), ("backbone=resnet50", "model.backbone"),
    ("size=64", "data.input_size"), ("image_size=64", "data.input_size"), ("input_size=64", "data.input_size"),
    ("freeze=none", "model.freeze"), ("weights=none", "model.weights"), ("seed=1", "train.seed"),
    ("optimizer=adam", "train.optimizer"), ("model.lr=0.1", "train.lr"), ("data.epochs=3", "train.epochs"),
    ("train.warmup=10", "train.schedule.warmup"),
])
def test_short_and_aliased_keys_get_the_dotted_field(text, field):
    key = text.split("=")[0].rsplit(".", 1)[-1]
    with pytest.raises(UserError) as info:
        load_recipe("demo", [parse_override(text)])
    assert str(info.value).endswith(f"unknown key {key!r} (did you mean {field!r}?)")


def test_a_near_key_in_its_own_section_is_named_as_the_section_names_it():
    with pytest.raises(UserError, match=r"^demo\.train: unknown key 'learning_rate' \(did you mean 'lr'\?\)$"):
        load_recipe("demo", [parse_override("train.learning_rate=0.1")])
    with pytest.raises(UserError, match=r"^demo: unknown key 'learning_rate' \(did you mean 'train\.lr'\?\)$"):
        load_recipe("demo", [parse_override("learning_rate=0.1")])


def test_a_layer_setting_epochs_clears_the_iterations_below_it():
    from tfxray.config import resolve_recipe

    assert load_recipe("wrist").train.iterations == 20000
    recipe, source = resolve_recipe("wrist", [("command line", [(["train", "epochs"], 3)])])
    assert (recipe.train.epochs, recipe.train.iterations, source) == (3, 0, "command line")
    recipe, source = resolve_recipe("wrist", [("environment", [(["train", "epochs"], 4)]),
                                              ("command line", [(["train", "iterations"], 50)])])
    assert (recipe.train.epochs, recipe.train.iterations, source) == (4, 50, "command line")
    recipe, source = resolve_recipe("wrist", [("environment", [(["train", "iterations"], 50)]),
                                              ("command line", [(["train", "epochs"], 2)])])
    assert (recipe.train.epochs, recipe.train.iterations, source) == (2, 0, "command line")
    assert resolve_recipe("wrist", [])[1] == "recipe" and resolve_recipe("demo", [])[1] == "recipe"
    with pytest.raises(UserError, match=r"^command line: train\.epochs and train\.iterations both given"):
        resolve_recipe("wrist", [("command line", [(["train", "epochs"], 2), (["train", "iterations"], 9)])])


def test_a_backbone_without_pretrained_weights_clears_the_recipes_imagenet():
    from tfxray.config import resolve_recipe

    recipe, _ = resolve_recipe("wrist", [("command line", [(["model", "backbone"], "tiny_cnn")])])
    assert (recipe.model.backbone, recipe.model.weights) == ("tiny_cnn", "none")
    recipe, _ = resolve_recipe("wrist", [("command line", [(["model", "backbone"], "resnet50")])])
    assert recipe.model.weights == "imagenet"
