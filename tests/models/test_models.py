import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tests.models.backbone_cases import backbone_params  # noqa: E402
from tfxray.errors import UserError  # noqa: E402
from tfxray.models.backbones import BACKBONES, build_backbone  # noqa: E402
from tfxray.models.bundle import BundleMeta, load_bundle, save_bundle  # noqa: E402
from tfxray.models.classifier import build_classifier  # noqa: E402
from tfxray.models.freeze import apply_freeze, backbone_layers, format_parameter_table, parameter_table  # noqa: E402
from tfxray.models.preprocessing import RadiographPreprocessing  # noqa: E402


@pytest.mark.parametrize("name", backbone_params())
def test_every_registered_backbone_builds_flat_without_top(name, monkeypatch):
    """Built as for ImageNet weights where Keras has a file: Keras' request for it (file name, URL,
    hash) is recorded and must be what the registry declares (`tfxray weights list|import` rely on
    it); loading is skipped (no network, and the file is not here)."""
    from keras.src.utils import file_utils

    spec = BACKBONES[name]
    size = max(spec.min_size, 32)
    requests, loaded = [], []

    def recorded_get_file(fname, origin=None, **kwargs):
        requests.append((fname, origin, kwargs.get("file_hash")))
        return f"/nonexistent/{fname}"

    monkeypatch.setattr(file_utils, "get_file", recorded_get_file)
    monkeypatch.setattr(keras.Model, "load_weights", lambda self, path, *args, **kwargs: loaded.append(path))
    model = build_backbone(name, (size, size, 3), weights="imagenet" if spec.imagenet_file else None)
    if spec.imagenet_file:
        assert requests == [(spec.imagenet_file, spec.imagenet_url, spec.imagenet_md5)]
        assert loaded == [f"/nonexistent/{spec.imagenet_file}"]
    else:
        assert requests == loaded == []
    assert len(model.output.shape) == 4  # a feature map, no classification top
    layers = {layer.name: layer for layer in model.layers}
    assert len(layers[spec.gradcam_layer].output.shape) == 4  # Grad-CAM's target is a feature map
    names = [layer.name for layer in model.layers]
    ends = [names.index(last) for _, last in spec.stages]  # each stage's last layer exists...
    assert ends == sorted(set(ends))  # ...shallow to deep
    assert ends[-1] == len(names) - 1  # the last stage ends at the output: every layer has a stage
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)  # flat graph
    # the registry's starts_with_conv flag (can sum-first-conv adapt it?) is what the graph shows:
    # past zero padding, the first layer is a convolution
    first_layer = next(layer for layer in model.layers[1:] if not isinstance(layer, keras.layers.ZeroPadding2D))
    assert isinstance(first_layer, keras.layers.Conv2D) == spec.starts_with_conv

    first = spec.stage_names[0]
    apply_freeze(model, name, f"until:{first}")
    shallow = [layer for layer in model.layers[: ends[0] + 1] if layer.weights]
    deep = [layer for layer in model.layers[ends[0] + 1 :] if layer.weights]
    assert shallow and deep
    assert not any(layer.trainable for layer in shallow) and all(layer.trainable for layer in deep)
    groups = {row["group"]: row for row in parameter_table(model, name)}
    assert groups[first]["trainable"] == 0 and groups[first]["frozen"] > 0
    assert groups[spec.stage_names[1]]["trainable"] > 0


def tiny(freeze="none", **kwargs):
    return build_classifier("tiny_cnn", input_size=32, channels=1, weights=None, freeze=freeze, **kwargs)


def train_one_step(model, n=8):
    rng = np.random.default_rng(0)
    x = rng.random((n, 32, 32, 1)).astype("float32")
    y = (rng.random(n) > 0.5).astype("float32")
    model.compile(keras.optimizers.SGD(0.1), "binary_crossentropy")
    model.fit(x, y, epochs=1, batch_size=n, verbose=0)


def snapshot(layers):
    return {layer.name: [w.numpy().copy() for w in layer.weights] for layer in layers}


def changed(before, after):
    return {name for name in before if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))}


def test_all_but_top_trains_only_the_head_and_bn_statistics_stay():
    model = tiny("all-but-top")
    trainable = {layer.name for layer in model.layers if layer.trainable and layer.weights}
    assert trainable == {"head_dense"}
    before = snapshot(model.layers)
    train_one_step(model)
    after = snapshot(model.layers)
    assert changed(before, after) == {"head_dense"}  # BatchNorm moving mean/variance included


