"""Starting a training from another run's weights (``tfxray train --init RUN_DIR``).

Layers are matched by name across nested models, so a wrist classifier can start a vertebral
one, a classifier's backbone a detector's, and a generic detector a femoral-neck one. A layer is
copied only when every one of its weight tensors has the same shape; anything else (a head for
other classes, a different input channel count) keeps its fresh initialisation, and the count
of what was copied is reported, never assumed.
"""

from __future__ import annotations


def named_layers(model) -> dict[str, object]:
    """Every layer with weights, nested models flattened, by name (the first of a name wins)."""
    found = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if layer.weights and not hasattr(layer, "layers"):  # leaves: a nested model's weights are its layers'
            found.setdefault(layer.name, layer)
    return found


def transfer_weights(source, target) -> tuple[int, int]:
    """Copy ``source``'s weights into ``target``'s layers of the same name and shapes.
    Returns (weight tensors copied, weight tensors in ``target``)."""
    source_layers = named_layers(source)
    copied = total = 0
    for name, layer in named_layers(target).items():
        weights = layer.get_weights()
        total += len(weights)
        other = source_layers.get(name)
        if other is None:
            continue
        values = other.get_weights()
        if len(values) == len(weights) and all(a.shape == b.shape for a, b in zip(values, weights)):
            layer.set_weights(values)
            copied += len(values)
    return copied, total
