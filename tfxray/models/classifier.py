"""A classifier is any registered backbone plus a small head, as one flat graph.

Gray radiographs (one input channel) reach the backbone in one of two ways (``gray_input``):

- ``replicate`` (default): the preprocessing layer copies the gray channel to RGB and the
  backbone is the ImageNet one, unchanged;
- ``sum-first-conv``: the backbone is built for the gray channel and its first convolution
  takes the pretrained RGB kernel summed over the colours (with the ImageNet normalisation
  folded in where it differs per channel; see ``RadiographPreprocessing``). The model then
  computes the same function as ``replicate`` with the same weights (a test holds it to that),
  for a third of the first convolution's input. Backbones that rescale or normalise their
  input before the first convolution (EfficientNet) are refused.

Either way the saved model takes (size, size, 1) pixels in [0, 1]: ``score`` feeds it alike.
"""

from __future__ import annotations

from ..errors import UserError
from .backbones import build_backbone, build_backbone_output, get_spec, resolve_weights
from .freeze import HEAD_PREFIX, PREPROCESSING_LAYER, apply_freeze, backbone_layers
from .preprocessing import PER_CHANNEL_MODES, RadiographPreprocessing, replicated_affine


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
    gray_input: str = "replicate",
):
    """Input: pixels in [0, 1], shape (size, size, channels). Output: sigmoid (2 classes) or softmax."""
    import keras
    from keras import layers

    spec = get_spec(backbone)
    mode = spec.preprocessing if normalization == "backbone" else normalization
    sum_first_conv = gray_input == "sum-first-conv"
    if sum_first_conv:
        if channels != 1:
            raise UserError(f"model.gray_input: sum-first-conv is for gray input (data.channels: 1), got {channels}")
        if not spec.starts_with_conv:
            raise UserError(f"model.gray_input: sum-first-conv needs a backbone whose first layer is a convolution; "
                            f"{backbone} preprocesses its input inside the network before its first convolution (use gray_input: replicate)")
    weights_value = resolve_weights(backbone, weights)
    inputs = keras.Input((input_size, input_size, channels), name="image")
    x = RadiographPreprocessing(mode, dataset_mean, dataset_std, gray_input=gray_input, name=PREPROCESSING_LAYER)(inputs)
    # a gray backbone is built without weights: they come from the RGB source below, its first kernel adapted
    features = build_backbone_output(backbone, x, None if sum_first_conv else weights)
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
    if sum_first_conv:
        first_conv(model)  # checks the graph: padding only between the preprocessing and a plain convolution
        if weights_value is not None:
            source = _source_backbone(backbone, input_size, weights_value)
            _copy_backbone_weights(source, model, lambda kernel: gray_kernel(kernel, mode))
    elif weights_value not in (None, "imagenet") and not _read_backbone_file(model, weights_value):
        _copy_backbone_weights(_source_backbone(backbone, input_size, weights_value), model)
    apply_freeze(model, backbone, freeze)
    return model


def gray_kernel(kernel, mode: str):
    """The pretrained RGB first kernel (kh, kw, 3, out) as the gray backbone's first kernel."""
    from .weights import fold_first_conv_kernel, gray_first_conv_kernel

    if mode in PER_CHANNEL_MODES:
        return fold_first_conv_kernel(kernel, *replicated_affine(mode))
    return gray_first_conv_kernel(kernel)  # every replicated channel holds the same normalised value


def first_conv(model):
    """The first layer with weights after the preprocessing layer: a plain Conv2D reached through
    zero padding only, or a UserError (sum-first-conv cannot adapt anything else)."""
    import keras

    names = [layer.name for layer in model.layers]
    for layer in model.layers[names.index(PREPROCESSING_LAYER) + 1 :]:
        if isinstance(layer, keras.layers.ZeroPadding2D):
            continue
        if isinstance(layer, keras.layers.Conv2D) and layer.groups == 1:
            return layer
        raise UserError(f"model.gray_input: sum-first-conv needs a convolution first; {model.name} starts with "
                        f"{type(layer).__name__} {layer.name!r} (use gray_input: replicate)")
    raise UserError("model.gray_input: no convolution found")