def test_until_stage_freezes_shallow_layers_only():
    model = tiny("until:stage2")
    before = snapshot(model.layers)
    train_one_step(model)
    moved = changed(before, snapshot(model.layers))
    names = [layer.name for layer in model.layers]
    boundary = names.index("stage2_pool")
    shallow = {layer.name for layer in model.layers[: boundary + 1] if layer.weights}
    deep = {layer.name for layer in model.layers[boundary + 1 :] if layer.weights}
    assert not (moved & shallow)
    assert deep <= moved  # every deeper layer, BatchNorm statistics included, moved
    assert "stage3_a_bn" in moved and "stage1_a_bn" not in moved


def test_until_layer_by_name_and_bad_boundary():
    model = tiny("until:stage1_a_conv")
    assert not model.get_layer("stage1_a_conv").trainable and model.get_layer("stage1_a_bn").trainable
    with pytest.raises(UserError, match="until:stage9"):
        tiny("until:stage9")


def test_freeze_none_trains_everything():
    model = tiny("none")
    before = snapshot(backbone_layers(model))
    train_one_step(model)
    assert changed(before, snapshot(backbone_layers(model))) == set(before)


def test_parameter_table_counts_add_up():
    model = tiny("until:stage2")
    rows = parameter_table(model, "tiny_cnn")
    total = sum(r["trainable"] + r["frozen"] for r in rows)
    assert total == model.count_params()
    by_group = {r["group"]: r for r in rows}
    assert by_group["stem"]["trainable"] == 0 and by_group["stem"]["frozen"] > 0
    # stage3 is trainable: only the moving mean and variance of its two 128-channel BatchNorms are not
    assert by_group["stage3"]["frozen"] == 2 * 2 * 128 and by_group["head"]["trainable"] == 257
    assert "total" in format_parameter_table(rows)


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("unit", lambda x: x),
        ("tf", lambda x: x * 2 - 1),
        ("x255", lambda x: x * 255),
        ("torch", lambda x: (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])),
        ("caffe", lambda x: x[..., ::-1] * 255 - np.array([103.939, 116.779, 123.68])),
        ("dataset", lambda x: (x - 0.3) / 0.2),
    ],
)
def test_preprocessing_modes(mode, expected):
    gray = np.random.default_rng(0).random((2, 4, 4, 1)).astype("float32")
    out = np.asarray(RadiographPreprocessing(mode, mean=0.3, std=0.2)(gray))
    assert out.shape == (2, 4, 4, 3)
    np.testing.assert_allclose(out, expected(np.repeat(gray, 3, -1)), rtol=1e-5, atol=1e-4)


def test_per_image_zscore():
    x = np.random.default_rng(1).random((3, 8, 8, 3)).astype("float32") * [1, 2, 3]
    out = np.asarray(RadiographPreprocessing("per_image")(x))
    np.testing.assert_allclose(out.reshape(3, -1).mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(out.reshape(3, -1).std(1), 1, atol=1e-4)


def test_bundle_round_trip_in_safe_mode(tmp_path):
    model = tiny("none", normalization="dataset", dataset_mean=0.4, dataset_std=0.25)
    meta = BundleMeta(classes=["normal", "fracture"], input_size=32, channels=1, resize="stretch",
                      backbone="tiny_cnn", threshold=0.42, threshold_rule="youden")
    save_bundle(model, meta, tmp_path)
    bundle = load_bundle(tmp_path)
    x = np.random.default_rng(2).random((3, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(bundle.model(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
    assert bundle.meta.threshold == 0.42 and bundle.meta.positive == "fracture"
    layer = bundle.model.get_layer("preprocessing")
    assert (layer.mode, layer.mean, layer.std) == ("dataset", 0.4, 0.25)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_loading_a_non_run_directory(tmp_path):
    with pytest.raises(UserError, match="not a tfxray run directory"):
        load_bundle(tmp_path)


def test_imagenet_offline_message(monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: Temporary failure in name resolution")

    monkeypatch.setattr(keras.applications, "ResNet50", offline)
    with pytest.raises(UserError, match=r"resnet50_weights_tf_dim_ordering_tf_kernels_notop\.h5.*tfxray weights import"):
        build_backbone("resnet50", (32, 32, 3), weights="imagenet")
