"""model.gray_input: sum-first-conv computes what replicate computes, with the first conv fed one gray channel."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tests.models.backbone_cases import FAMILY_REPRESENTATIVES, backbone_params  # noqa: E402
from tfxray.errors import UserError  # noqa: E402
from tfxray.models.backbones import BACKBONES, build_backbone  # noqa: E402
from tfxray.models.bundle import BundleMeta, load_bundle, save_bundle  # noqa: E402
from tfxray.models.classifier import build_classifier, first_conv  # noqa: E402
from tfxray.models.preprocessing import PER_CHANNEL_MODES, RadiographPreprocessing, replicated_affine  # noqa: E402
from tfxray.models.weights import fold_first_conv_kernel, gray_first_conv_kernel  # noqa: E402


def conv(x, kernel, padding="same", strides=1):
    return np.asarray(keras.ops.conv(x, kernel, strides=strides, padding=padding))


def test_folded_kernel_is_exact_on_a_zero_padded_convolution():
    """conv(K, scale*g + offset) with zero padding == conv(folded K, [g, support]), borders included."""
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(7, 7, 3, 5)).astype("float32")
    scale, offset = replicated_affine("torch")
    gray = rng.random((2, 20, 20, 1)).astype("float32")
    rgb = (gray * scale + offset).astype("float32")  # what replicate + torch normalisation feeds the backbone
    support = np.ones_like(gray)
    for strides in (1, 2):
        expected = conv(rgb, kernel, strides=strides)
        folded = conv(np.concatenate([gray, support], -1), fold_first_conv_kernel(kernel, scale, offset), strides=strides)
        np.testing.assert_allclose(folded, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
        # an offset folded into a bias instead is right inside the image only: the border shows it
        interior_bias = np.einsum("hwco,c->o", kernel, offset)
        biased = conv(gray, fold_first_conv_kernel(kernel, scale, offset)[:, :, :1]) + interior_bias
        if strides == 1:
            np.testing.assert_allclose(biased[:, 3:-3, 3:-3], expected[:, 3:-3, 3:-3], rtol=1e-4, atol=1e-3)
            assert np.abs(biased[:, 0] - expected[:, 0]).max() > 1.0
    # with no offset and unit scale the fold is the plain sum over RGB
    np.testing.assert_allclose(fold_first_conv_kernel(kernel, np.ones(3), np.zeros(3))[:, :, :1],
                               gray_first_conv_kernel(kernel), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["unit", "x255", "tf", "torch", "caffe", "dataset", "per_image"])
def test_gray_preprocessing_feeds_one_channel_or_gray_plus_support(mode):
    gray = np.random.default_rng(1).random((2, 6, 6, 1)).astype("float32")
    replicated = np.asarray(RadiographPreprocessing(mode, mean=0.3, std=0.2)(gray))
    layer = RadiographPreprocessing(mode, mean=0.3, std=0.2, gray_input="sum-first-conv")
    out = np.asarray(layer(gray))
    assert out.shape == layer.compute_output_shape(gray.shape)
    if mode in PER_CHANNEL_MODES:
        np.testing.assert_array_equal(out, np.concatenate([gray, np.ones_like(gray)], -1))
        scale, offset = replicated_affine(mode)
        np.testing.assert_allclose(gray * scale + offset, replicated, rtol=1e-5, atol=1e-4)
    else:  # the one channel holds what each of the three replicated channels holds
        assert out.shape[-1] == 1
        for c in range(3):
            np.testing.assert_allclose(out[..., 0], replicated[..., c], rtol=1e-5, atol=1e-5)


def random_weights_file(name, size, path, seed=0):
    """A 'pretrained' RGB backbone: random kernels, non-trivial biases and BatchNorm statistics."""
    source = build_backbone(name, (size, size, 3), weights=None)
    rng = np.random.default_rng(seed)
    for weight in source.weights:
        value = weight.numpy()
        if "variance" in weight.path:
            value = rng.uniform(0.5, 1.5, value.shape)
        elif any(key in weight.path for key in ("mean", "bias", "beta")):
            value = value + rng.normal(0, 0.1, value.shape)
        weight.assign(value.astype("float32"))
    source.save_weights(path)
    return source


def pooled(model, x):
    return np.asarray(keras.Model(model.inputs, model.get_layer("head_pool").output)(x, training=False))


# One case per way the first convolution meets the input: each preprocessing family (unit, caffe and
# torch per-channel, tf and per-image z-score alike over channels) and each padding (explicit zero
# padding, valid, 'same' in the convolution itself). Other members of a family build the same layers.
EQUIVALENCE_CASES = [
    ("tiny_cnn", 32, "backbone"),  # unit: the kernel summed over RGB
    ("resnet50", 64, "backbone"),  # caffe: per-channel offsets -> gray + support channel; explicit zero padding
    ("mobilenet_v2", 32, "per_image"),  # a z-score treats channels alike -> one
    ("mobilenet_v2", 32, "backbone"),  # tf, 'same' padding in the first conv
    # torch folded into a 'same'-padded stride-2 first conv (Keras' own preprocessing left out)
    pytest.param("efficientnet_v2_b0", 32, "backbone", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,size,normalization", EQUIVALENCE_CASES)
def test_sum_first_conv_computes_what_replicate_computes(name, size, normalization, tmp_path):
    path = tmp_path / f"{name}.weights.h5"
    source = random_weights_file(name, size, path)
    kwargs = dict(input_size=size, weights=str(path), normalization=normalization, dataset_mean=0.3, dataset_std=0.2)
    replicate = build_classifier(name, **kwargs)
    gray = build_classifier(name, gray_input="sum-first-conv", **kwargs)
    gray.get_layer("head_dense").set_weights(replicate.get_layer("head_dense").get_weights())

    mode = BACKBONES[name].preprocessing if normalization == "backbone" else normalization
    first = first_conv(gray)
    assert first.kernel.shape[2] == (2 if mode in PER_CHANNEL_MODES else 1)
    rgb_first = next(layer for layer in source.layers if layer.weights)
    assert rgb_first.kernel.shape[2] == 3
    if len(first.weights) > 1:  # its bias comes across unchanged
        np.testing.assert_array_equal(first.bias.numpy(), rgb_first.bias.numpy())

    x = np.random.default_rng(2).random((2, size, size, 1)).astype("float32")
    expected = pooled(replicate, x)
    assert np.abs(expected).max() > 1e-3  # the features are not trivially zero
    np.testing.assert_allclose(pooled(gray, x), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    # the 3-channel model fed the replicated image by hand agrees too (channels: 3, nothing replicated inside)
    rgb_model = build_classifier(name, channels=3, **kwargs)
    np.testing.assert_allclose(pooled(rgb_model, np.repeat(x, 3, -1)), expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    np.testing.assert_allclose(np.asarray(gray(x)), np.asarray(replicate(x)), rtol=1e-4, atol=1e-6)

    if mode in PER_CHANNEL_MODES:  # control: without the support kernel the normalisation's offsets are lost
        kernel = first.kernel.numpy().copy()
        kernel[:, :, 1] = 0
        first.kernel.assign(kernel)
        assert np.abs(pooled(gray, x) - expected).max() > 1e-2 * np.abs(expected).max()


@pytest.mark.parametrize("name", backbone_params(FAMILY_REPRESENTATIVES))
def test_every_backbone_family_is_adapted_or_refused_in_one_line(name):
    """One member per builder (the flag itself is checked for every backbone in test_models)."""
    spec = BACKBONES[name]
    size = max(spec.min_size, 32)
    if not spec.starts_with_conv:
        with pytest.raises(UserError, match="sum-first-conv needs a backbone whose first layer is a convolution") as caught:
            build_classifier(name, input_size=size, weights=None, gray_input="sum-first-conv")
        assert "\n" not in str(caught.value)
        return
    model = build_classifier(name, input_size=size, weights=None, gray_input="sum-first-conv")
    expected_channels = 2 if spec.preprocessing in PER_CHANNEL_MODES else 1
    assert first_conv(model).kernel.shape[2] == expected_channels
    assert model.input.shape[-1] == 1
    assert model.predict(np.zeros((1, size, size, 1), "float32"), verbose=0).shape == (1, 1)


def test_imagenet_weights_are_folded_too(tmp_path, monkeypatch):
    """weights: imagenet reads Keras' cached file (written here from random weights; no network)."""
    import h5py
    from keras.src.backend import config
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group
    from keras.src.utils import file_utils

    def no_network(*args, **kwargs):
        raise AssertionError("the test tried to download")

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "keras"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    spec = BACKBONES["mobilenet_v2"]
    source = random_weights_file("mobilenet_v2", 32, tmp_path / "unused.weights.h5")
    (tmp_path / "keras" / "models").mkdir(parents=True)
    with h5py.File(tmp_path / "keras" / "models" / spec.imagenet_file, "w") as handle:
        save_weights_to_hdf5_group(handle, source)
    replicate = build_classifier("mobilenet_v2", input_size=32, weights="imagenet")
    gray = build_classifier("mobilenet_v2", input_size=32, weights="imagenet", gray_input="sum-first-conv")
    np.testing.assert_allclose(first_conv(gray).kernel.numpy(), source.get_layer("Conv1").kernel.numpy().sum(2, keepdims=True),
                               rtol=1e-6)
    x = np.random.default_rng(3).random((2, 32, 32, 1)).astype("float32")
    expected = pooled(replicate, x)
    np.testing.assert_allclose(pooled(gray, x), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_gray_bundle_round_trip_in_safe_mode(tmp_path):
    model = build_classifier("resnet50", input_size=32, weights=None, gray_input="sum-first-conv")
    meta = BundleMeta(classes=["normal", "fracture"], input_size=32, channels=1, resize="stretch", backbone="resnet50",
                      gray_input="sum-first-conv")
    save_bundle(model, meta, tmp_path)
    bundle = load_bundle(tmp_path)
    assert bundle.meta.gray_input == "sum-first-conv" and bundle.meta.channels == 1
    assert bundle.model.get_layer("preprocessing").gray_input == "sum-first-conv"
    assert first_conv(bundle.model).kernel.shape == (7, 7, 2, 64)
    x = np.random.default_rng(4).random((2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(bundle.model(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"model.gray_input": "sum"}, "gray_input: expected one of replicate, sum-first-conv"),
        ({"model.gray_input": "sum-first-conv", "model.backbone": "efficientnet_b0"},
         "efficientnet_b0 preprocesses its input inside the network"),
        ({"model.gray_input": "sum-first-conv", "data.channels": 3}, "sum-first-conv is for gray input"),
    ],
)
def test_recipe_refuses_what_cannot_be_adapted(overrides, message):
    from tfxray.config import load_recipe

    with pytest.raises(UserError, match=message) as caught:
        load_recipe("demo", [(key.split("."), value) for key, value in overrides.items()])
    assert "\n" not in str(caught.value)


def test_training_with_sum_first_conv_saves_a_one_channel_bundle(wrist_png, tmp_path):
    from tests.chain_helpers import tiny_recipe
    from tfxray.data.manifest import load_manifest
    from tfxray.models.inference import predict_paths
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**{"model.gray_input": "sum-first-conv", "train.epochs": 1, "data.input_size": 32})
    manifest = load_manifest(folder / "manifest.csv", classes=recipe.classes)
    train(recipe, manifest, tmp_path / "run", verbose=0)
    bundle = load_bundle(tmp_path / "run")
    assert (bundle.meta.gray_input, bundle.meta.channels) == ("sum-first-conv", 1)
    assert bundle.model.get_layer("stem_conv").kernel.shape == (3, 3, 1, 16)
    scores, _ = predict_paths(bundle, manifest.images.path.tolist()[:5])
    assert scores.shape == (5, 1) and np.all((scores >= 0) & (scores <= 1))
