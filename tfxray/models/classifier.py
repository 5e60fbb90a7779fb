"""A classifier is any registered backbone plus a small head, as one flat graph."""

from __future__ import annotations

from .backbones import build_backbone_output, get_spec, resolve_weights
from .freeze import PREPROCESSING_LAYER, apply_freeze, backbone_layers
from .preprocessing import RadiographPreprocessing


def build_classifier(
    backbone: str,
    *,
    input_size: int,
    channels: int = 1,
    n_classes: int = 2,
    weights: str | None = None,
    freeze: str = "none",
    normalization: str = "backbone",
    dataset_mean: float = 0.0,
    dataset_std: float = 1.0,
    dropout: float = 0.0,
    l2: float = 0.0,
    pooling: str = "avg",
):
    """Input: pixels in [0, 1], shape (size, size, channels). Output: sigmoid (2 classes) or softmax."""
    import keras
    from keras import layers

    spec = get_spec(backbone)
    mode = spec.preprocessing if normalization == "backbone" else normalization
    inputs = keras.Input((input_size, input_size, channels), name="image")
    x = RadiographPreprocessing(mode, dataset_mean, dataset_std, name=PREPROCESSING_LAYER)(inputs)
    features = build_backbone_output(backbone, x, weights)
    pool = layers.GlobalAveragePooling2D if pooling == "avg" else layers.GlobalMaxPooling2D
    x = pool(name="head_pool")(features)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    units, activation = (1, "sigmoid") if n_classes == 2 else (n_classes, "softmax")
    # float32 output even under mixed precision, so probabilities and the loss stay exact
    outputs = layers.Dense(
        units, activation=activation, kernel_regularizer=regularizer, dtype="float32", name="head_dense"
    )(x)
    model = keras.Model(inputs, outputs, name=f"tfxray_{backbone}")
    weights_value = resolve_weights(backbone, weights)
    if weights_value not in (None, "imagenet"):
        _load_backbone_weights(model, backbone, weights_value)
    apply_freeze(model, backbone, freeze)
    return model


def _load_backbone_weights(model, backbone: str, path: str) -> None:
    """Load a backbone-only weights file (e.g. from ``tfxray weights convert``) by layer name."""
    from pathlib import Path

    from ..errors import UserError
    from .backbones import build_backbone

    if not Path(path).is_file():
        raise UserError(f"model.weights: {path}: file not found")
    source = build_backbone(backbone, tuple(model.get_layer(PREPROCESSING_LAYER).output.shape[1:]), weights=None)
    try:
        source.load_weights(path)
    except Exception as exc:  # a wrong or corrupt file: one line for the user
        raise UserError(f"model.weights: {path}: could not be loaded ({str(exc).splitlines()[0]})") from None
    # Pair the weighted layers in graph order (as Keras' weights files do), not by name: names Keras
    # generates (EfficientNet's "normalization_3") differ between two builds of one backbone.
    sources = [layer for layer in source.layers if layer.weights]
    for source_layer, target_layer in zip(sources, backbone_layers(model), strict=True):
        target_layer.set_weights(source_layer.get_weights())
