"""Freeze modes `all-but-top` and `until:LAYER` trained on synthetic wrist phantoms: frozen layers,
BatchNorm moving statistics included, do not move; the layers after the boundary do."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tests.chain_helpers import tiny_recipe  # noqa: E402
from tfxray.data.manifest import load_manifest  # noqa: E402
from tfxray.models.classifier import build_classifier  # noqa: E402
from tfxray.errors import UserError  # noqa: E402
from tfxray.models.freeze import backbone_layers, check_freeze_mode  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def phantoms(wrist_png):
    """16 wrist phantoms at 32 px with their labels (both classes present)."""
    from tfxray.data.geometry import ImageGeometry
    from tfxray.data.inputs import load_input

    folder, _ = wrist_png
    images = load_manifest(folder / "manifest.csv", classes=["normal", "fracture"]).images
    rows = images.groupby("label", group_keys=False).head(8)
    x = np.stack([load_input(p, ImageGeometry(SIZE, 1, "stretch"))[0] for p in rows.path])
    y = (rows.label == "fracture").to_numpy(np.float32)
    return x, y


def tiny(freeze):
    keras.utils.set_random_seed(0)
    return build_classifier("tiny_cnn", input_size=SIZE, channels=1, weights=None, freeze=freeze,
                            normalization="per_image")


def train_a_few_steps(model, x, y):
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "binary_crossentropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=True)  # 4 steps


def snapshot(model):
    return {layer.name: [np.array(w) for w in layer.weights] for layer in model.layers if layer.weights}


def moved(before, after):
    return {name for name in before if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))}


def test_freeze_all_but_top_keeps_every_backbone_weight_and_bn_statistic(phantoms):
    x, y = phantoms
    model = tiny("all-but-top")
    backbone = {layer.name for layer in backbone_layers(model)}
    assert backbone and not any(model.get_layer(n).trainable for n in backbone)
    before = snapshot(model)
    train_a_few_steps(model, x, y)
    assert moved(before, snapshot(model)) == {"head_dense"}
    # frozen BatchNorm runs in inference mode even when the model is called in training mode
    pooled = keras.Model(model.input, model.get_layer("head_pool").output)
    np.testing.assert_array_equal(np.asarray(pooled(x, training=True)), np.asarray(pooled(x, training=False)))


@pytest.mark.parametrize("boundary", ["stage1_b_conv", "stage2_a_bn"])
def test_freeze_until_layer_keeps_layers_up_to_it_and_trains_the_rest(phantoms, boundary):
    x, y = phantoms
    model = tiny(f"until:{boundary}")
    names = [layer.name for layer in model.layers]
    cut = names.index(boundary)
    weighted = [layer.name for layer in model.layers if layer.weights]
    shallow = {n for n in weighted if names.index(n) <= cut}
    deep = {n for n in weighted if names.index(n) > cut}
    assert boundary in shallow and deep
    before = snapshot(model)
    train_a_few_steps(model, x, y)
    after = snapshot(model)
    assert not (moved(before, after) & shallow)  # frozen: kernels, gammas, betas, moving means and variances
    assert moved(before, after) == deep  # every later layer trained (its BatchNorm statistics too)
    for name in deep & {n for n in weighted if n.endswith("_bn")}:
        bn_before, bn_after = before[name], after[name]
        assert not np.array_equal(bn_before[2], bn_after[2])  # the moving mean moved


def test_train_with_until_layer_saves_the_frozen_layers_untouched(wrist_png, tmp_path):
    """Through the trainer: the saved model's layers up to the boundary equal a fresh build's."""
    from tfxray.models.bundle import load_bundle
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**{"model.freeze": "until:stage1_b_bn", "data.input_size": SIZE, "train.epochs": 2,
                            "train.optimizer": "sgd", "train.lr": 0.05})
    train(recipe, load_manifest(folder / "manifest.csv", classes=recipe.classes), tmp_path / "run", verbose=0)
    keras.utils.set_random_seed(recipe.train.seed)
    initial = build_classifier("tiny_cnn", input_size=SIZE, channels=1, weights=None, normalization="per_image")
    trained = load_bundle(tmp_path / "run").model
    changed = moved(snapshot(initial), snapshot(trained))
    assert not changed & {"stem_conv", "stem_bn", "stage1_a_conv", "stage1_a_bn", "stage1_b_conv", "stage1_b_bn"}
    assert {"stage2_a_conv", "stage2_a_bn", "stage4_bn", "head_dense"} <= changed


@pytest.mark.parametrize("mode", ["all-but-top", "none", "until:stage2", "until:stage1_b_conv"])
def test_freeze_modes_by_name(mode):
    check_freeze_mode(mode)


@pytest.mark.parametrize("mode, message", [
    ("all", "model.freeze: 'all' is not a mode; all-but-top freezes the whole backbone and trains the head"),
    ("top", "model.freeze: expected all-but-top, none, until:STAGE or until:LAYER, got 'top'"),
])
def test_other_freeze_names_are_one_line_errors(mode, message):
    with pytest.raises(UserError) as info:
        check_freeze_mode(mode)
    assert str(info.value) == message
    with pytest.raises(UserError, match=message.split(";")[0]):
        tiny(mode)  # build_classifier refuses it too
