"""ResNeXt (Xie et al. 2017) as torchvision builds it, on the ResNet bottleneck design.

ResNeXt is neither in keras.applications nor in keras-cv. One builder makes ResNet-style
networks; ResNeXt-50 32x4d is ``layers=(3, 4, 6, 3), cardinality=32, base_width=4`` (timm's
way: variants are arguments). Layer for layer it follows torchvision's ``ResNet`` with
``Bottleneck`` blocks (v1.5: the stride sits on the grouped 3x3 convolution), convolutions
without bias followed by BatchNorm (epsilon 1e-5, torch momentum 0.1 = Keras 0.9), so a
torchvision state dict converts one to one. Layer names follow the state dict's keys with
dots replaced by underscores (``layer1.0.conv2`` -> ``layer1_0_conv2``).
"""

from __future__ import annotations

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def _conv_bn(x, filters, kernel, stride, name, groups=1, relu=True):
    from keras import layers

    if kernel > 1:  # torch pads (kernel // 2) on every side; Keras' "same" pads asymmetrically at stride 2
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    x = layers.Conv2D(filters, kernel, strides=stride, groups=groups, use_bias=False, name=name)(x)
    bn_name = name.replace("conv", "bn") if "conv" in name else f"{name}_bn"
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=bn_name)(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _bottleneck(x, planes, stride, cardinality, base_width, name, downsample):
    from keras import layers

    width = int(planes * (base_width / 64.0)) * cardinality
    shortcut = x
    y = _conv_bn(x, width, 1, 1, f"{name}_conv1")
    y = _conv_bn(y, width, 3, stride, f"{name}_conv2", groups=cardinality)
    y = _conv_bn(y, planes * 4, 1, 1, f"{name}_conv3", relu=False)
    if downsample:
        shortcut = layers.Conv2D(planes * 4, 1, strides=stride, use_bias=False, name=f"{name}_downsample_0")(x)
        shortcut = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_downsample_1")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(y)


def resnet_features(input_tensor, *, layers_per_stage=(3, 4, 6, 3), cardinality=1, base_width=64):
    """The feature extractor (no pooling, no fc) grown on ``input_tensor``."""
    from keras import layers

    x = _conv_bn(input_tensor, 64, 7, 2, "conv1")
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)  # torch pads with -inf; after ReLU, zeros are the same
    x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
    in_channels = 64
    for stage, (blocks, planes) in enumerate(zip(layers_per_stage, (64, 128, 256, 512)), start=1):
        for block in range(blocks):
            stride = 2 if (block == 0 and stage > 1) else 1
            downsample = block == 0 and (stride != 1 or in_channels != planes * 4)
            x = _bottleneck(x, planes, stride, cardinality, base_width, f"layer{stage}_{block}", downsample)
            in_channels = planes * 4
    return x


def resnext50_32x4d(input_tensor, weights=None):
    return resnet_features(input_tensor, layers_per_stage=(3, 4, 6, 3), cardinality=32, base_width=4)


def resnext101_32x8d(input_tensor, weights=None):
    return resnet_features(input_tensor, layers_per_stage=(3, 4, 23, 3), cardinality=32, base_width=8)
