"""Models: the backbone registry, freeze policies, the classifier and the saved bundle."""

from .backbones import BACKBONES, BackboneSpec, build_backbone

__all__ = ["BACKBONES", "BackboneSpec", "build_backbone"]
