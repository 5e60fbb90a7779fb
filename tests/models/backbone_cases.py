"""The registered backbones as pytest parameters; the heavier new ones carry the slow marker."""

import pytest

from tfxray.models.backbones import BACKBONES

# Slow tier (still run in CI): the largest members, seconds each even at 32 px, and middle members whose
# builder and layer naming a default-tier sibling already exercises (efficientnet_b0-b3, efficientnet_v2_b0,
# _b3 and _s, resnet101, resnet50_v2, densenet169 stay in the default tier).
HEAVY = {
    "densenet201", "resnet152", "resnet101_v2", "resnet152_v2",
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
    "efficientnet_v2_b1", "efficientnet_v2_b2",
}


# One member per builder (Keras constructor family, or tfxray's own builder): code that is the same
# for a whole family, such as adapting the first convolution to gray input, is checked on these.
FAMILY_REPRESENTATIVES = (
    "tiny_cnn", "resnet50", "resnet50_v2", "resnext50_32x4d", "inception_v3", "xception", "densenet121",
    "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_v2_b0", "efficientnet_v2_s",
)


def backbone_params(names=None) -> list:
    """``names`` (default: every registered backbone), sorted, heavy ones marked slow."""
    return [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name for name in sorted(names or BACKBONES)]
