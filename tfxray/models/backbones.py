"""Backbone registry: name -> builder, default input size, preprocessing, named stages.

Adding a backbone touches its builder and one line of ``BACKBONES``; tests parametrised
over the registry pick it up. Every builder grows the network on the tensor it is given,
so the classifier is one flat functional graph (tf-keras-vis Grad-CAM fails on nested
models, and a flat graph makes freeze boundaries and layer names addressable).

Keras is imported inside the builders so that importing this module (the CLI's recipe
validation does) stays cheap.
"""

from __future__ import annotations

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


def _keras_application(constructor_name: str) -> Callable:
    def build(input_tensor, weights):
        import keras

        constructor = getattr(keras.applications, constructor_name)
        model = constructor(include_top=False, weights=weights, input_tensor=input_tensor)
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


RESNET_STAGES = (
    ("stem", "pool1_pool"),
    ("stage1", "conv2_block3_out"),
    ("stage2", "conv3_block4_out"),
    ("stage3", "conv4_block6_out"),
    ("stage4", "conv5_block3_out"),
)

def _resnext(variant: str) -> Callable:
    def build(input_tensor, weights):
        from . import resnext

        return getattr(resnext, variant)(input_tensor)

    return build


RESNEXT50_BLOCKS, RESNEXT101_BLOCKS = (3, 4, 6, 3), (3, 4, 23, 3)
# Where keras.applications downloads its ImageNet files (EfficientNet's live under keras-applications/)
KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

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
        imagenet_file="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        imagenet_md5="bcbd6486424b2319ff4ef7d526e38f63",
        imagenet_url=f"{KERAS_APPLICATIONS_URL}inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "resnet50": BackboneSpec(
        _keras_application("ResNet50"),
        default_size=224,
        preprocessing="caffe",
        stages=RESNET_STAGES,
        gradcam_layer="conv5_block3_out",
        imagenet_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        imagenet_md5="4d473c1dd8becc155b73f8504c6f6626",
        imagenet_url=f"{KERAS_APPLICATIONS_URL}resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "densenet121": BackboneSpec(
        _keras_application("DenseNet121"),
        default_size=224,
        preprocessing="torch",
        stages=(("stem", "pool1"), ("stage1", "pool2_pool"), ("stage2", "pool3_pool"), ("stage3", "pool4_pool"),
                ("stage4", "relu")),
        gradcam_layer="relu",
        imagenet_file="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        imagenet_md5="30ee3e1110167f948a6b9946edeeb738",
        imagenet_url=f"{KERAS_APPLICATIONS_URL}densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "mobilenet_v2": BackboneSpec(
        _keras_application("MobileNetV2"),
        default_size=224,
        preprocessing="tf",
        stages=(("stem", "expanded_conv_project_BN"), ("stage1", "block_2_add"), ("stage2", "block_5_add"),
                ("stage3", "block_12_add"), ("stage4", "out_relu")),
        gradcam_layer="out_relu",
        imagenet_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        imagenet_url=f"{KERAS_APPLICATIONS_URL}mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    ),
    "efficientnet_b0": BackboneSpec(
        _keras_application("EfficientNetB0"),
        default_size=224,
        preprocessing="x255",  # Keras' EfficientNet rescales and normalises 0-255 input itself
        stages=(("stem", "stem_activation"), ("stage1", "block2b_add"), ("stage2", "block3b_add"),
                ("stage3", "block5c_add"), ("stage4", "top_activation")),
        gradcam_layer="top_activation",
        imagenet_file="efficientnetb0_notop.h5",
        imagenet_md5="50bc09e76180e00e4465e1a485ddc09d",
        imagenet_url="https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
        starts_with_conv=False,
    ),
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
            raise UserError(
                f"model.weights: ImageNet weights for {name} could not be downloaded ({type(exc).__name__}); "
                f"on a machine with a network fetch {spec.imagenet_url or spec.imagenet_file}, bring it here and run "
                f"'tfxray weights import {spec.imagenet_file}' (checks its hash and copies it into Keras' cache; "
                f"see 'tfxray weights list')"
            ) from None
        raise


def _looks_like_network_error(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("url", "http", "connection", "resolve", "network", "fetch", "download"))


def build_backbone(name: str, input_shape: tuple[int, int, int] | None = None, weights: str | None = None):
    """A Keras model of backbone ``name`` without the ImageNet classification top."""
    import keras

    spec = get_spec(name)
    shape = input_shape or (spec.default_size, spec.default_size, 3)
    inputs = keras.Input(shape, name="image")
    return keras.Model(inputs, build_backbone_output(name, inputs, weights), name=name)
