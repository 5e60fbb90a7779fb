"""Freeze policies by name: all-but-top, none, until:STAGE, until:LAYER.

- ``all-but-top``: every backbone layer frozen, the new head trained (the feature cache's case);
- ``none``: everything trains;
- ``until:STAGE`` / ``until:LAYER``: the layers up to the end of a named stage (or up to a layer)
  frozen, the rest and the head trained.

Frozen BatchNorm layers run in inference mode (Keras 3 does so for a BatchNormalization
layer whose ``trainable`` is False), so their moving statistics never move.
"""

from __future__ import annotations

from collections import OrderedDict

from ..errors import UserError
from .backbones import get_spec

HEAD_PREFIX = "head_"
PREPROCESSING_LAYER = "preprocessing"
FREEZE_MODES = ("all-but-top", "none")  # and UNTIL followed by a stage or layer name
UNTIL = "until:"


def check_freeze_mode(mode: str, where: str = "model.freeze") -> None:
    """A UserError (one line) unless ``mode`` is a freeze policy's name."""
    if mode in FREEZE_MODES or mode.startswith(UNTIL):
        return
    if mode == "all":
        raise UserError(f"{where}: 'all' is not a mode; all-but-top freezes the whole backbone and trains the"
                        " head")
    raise UserError(f"{where}: expected all-but-top, none, until:STAGE or until:LAYER, got {mode!r}")


def backbone_layers(model) -> list:
    return [
        layer
        for layer in model.layers
        if not layer.name.startswith(HEAD_PREFIX) and layer.name != PREPROCESSING_LAYER and layer.weights
    ]


def boundary_index(model, backbone: str, until: str) -> int:
    """Index in ``model.layers`` of the last layer frozen by ``until:<stage or layer>``."""
    spec = get_spec(backbone)
    stage_ends = dict(spec.stages)
    layer_name = stage_ends.get(until, until)
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise UserError(
            f"model.freeze: until:{until} names neither a stage ({', '.join(spec.stage_names)}) nor a layer of {backbone}"
        )
    return names.index(layer_name)


def apply_freeze(model, backbone: str, mode: str) -> None:
    """Set ``trainable`` on every layer of a classifier built by ``build_classifier``."""
    check_freeze_mode(mode)
    for layer in model.layers:
        layer.trainable = True
    if mode == "none":
        return
    if mode == "all-but-top":
        frozen = set(id(layer) for layer in backbone_layers(model))
    else:
        last = boundary_index(model, backbone, mode[len(UNTIL):])
        frozen = set(id(layer) for layer in model.layers[: last + 1])
    for layer in model.layers:
        if id(layer) in frozen:
            layer.trainable = False


def parameter_table(model, backbone: str) -> list[dict]:
    """Trainable and frozen parameter counts per named stage (and the head)."""
    spec = get_spec(backbone)
    names = [layer.name for layer in model.layers]
    ends = [(stage, names.index(last)) for stage, last in spec.stages if last in names]
    counts: OrderedDict[str, dict] = OrderedDict((stage, {"trainable": 0, "frozen": 0}) for stage, _ in ends)
    counts["head"] = {"trainable": 0, "frozen": 0}
    for index, layer in enumerate(model.layers):
        if layer.name.startswith(HEAD_PREFIX):
            group = "head"
        else:
            group = next((stage for stage, end in ends if index <= end), "head")
        for weight in layer.weights:
            size = int(weight.numpy().size) if hasattr(weight, "numpy") else 0
            key = "trainable" if weight.trainable and layer.trainable else "frozen"
            counts[group][key] += size
    return [{"group": group, **c} for group, c in counts.items()]


def format_parameter_table(rows: list[dict]) -> str:
    lines = [f"{'group':<12}{'trainable':>14}{'frozen':>14}"]
    for row in rows:
        lines.append(f"{row['group']:<12}{row['trainable']:>14,}{row['frozen']:>14,}")
    total_t = sum(r["trainable"] for r in rows)
    total_f = sum(r["frozen"] for r in rows)
    lines.append(f"{'total':<12}{total_t:>14,}{total_f:>14,}")
    return "\n".join(lines)
