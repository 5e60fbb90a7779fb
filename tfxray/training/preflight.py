"""What a training checks before it makes anything: a mistake found here costs seconds and
leaves no half-made run folder behind.

``check_training`` runs after the recipe and the manifest are validated (both TensorFlow-free)
and before the run folder, the split or any amplified image exists. It needs TensorFlow only to
fetch a missing ImageNet file or to look up an ``until:LAYER`` name in the backbone's graph.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Recipe
from ..errors import UserError
from ..models.backbones import get_spec, resolve_weights
from ..models.freeze import UNTIL

NO_WEIGHTS = (None, "", "none", "None")


def check_training(recipe: Recipe) -> None:
    """Backbone and input size, a head that can learn, the weights at hand, freeze boundaries that exist."""
    model = recipe.model
    if (recipe.train.hard_positives or recipe.train.hard_negatives) and not recipe.train.init:
        raise UserError("train.hard_positives: mining runs the initial model over the training images; give it one "
                        "with --init RUN_DIR (e.g. a generic detector), or --set train.hard_positives=false")
    spec = get_spec(model.backbone)
    if recipe.data.input_size < spec.min_size:
        raise UserError(f"data.input_size: {model.backbone} needs at least {spec.min_size} px, got {recipe.data.input_size}")
    if not recipe.train.init:  # with --init the weights come from that run (models.transfer)
        check_learnable(model.backbone, model.weights, model.freeze, staged=recipe.train.finetune_epochs > 0)
        check_weights(model.backbone, model.weights)
    check_freeze_names(recipe)


def staged_unfreeze(recipe: Recipe) -> str | None:
    """The freeze of a staged schedule's second phase, or None without one."""
    return (recipe.model.unfreeze or "none") if recipe.train.finetune_epochs > 0 else None


def check_learnable(backbone: str, weights: str | None, freeze: str, staged: bool = False) -> None:
    """Refuse random backbone weights kept frozen (``all-but-top`` or ``until:``, a staged schedule's
    first phase included): the head, or the layers above the boundary, would learn on noise.

    A backbone without pretrained weights in the registry (``tiny_cnn``) is meant to train from
    scratch and passes; so does any freeze with ImageNet weights or a weights file. (A staged
    schedule that starts with ``freeze: none`` and then freezes shallow layers freezes trained ones.)
    """
    if weights not in NO_WEIGHTS or not get_spec(backbone).pretrained or freeze == "none":
        return
    phase = " in the staged schedule's first phase" if staged else ""
    raise UserError(f"model.freeze: {freeze} keeps {backbone}'s random weights (weights: none) frozen{phase}, so "
                    f"the head would learn on noise; train it all with --freeze none, or start from ImageNet "
                    f"(--weights imagenet) or a weights file (--weights FILE)")


def check_weights(backbone: str, weights: str | None) -> None:
    """The weights exist: Keras' ImageNet file (fetched now if it is missing) or the file named."""
    value = resolve_weights(backbone, weights)  # refuses what a backbone cannot take
    if value is None:
        return
    if value == "imagenet":
        from ..models.weights import ensure_imagenet_file

        ensure_imagenet_file(backbone)
    elif not Path(value).is_file():
        raise UserError(f"model.weights: {value}: file not found (imagenet, none, or a weights file)")


def check_freeze_names(recipe: Recipe) -> None:
    """Every ``until:`` boundary names a stage of the backbone, or one of its layers (looked up in its
    graph, built without weights, only for a name that is not a stage)."""
    model = recipe.model
    if (recipe.train.hard_positives or recipe.train.hard_negatives) and not recipe.train.init:
        raise UserError("train.hard_positives: mining runs the initial model over the training images; give it one "
                        "with --init RUN_DIR (e.g. a generic detector), or --set train.hard_positives=false")
    spec = get_spec(model.backbone)
    field_modes = [("model.freeze", model.freeze)]
    if staged_unfreeze(recipe):
        field_modes.append(("model.unfreeze", staged_unfreeze(recipe)))
    layer_names = None
    for field_name, mode in field_modes:
        if not mode.startswith(UNTIL) or mode[len(UNTIL):] in spec.stage_names:
            continue
        if layer_names is None:
            from ..models.backbones import build_backbone

            size = recipe.data.input_size
            layer_names = {layer.name for layer in build_backbone(model.backbone, (size, size, 3)).layers}
        if mode[len(UNTIL):] not in layer_names:
            raise UserError(f"{field_name}: {mode} names neither a stage ({', '.join(spec.stage_names)}) nor a layer "
                            f"of {model.backbone}")