def _source_backbone(backbone: str, input_size: int, weights: str):
    """The backbone with its pretrained weights, built for RGB input as the weights were made."""
    from pathlib import Path

    shape = (input_size, input_size, 3)
    if weights == "imagenet":
        return build_backbone(backbone, shape, weights="imagenet")
    if not Path(weights).is_file():
        raise UserError(f"model.weights: {weights}: file not found")
    source = build_backbone(backbone, shape, weights=None)
    try:
        source.load_weights(weights)
    except Exception as exc:  # a wrong or corrupt file: one line for the user
        raise UserError(f"model.weights: {weights}: could not be loaded ({str(exc).splitlines()[0]})") from None
    return source


def _read_backbone_file(model, path: str) -> bool:
    """Load a Keras 3 weights file of the backbone alone (``save_weights`` of ``build_backbone``, as
    ``tfxray weights convert`` writes) straight into the classifier's backbone layers.

    Keras keys each layer in the file by its class and its rank among the model's layers of that
    class (``layers/conv2d_3/vars``), not by its name; the classifier's backbone layers come in
    the same order, so the keys are rebuilt the way Keras' saver makes them. Building a second
    backbone to read the file, as ``_source_backbone`` does, costs as much as the model itself
    (2.9 s for ResNet50 on 2 cores). Returns False, changing nothing, when the file does not match
    layer for layer (another format, another backbone): the caller then takes that slower path.
    """
    import h5py
    from keras.src.utils.naming import to_snake_case  # the saver's own naming (keras.src.saving.saving_lib)

    names = [layer.name for layer in model.layers]
    layers = [layer for layer in model.layers[names.index(PREPROCESSING_LAYER) + 1:]
              if not layer.name.startswith(HEAD_PREFIX)]
    try:
        with h5py.File(path, "r") as handle:
            if "layers" not in handle:
                return False
            stored = handle["layers"]
            used: dict[str, int] = {"input_layer": 0}  # the saved backbone's own input layer comes first
            plan, keys = [], set()
            for layer in layers:
                base = to_snake_case(type(layer).__name__)
                key = base if base not in used else f"{base}_{used[base] + 1}"
                used[base] = used[base] + 1 if base in used else 0
                if not layer.weights:
                    continue
                group = stored.get(f"{key}/vars")
                if group is None or len(group) != len(layer.weights) or any(
                        tuple(group[str(i)].shape) != tuple(w.shape) for i, w in enumerate(layer.weights)):
                    return False
                plan.append((layer, [group[str(i)][()] for i in range(len(layer.weights))]))
                keys.add(key)
            if keys != {k for k in stored if "vars" in stored[k] and len(stored[k]["vars"])}:
                return False  # the file holds weights no backbone layer takes
    except OSError:
        return False
    for layer, values in plan:
        layer.set_weights(values)
    return True


def _copy_backbone_weights(source, model, adapt_first_kernel=None) -> None:
    """Copy a backbone-only model's weights (an ImageNet build or a weights file, e.g. from
    ``tfxray weights convert``) into the classifier; ``adapt_first_kernel`` maps the first kernel.

    Pairs the weighted layers in graph order (as Keras' weights files do), not by name: names Keras
    generates (EfficientNet's "normalization_3") differ between two builds of one backbone.
    """
    sources = [layer for layer in source.layers if layer.weights]
    for index, (source_layer, target_layer) in enumerate(zip(sources, backbone_layers(model), strict=True)):
        values = source_layer.get_weights()
        if index == 0 and adapt_first_kernel is not None:
            values = [adapt_first_kernel(values[0]), *values[1:]]
        target_layer.set_weights(values)
