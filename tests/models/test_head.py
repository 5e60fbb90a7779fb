"""Head options: optional dropout and optional L2 on the dense layer (the CT protocol)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tfxray.models.classifier import build_classifier  # noqa: E402


def tiny(**kwargs):
    return build_classifier("tiny_cnn", input_size=32, channels=1, weights=None, normalization="unit", **kwargs)


def test_plain_head_has_no_dropout_and_no_regularizer():
    model = tiny()
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    assert model.get_layer("head_dense").kernel_regularizer is None
    assert model.losses == []


def test_dropout_layer_with_the_configured_rate_sits_between_pooling_and_dense():
    model = tiny(dropout=0.3)
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert [d.name for d in dropouts] == ["head_dropout"]
    assert dropouts[0].rate == pytest.approx(0.3)
    names = [layer.name for layer in model.layers]
    assert names.index("head_pool") + 1 == names.index("head_dropout") == names.index("head_dense") - 1
    # active in training only: about 30% of the pooled features are zeroed, the rest scaled by 1 / 0.7
    features = keras.ops.ones((1, 4000))
    dropped = np.asarray(dropouts[0](features, training=True))
    np.testing.assert_allclose(np.unique(dropped), [0.0, 1 / 0.7], rtol=1e-6)
    assert np.mean(dropped == 0) == pytest.approx(0.3, abs=0.03)
    np.testing.assert_array_equal(np.asarray(dropouts[0](features, training=False)), 1.0)


def test_l2_factor_on_the_dense_kernel_and_in_the_loss():
    l2 = 0.01
    model = tiny(l2=l2)
    dense = model.get_layer("head_dense")
    assert isinstance(dense.kernel_regularizer, keras.regularizers.L2)
    assert dense.kernel_regularizer.l2 == pytest.approx(l2)
    assert dense.bias_regularizer is None
    kernel = np.asarray(dense.kernel, dtype=np.float64)
    dense.kernel.assign(kernel + 0.5)  # a kernel far from zero: the penalty is not negligible
    penalty = l2 * np.sum((kernel + 0.5) ** 2)
    assert len(model.losses) == 1
    assert float(model.losses[0]) == pytest.approx(penalty, rel=1e-5)
    # the training loss is the cross-entropy plus the penalty
    rng = np.random.default_rng(0)
    x = rng.random((8, 32, 32, 1)).astype("float32")
    y = (np.arange(8) % 2).astype("float32")
    model.compile(loss="binary_crossentropy")
    with_penalty = float(model.evaluate(x, y, batch_size=8, verbose=0))
    p = np.clip(np.asarray(model.predict(x, verbose=0))[:, 0].astype(np.float64), 1e-7, 1 - 1e-7)
    cross_entropy = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert with_penalty == pytest.approx(cross_entropy + penalty, rel=1e-4)


def test_vertebral_ct_recipe_builds_and_saves_a_head_with_its_l2(tmp_path):
    from tfxray.config import load_recipe
    from tfxray.data.geometry import ImageGeometry
    from tfxray.models.bundle import BundleMeta, load_bundle, save_bundle
    from tfxray.training.trainer import _build_model

    recipe = load_recipe("vertebral-ct", [(["data", "input_size"], 32), (["model", "weights"], "none")])
    assert recipe.model.l2 == pytest.approx(1e-4) and recipe.model.backbone == "resnet50"
    model = _build_model(recipe, ImageGeometry(32, recipe.data.channels, recipe.data.resize), 0.0, 1.0)
    assert model.get_layer("head_dense").kernel_regularizer.l2 == pytest.approx(1e-4)
    meta = BundleMeta(classes=list(recipe.classes), input_size=32, channels=3, resize="stretch", backbone="resnet50",
                      threshold=0.5, threshold_rule="fixed", gradcam_layer="", recipe=recipe.to_dict())
    save_bundle(model, meta, tmp_path)
    loaded = load_bundle(tmp_path).model.get_layer("head_dense").kernel_regularizer
    assert isinstance(loaded, keras.regularizers.L2) and loaded.l2 == pytest.approx(1e-4)  # survives the bundle
