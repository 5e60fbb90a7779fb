"""ResNeXt-50 32x4d layer for layer as torchvision, and the conversion of its state dict."""

import numpy as np
import pytest
from click.testing import CliRunner

from tfxray.cli.main import cli
from tfxray.errors import UserError
from tfxray.models.backbones import build_backbone
from tfxray.models.weights import conv_kernel_from_torch, convert_torchvision_state, gray_first_conv_kernel, torch_key


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_resnext50_has_torchvisions_parameter_count():
    # torchvision.models.resnext50_32x4d(): 25,028,904 parameters, of which fc = 2048 * 1000 + 1000
    model = build_backbone("resnext50_32x4d", (64, 64, 3), weights=None)
    assert trainable_count(model) == 25_028_904 - 2_049_000
    assert model.get_layer("layer1_0_conv2").groups == 32
    assert model.get_layer("layer4_2_conv2").kernel.shape == (3, 3, 1024 // 32, 1024)


@pytest.mark.slow
def test_resnext101_has_torchvisions_parameter_count():
    # torchvision.models.resnext101_32x8d(): 88,791,336 parameters with fc
    model = build_backbone("resnext101_32x8d", (32, 32, 3), weights=None)
    assert trainable_count(model) == 88_791_336 - 2_049_000


def torch_state_for(model, rng):
    """A random state dict in torchvision's layout and names, shaped from the Keras model."""
    import keras

    state = {}
    for layer in model.layers:
        key = torch_key(layer.name)
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            state[f"{key}.weight"] = rng.standard_normal((cout, cin, kh, kw)).astype(np.float32) * 0.1
        elif isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            state[f"{key}.weight"] = rng.random(n).astype(np.float32) + 0.5
            state[f"{key}.bias"] = rng.standard_normal(n).astype(np.float32)
            state[f"{key}.running_mean"] = rng.standard_normal(n).astype(np.float32)
            state[f"{key}.running_var"] = rng.random(n).astype(np.float32) + 0.5
            state[f"{key}.num_batches_tracked"] = np.array(7)
    state["fc.weight"] = np.zeros((1000, 2048), np.float32)
    state["fc.bias"] = np.zeros(1000, np.float32)
    return state


def numpy_conv(x, weight, stride, padding, groups=1):
    """Convolution computed from the torch layout: x (H, W, C), weight (out, in/groups, kh, kw)."""
    out_c, in_per_group, kh, kw = weight.shape
    xp = np.pad(x, ((padding, padding), (padding, padding), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(0, 1))[::stride, ::stride]  # H', W', C, kh, kw
    out_per_group = out_c // groups
    result = []
    for g in range(groups):
        w = weight[g * out_per_group:(g + 1) * out_per_group]
        patch = windows[:, :, g * in_per_group:(g + 1) * in_per_group]
        result.append(np.einsum("hwcij,ocij->hwo", patch, w))
    return np.concatenate(result, axis=-1)


def test_convert_torchvision_state_dict_numerically(tmp_path):
    import keras

    rng = np.random.default_rng(0)
    model = build_backbone("resnext50_32x4d", (224, 224, 3), weights=None)
    state = torch_state_for(model, rng)
    np.savez(tmp_path / "state.npz", **state)
    out = convert_torchvision_state("resnext50_32x4d", tmp_path / "state.npz", tmp_path / "rx.weights.h5")
    converted = build_backbone("resnext50_32x4d", (64, 64, 3), weights=None)
    converted.load_weights(out)

    # the stem: 7x7 stride 2, padding 3, as torch computes it
    x = rng.standard_normal((64, 64, 3)).astype(np.float32)
    stem = keras.Model(converted.input, converted.get_layer("conv1").output)
    np.testing.assert_allclose(np.asarray(stem(x[None]))[0], numpy_conv(x, state["conv1.weight"], 2, 3), atol=1e-4)

    # a grouped 3x3 convolution (32 groups of 4 channels), padding 1
    layer = converted.get_layer("layer1_0_conv2")
    y = rng.standard_normal((8, 8, 128)).astype(np.float32)
    expected = numpy_conv(y, state["layer1.0.conv2.weight"], 1, 1, groups=32)
    actual = np.asarray(layer(np.pad(y, ((1, 1), (1, 1), (0, 0)))[None]))[0]
    np.testing.assert_allclose(actual, expected, atol=1e-4)

    # the strided grouped 3x3 opening stage 2 (v1.5: stride 2 on the 3x3), through the model's own padding
    z = rng.standard_normal((9, 9, 256)).astype(np.float32)  # odd size: asymmetric padding would show
    padded = converted.get_layer("layer2_0_conv2_pad")(z[None])
    actual = np.asarray(converted.get_layer("layer2_0_conv2")(padded))[0]
    expected = numpy_conv(z, state["layer2.0.conv2.weight"], 2, 1, groups=32)
    assert actual.shape == expected.shape == (5, 5, 256)
    np.testing.assert_allclose(actual, expected, atol=1e-4)

    bn = converted.get_layer("layer3_5_bn2")
    gamma, beta, mean, var = bn.get_weights()
    np.testing.assert_array_equal(gamma, state["layer3.5.bn2.weight"])
    np.testing.assert_array_equal(beta, state["layer3.5.bn2.bias"])
    np.testing.assert_array_equal(mean, state["layer3.5.bn2.running_mean"])
    np.testing.assert_array_equal(var, state["layer3.5.bn2.running_var"])
    down = converted.get_layer("layer2_0_downsample_0").kernel.numpy()
    np.testing.assert_array_equal(down, conv_kernel_from_torch(state["layer2.0.downsample.0.weight"]))


def test_converted_file_loads_into_a_classifier_by_recipe(tmp_path):
    from tfxray.models.classifier import build_classifier

    rng = np.random.default_rng(1)
    state = torch_state_for(build_backbone("resnext50_32x4d", (224, 224, 3), weights=None), rng)
    np.savez(tmp_path / "state.npz", **state)
    result = CliRunner().invoke(cli, ["weights", "convert", "resnext50_32x4d", str(tmp_path / "state.npz"),
                                      "--out", str(tmp_path / "rx.weights.h5")])
    assert result.exit_code == 0, result.output
    model = build_classifier("resnext50_32x4d", input_size=32, weights=str(tmp_path / "rx.weights.h5"))
    np.testing.assert_array_equal(model.get_layer("conv1").kernel.numpy(), conv_kernel_from_torch(state["conv1.weight"]))


def test_mismatched_state_dict_is_one_line(tmp_path):
    np.savez(tmp_path / "bad.npz", **{"conv1.weight": np.zeros((64, 3, 7, 7), np.float32), "extra.weight": np.zeros(1)})
    with pytest.raises(UserError, match=r"does not match resnext50_32x4d: missing \d+ key\(s\).*unexpected 1 key"):
        convert_torchvision_state("resnext50_32x4d", tmp_path / "bad.npz", tmp_path / "x.weights.h5")
    with pytest.raises(UserError, match="ImageNet weights for resnext50_32x4d come from torchvision"):
        build_backbone("resnext50_32x4d", (32, 32, 3), weights="imagenet")


def test_gray_first_conv_equals_replicated_rgb():
    rng = np.random.default_rng(2)
    kernel_torch = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    gray = rng.standard_normal((10, 10, 1)).astype(np.float32)
    rgb = numpy_conv(np.repeat(gray, 3, -1), kernel_torch, 1, 1)
    summed = gray_first_conv_kernel(conv_kernel_from_torch(kernel_torch))  # Keras layout (kh, kw, 1, out)
    one = numpy_conv(gray, np.transpose(summed, (3, 2, 0, 1)), 1, 1)
    np.testing.assert_allclose(one, rgb, atol=1e-4)
