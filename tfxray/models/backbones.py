"""Backbone registry: name -> builder, default input size, preprocessing, named stages.

Adding a backbone touches its builder and one line of ``BACKBONES`` (a member of a
keras.applications family: one row of its family table); tests parametrised over the
registry pick it up. Every builder grows the network on the tensor it is given,
so the classifier is one flat functional graph (tf-keras-vis Grad-CAM fails on nested
models, and a flat graph makes freeze boundaries and layer names addressable).

Keras is imported inside the builders so that importing this module (the CLI's recipe
validation does) stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ..errors import UserError


@dataclass(frozen=True)
class BackboneSpec:
    builder: Callable  # (input_tensor, weights) -> output tensor of the last feature map
    default_size: int
    preprocessing: str  # caffe | tf | torch | unit: what the ImageNet weights expect
    stages: tuple[tuple[str, str], ...]  # (stage name, name of its last layer), shallow to deep
    gradcam_layer: str  # the last convolutional block: Grad-CAM's default target
    min_size: int = 32
    imagenet_file: str | None = None  # file name in Keras' cache (~/.keras/models)
    imagenet_md5: str | None = None  # the hash Keras checks the download against, when it declares one
    torchvision_name: str | None = None  # ImageNet weights converted from torchvision instead
    imagenet_url: str | None = None  # where Keras downloads imagenet_file from (to fetch it by hand)
    # The first layer with weights is a convolution reached through zero padding only, so it can be
    # adapted to gray input (model.gray_input: sum-first-conv). False where the backbone rescales or
    # normalises its input itself first (EfficientNet's Rescaling and per-channel Normalization).
    starts_with_conv: bool = True

    @property
    def stage_names(self) -> list[str]:
        return [name for name, _ in self.stages]

    @property
    def pretrained(self) -> bool:
        """Pretrained weights exist for it (Keras' ImageNet file or torchvision's); False for a backbone
        meant to be trained from scratch (``tiny_cnn``)."""
        return bool(self.imagenet_file or self.torchvision_name)


def _keras_application(constructor_name: str, **options) -> Callable:
    def build(input_tensor, weights):
        import keras

        constructor = getattr(keras.applications, constructor_name)
        model = constructor(include_top=False, weights=weights, input_tensor=input_tensor, **options)
        return model.output

    return build


def _tiny_cnn(input_tensor, weights):
    """A small conv net with BatchNorm (8 convolutions): the honest choice for the demo and tests.

    ImageNet-sized backbones need ImageNet weights or far more steps than a CPU demo has;
    this one learns the synthetic phantoms from random weights in a few epochs.
    """
    from keras import layers

    if weights not in (None, "none"):
        raise UserError("model.weights: tiny_cnn has no pretrained weights; use weights: none")

    def conv_bn(x, filters, name):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return layers.Activation("relu", name=f"{name}_relu")(x)

    x = conv_bn(input_tensor, 16, "stem")
    # Average, not max: a max pool would erase a thin dark fracture line between bright cortex.
    x = layers.AveragePooling2D(2, name="stem_pool")(x)
    for stage, filters in enumerate((32, 64, 128), start=1):
        x = conv_bn(x, filters, f"stage{stage}_a")
        x = conv_bn(x, filters, f"stage{stage}_b")
        x = layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
    return conv_bn(x, 256, "stage4")


def _mobilenet_v3(constructor_name: str) -> Callable:
    """MobileNetV3 without its own Rescaling layer: preprocessing 'tf' feeds it the same [-1, 1] values, and
    its first layer stays a convolution (gray input can be adapted). Keras leaves its last hard-swish
    unnamed (the auto name changes with what was built before), so it is applied again as 'top_activation'."""

    def build(input_tensor, weights):
        import keras

        constructor = getattr(keras.applications, constructor_name)
        model = constructor(include_top=False, weights=weights, input_tensor=input_tensor, include_preprocessing=False)
        return keras.layers.Activation("hard_swish", name="top_activation")(model.get_layer("conv_1_bn").output)

    return build


def _resnext(variant: str) -> Callable:
    def build(input_tensor, weights):
        from . import resnext

        return getattr(resnext, variant)(input_tensor)

    return build


# Where keras.applications downloads its ImageNet files (EfficientNet's live under keras-applications/)
KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
EFFICIENTNET_URL = "https://storage.googleapis.com/keras-applications/"


def _keras_file(folder_url: str, file: str, md5: str | None) -> dict:
    """The ImageNet file (without top) Keras downloads, as keras/src/applications/*.py names and hashes it."""
    return {"imagenet_file": file, "imagenet_md5": md5, "imagenet_url": f"{folder_url}{file}"}


def _letter(repeats: int) -> str:
    return chr(ord("a") + repeats - 1)  # Keras names the blocks of a stage a, b, c...


def _efficientnet_stages(repeats: tuple[int, int, int], depth: float) -> tuple[tuple[str, str], ...]:
    """Stages ending where the resolution halves next (after blocks 2, 3 and 5), with Keras' rounding of the
    repeats (ceil(depth * repeats)); every stage's last block is a residual one, ending in its Add."""
    ends = [f"block{block}{_letter(int(math.ceil(depth * n)))}_add" for block, n in zip((2, 3, 5), repeats)]
    return (("stem", "stem_activation"), ("stage1", ends[0]), ("stage2", ends[1]), ("stage3", ends[2]),
            ("stage4", "top_activation"))


RESNEXT50_BLOCKS, RESNEXT101_BLOCKS = (3, 4, 6, 3), (3, 4, 23, 3)
# Residual blocks per stage (Keras' conv2..conv5) of ResNet-50/101/152, V1 and V2 alike
RESNET_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _resnet_stages(blocks: tuple[int, ...], last: str | None = None) -> tuple[tuple[str, str], ...]:
    stages = (("stem", "pool1_pool"),) + tuple(
        (f"stage{i}", f"conv{i + 1}_block{n}_out") for i, n in enumerate(blocks, 1))
    return stages[:-1] + (("stage4", last),) if last else stages


# Family tables: one row per member, values from keras/src/applications/*.py (md5 of the file without top).
RESNET_MD5 = {  # caffe preprocessing; Grad-CAM at the last block's output
    50: "4d473c1dd8becc155b73f8504c6f6626",
    101: "88cf7a10940856eca736dc7b7e228a21",
    152: "ee4c566cf9a93f14d82f913c2dc6dd0c",
}
RESNET_V2_MD5 = {  # tf preprocessing; pre-activation blocks, so the net ends in post_bn -> post_relu
    50: "fac2f116257151a9d068a22e544a4917",
    101: "c0ed64b8031c3730f411d2eb4eea35b5",
    152: "ed17cf2e0169df9d443503ef94b23b33",
}
DENSENET_MD5 = {
    121: "30ee3e1110167f948a6b9946edeeb738",
    169: "b8c4d4c20dd625c148057b9ff1c1176b",
    201: "c13680b51ded0fb44dff2d8f86ac8bb1",
}
# EfficientNet: (default size, depth coefficient, md5)
EFFICIENTNET = {
    "b0": (224, 1.0, "50bc09e76180e00e4465e1a485ddc09d"),
    "b1": (240, 1.1, "74c4e6b3e1f6a1eea24c589628592432"),
    "b2": (260, 1.2, "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "b3": (300, 1.4, "af6d107764bb5b1abb91932881670226"),
    "b4": (380, 1.8, "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "b5": (456, 2.2, "38879255a25d3c92d5e44e04ae6cec6f"),
    "b6": (528, 2.6, "9ecce42647a20130c1f39a5d4cb75743"),
    "b7": (600, 3.1, "cbcfe4450ddf6f3ad90b1b398090fe4a"),
}
EFFICIENTNET_REPEATS = (2, 2, 3)  # blocks 2, 3 and 5 before depth scaling
# EfficientNetV2: (default size, depth coefficient, md5, repeats of blocks 2, 3 and 5 before depth scaling)
EFFICIENTNET_V2 = {
    "b0": (224, 1.0, "893217f2bb855e2983157299931e43ff", (2, 2, 5)),
    "b1": (240, 1.1, "0e80663031ca32d657f9caa404b6ec37", (2, 2, 5)),
    "b2": (260, 1.2, "1dfe2e7a5d45b6632553a8961ea609eb", (2, 2, 5)),
    "b3": (300, 1.4, "f6abf7b5849ac99a89b50dd3fd532856", (2, 2, 5)),
    "s": (384, 1.0, "af0682fb74e8c54910f2d4393339c070", (4, 4, 9)),
}
# MobileNetV3 (alpha 1.0, not minimalistic): (constructor, stage ends before top_activation, md5).
# Small's first block already halves the resolution, so its stem ends at the stem convolution's BatchNorm.
MOBILENET_V3 = {
    "small": ("MobileNetV3Small", ("conv_bn", "expanded_conv_project_bn", "expanded_conv_2_add", "expanded_conv_7_add"),
              "d3e8ec802a04aa4fc771ee12a9a9b836"),
    "large": ("MobileNetV3Large", ("expanded_conv_add", "expanded_conv_2_add", "expanded_conv_5_add",
                                   "expanded_conv_11_add"), "07fb09a5933dd0c8eaafa16978110389"),
}


def _families() -> dict[str, BackboneSpec]:
    specs = {}
    for depth, md5 in RESNET_MD5.items():
        specs[f"resnet{depth}"] = BackboneSpec(
            _keras_application(f"ResNet{depth}"),
            default_size=224,
            preprocessing="caffe",
            stages=_resnet_stages(RESNET_BLOCKS[depth]),
            gradcam_layer="conv5_block3_out",
            **_keras_file(f"{KERAS_APPLICATIONS_URL}resnet/", f"resnet{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5", md5),
        )
    for depth, md5 in RESNET_V2_MD5.items():
        specs[f"resnet{depth}_v2"] = BackboneSpec(
            _keras_application(f"ResNet{depth}V2"),
            default_size=224,
            preprocessing="tf",
            stages=_resnet_stages(RESNET_BLOCKS[depth], last="post_relu"),
            gradcam_layer="post_relu",
            **_keras_file(f"{KERAS_APPLICATIONS_URL}resnet/", f"resnet{depth}v2_weights_tf_dim_ordering_tf_kernels_notop.h5", md5),
        )
    for depth, md5 in DENSENET_MD5.items():
        specs[f"densenet{depth}"] = BackboneSpec(
            _keras_application(f"DenseNet{depth}"),
            default_size=224,
            preprocessing="torch",
            stages=(("stem", "pool1"), ("stage1", "pool2_pool"), ("stage2", "pool3_pool"), ("stage3", "pool4_pool"),
                    ("stage4", "relu")),
            gradcam_layer="relu",
            **_keras_file(f"{KERAS_APPLICATIONS_URL}densenet/", f"densenet{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5", md5),
        )
    for variant, (size, depth, md5) in EFFICIENTNET.items():
        specs[f"efficientnet_{variant}"] = BackboneSpec(
            _keras_application(f"EfficientNet{variant.upper()}"),
            default_size=size,
            preprocessing="x255",  # Keras' EfficientNet rescales and normalises 0-255 input itself
            stages=_efficientnet_stages(EFFICIENTNET_REPEATS, depth),
            gradcam_layer="top_activation",
            starts_with_conv=False,
            **_keras_file(EFFICIENTNET_URL, f"efficientnet{variant}_notop.h5", md5),
        )
    for variant, (size, depth, md5, repeats) in EFFICIENTNET_V2.items():
        # B0-B3 normalise with ImageNet's mean/std inside (torch): left out, tfxray's 'torch' does the same and the
        # first layer stays a convolution. S rescales to x/128 - 1, which no tfxray mode reproduces: kept inside.
        inside = variant == "s"
        specs[f"efficientnet_v2_{variant}"] = BackboneSpec(
            _keras_application(f"EfficientNetV2{variant.upper()}", include_preprocessing=inside),
            default_size=size,
            preprocessing="x255" if inside else "torch",
            stages=_efficientnet_stages(repeats, depth),
            gradcam_layer="top_activation",
            starts_with_conv=not inside,
            **_keras_file(f"{KERAS_APPLICATIONS_URL}efficientnet_v2/", f"efficientnetv2-{variant}_notop.h5", md5),
        )
    for variant, (constructor, ends, md5) in MOBILENET_V3.items():
        specs[f"mobilenet_v3_{variant}"] = BackboneSpec(
            _mobilenet_v3(constructor),
            default_size=224,
            preprocessing="tf",
            stages=tuple(zip(("stem", "stage1", "stage2", "stage3", "stage4"), ends + ("top_activation",))),
            gradcam_layer="top_activation",
            **_keras_file(f"{KERAS_APPLICATIONS_URL}mobilenet_v3/", f"weights_mobilenet_v3_{variant}_224_1.0_float_no_top_v2.h5",
                          md5),
        )
    return specs


BACKBONES: dict[str, BackboneSpec] = {
    "tiny_cnn": BackboneSpec(
        _tiny_cnn,
        default_size=128,
        preprocessing="unit",
        stages=(
            ("stem", "stem_pool"),
            ("stage1", "stage1_pool"),
            ("stage2", "stage2_pool"),
            ("stage3", "stage3_pool"),
            ("stage4", "stage4_relu"),
        ),
        # Grad-CAM at stage2 (a quarter of the input): the 8 and 16 px cells of the deeper maps are
        # coarser than a phantom fracture (pointing game on the demo: 100% at stage2, 0% deeper).
        gradcam_layer="stage2_b_relu",
        min_size=16,
    ),
    "inception_v3": BackboneSpec(
        _keras_application("InceptionV3"),
        default_size=299,
        preprocessing="tf",
        stages=tuple((f"mixed{i}", f"mixed{i}") for i in range(11)),  # the Inception blocks, by Keras' names
        gradcam_layer="mixed10",
        min_size=75,
        **_keras_file(f"{KERAS_APPLICATIONS_URL}inception_v3/", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      "bcbd6486424b2319ff4ef7d526e38f63"),
    ),
    "xception": BackboneSpec(
        _keras_application("Xception"),
        default_size=299,
        preprocessing="tf",
        # Keras leaves Xception's residual Adds unnamed (auto names vary), so stages 1-3 end at the named,
        # weightless ReLU that follows each Add: after blocks 2 and 3, and after the middle flow (block 12).
        stages=(("stem", "block1_conv2_act"), ("stage1", "block3_sepconv1_act"), ("stage2", "block4_sepconv1_act"),
                ("stage3", "block13_sepconv1_act"), ("stage4", "block14_sepconv2_act")),
        gradcam_layer="block14_sepconv2_act",
        min_size=71,
        **_keras_file(f"{KERAS_APPLICATIONS_URL}xception/", "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      "b0042744bf5b25fce3cb969f33bebb97"),
    ),
    "mobilenet_v2": BackboneSpec(
        _keras_application("MobileNetV2"),
        default_size=224,
        preprocessing="tf",
        stages=(("stem", "expanded_conv_project_BN"), ("stage1", "block_2_add"), ("stage2", "block_5_add"),
                ("stage3", "block_12_add"), ("stage4", "out_relu")),
        gradcam_layer="out_relu",
        **_keras_file(f"{KERAS_APPLICATIONS_URL}mobilenet_v2/", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
                      None),  # Keras declares no hash
    ),
    # resnet50/101/152(_v2), densenet121/169/201, efficientnet_b0..b7, efficientnet_v2_b0..b3/s, mobilenet_v3_*
    **_families(),
    # ImageNet weights for ResNeXt come from torchvision: `tfxray weights convert` (preprocessing 'torch').
    "resnext50_32x4d": BackboneSpec(
        _resnext("resnext50_32x4d"),
        default_size=224,
        preprocessing="torch",
        stages=(("stem", "maxpool"),) + tuple((f"stage{i}", f"layer{i}_{n - 1}_out") for i, n in enumerate(RESNEXT50_BLOCKS, 1)),
        gradcam_layer="layer4_2_out",
        torchvision_name="resnext50_32x4d",
    ),
    "resnext101_32x8d": BackboneSpec(
        _resnext("resnext101_32x8d"),
        default_size=224,
        preprocessing="torch",
        stages=(("stem", "maxpool"),) + tuple((f"stage{i}", f"layer{i}_{n - 1}_out") for i, n in enumerate(RESNEXT101_BLOCKS, 1)),
        gradcam_layer="layer4_2_out",
        torchvision_name="resnext101_32x8d",
    ),
}


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(BACKBONES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (valid: {', '.join(sorted(BACKBONES))})"
        raise UserError(f"backbone: unknown name {name!r}{hint}") from None


def resolve_weights(name: str, weights: str | None) -> str | None:
    """Map the recipe's weights field to what a Keras builder takes, failing clearly offline."""
    if weights in (None, "none", "None", ""):
        return None
    if weights == "imagenet":
        spec = get_spec(name)
        if spec.torchvision_name:
            raise UserError(
                f"model.weights: ImageNet weights for {name} come from torchvision; export them as .npz and convert "
                f"them with 'tfxray weights convert {name} FILE.npz --out {name}.weights.h5', then set model.weights "
                f"to that file"
            )
        if spec.imagenet_file is None:
            raise UserError(f"model.weights: backbone {name!r} has no ImageNet weights; use weights: none")
        return "imagenet"
    return weights  # a path: checked and loaded after the graph is built


def build_backbone_output(name: str, input_tensor, weights: str | None = None):
    """Grow backbone ``name`` on ``input_tensor``; return its last feature map tensor."""
    spec = get_spec(name)
    keras_weights = resolve_weights(name, weights)
    try:
        return spec.builder(input_tensor, "imagenet" if keras_weights == "imagenet" else None)
    except Exception as exc:  # Keras downloads ImageNet weights at construction and fails offline
        if keras_weights == "imagenet" and _looks_like_network_error(exc):
            raise UserError(offline_weights_message(name, download_failure(exc))) from None
        raise


def _looks_like_network_error(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("url", "http", "connection", "resolve", "network", "fetch", "download"))


def download_failure(exc: BaseException) -> str:
    """Why a download failed, in a few words: Keras' 'URL fetch failure on URL: None -- [Errno -3]
    Temporary failure in name resolution' becomes the part after the URL."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if " -- " in text:
        text = text.split(" -- ", 1)[1]
    return text[:160] or type(exc).__name__


def offline_weights_message(name: str, reason: str) -> str:
    """One line: ImageNet weights for ``name`` are not here and could not be fetched; the ways on."""
    spec = get_spec(name)
    return (
        f"model.weights: ImageNet weights for {name} are not in Keras' cache and could not be downloaded ({reason}). "
        f"To start without a download: --weights none --freeze none (the whole network from random weights), or "
        f"--backbone tiny_cnn --weights none (a small network meant to train from scratch). To pre-stage the file: "
        f"fetch {spec.imagenet_url or spec.imagenet_file} on a connected machine, then run 'tfxray weights import "
        f"{spec.imagenet_file}' here (see 'tfxray weights list')"
    )


def build_backbone(name: str, input_shape: tuple[int, int, int] | None = None, weights: str | None = None):
    """A Keras model of backbone ``name`` without the ImageNet classification top."""
    import keras

    spec = get_spec(name)
    shape = input_shape or (spec.default_size, spec.default_size, 3)
    inputs = keras.Input(shape, name="image")
    return keras.Model(inputs, build_backbone_output(name, inputs, weights), name=name)
