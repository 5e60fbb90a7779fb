"""Learning-rate schedules as pure functions: of the optimizer step, or of the validation history.

Each is a few lines of arithmetic that tests check at known steps; ``KerasSchedule``
wraps one for an optimizer. Keras has ExponentialDecay and CosineDecay, but not the
published step decay of the wrist protocol (x0.67 every 1,800 iterations) with the same
argument names, so all four live here side by side and are saved with the recipe.

``plateau_lr`` (reduce on plateau) is a function of the validation losses so far rather than
of the step: the learning rate of the next epoch follows from ``history.csv`` alone, so a
resumed run recomputes it exactly. ``callbacks.PlateauSchedule`` applies it to the optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np


def step_decay(step: int, *, lr: float, every: int, factor: float) -> float:
    """lr * factor ** floor(step / every): wrist protocol, 0.02 x 0.67 every 1,800 iterations."""
    return lr * factor ** math.floor(step / every)


def exponential_decay(step: int, *, lr: float, every: int, factor: float) -> float:
    """Smooth version of step decay: lr * factor ** (step / every)."""
    return lr * factor ** (step / every)


def cosine_decay(step: int, *, lr: float, total: int, warmup: int = 0) -> float:
    """Linear warm-up to lr over ``warmup`` steps, then half a cosine down to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    progress = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
    return 0.5 * lr * (1 + math.cos(math.pi * progress))


def constant(step: int, *, lr: float) -> float:
    return lr


def plateau_lr(
    val_losses: Sequence[float],
    *,
    lr: float,
    factor: float,
    patience: int,
    min_delta: float = 0.0,
    cooldown: int = 0,
    min_lr: float = 0.0,
) -> float:
    """The learning rate for the epoch after ``val_losses`` (one validation loss per epoch so far).

    The rule of ``keras.callbacks.ReduceLROnPlateau(mode="min")``, replayed over the history:
    a loss is an improvement when ``loss + min_delta < best``; after ``patience`` epochs in a
    row without one, the rate is multiplied by ``factor`` (never below ``min_lr``), then
    ``cooldown`` epochs pass before epochs count against ``patience`` again. A NaN loss never
    improves. Arithmetic follows Keras' to the bit: the comparison is made in float32 (Keras
    compares tensors) and the rate is the float32 the optimizer's variable holds (Keras
    multiplies the float32 value it reads back).
    """
    current = np.float32(lr)
    floor = np.float32(min_lr)
    best, wait, cooling = None, 0, 0
    for loss in val_losses:
        loss = float(loss)
        if cooling > 0:
            cooling -= 1
            wait = 0
        if best is None or np.float32(loss + min_delta) < np.float32(best):
            best, wait = loss, 0
        elif cooling == 0:
            wait += 1
            if wait >= patience and current > floor:
                current = np.float32(max(float(current) * factor, min_lr))
                cooling, wait = cooldown, 0
    return float(current)


def schedule_value(name: str, step: int, *, lr: float, every: int = 0, factor: float = 1.0, total: int = 1, warmup: int = 0) -> float:
    if name == "step":
        return step_decay(step, lr=lr, every=every, factor=factor)
    if name == "exponential":
        return exponential_decay(step, lr=lr, every=every, factor=factor)
    if name == "cosine":
        return cosine_decay(step, lr=lr, total=total, warmup=warmup)
    if name == "plateau":
        raise ValueError("a plateau schedule follows the validation losses, not the step: use plateau_lr")
    return constant(step, lr=lr)


@keras.saving.register_keras_serializable(package="tfxray")
class KerasSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The same formulas in graph ops, for an optimizer (values match ``schedule_value``)."""

    def __init__(self, name: str, lr: float, every: int = 0, factor: float = 1.0, total: int = 1, warmup: int = 0):
        self.name, self.lr, self.every, self.factor = name, float(lr), int(every), float(factor)
        self.total, self.warmup = int(total), int(warmup)

    def __call__(self, step):
        from keras import ops

        step = ops.cast(step, "float32")
        if self.name == "step":
            return self.lr * ops.power(self.factor, ops.floor(step / self.every))
        if self.name == "exponential":
            return self.lr * ops.power(self.factor, step / self.every)
        if self.name == "cosine":
            warm = self.lr * (step + 1) / max(self.warmup, 1)
            progress = ops.clip((step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
            decayed = 0.5 * self.lr * (1 + ops.cos(math.pi * progress))
            return ops.where(step < self.warmup, warm, decayed) if self.warmup > 0 else decayed
        return ops.convert_to_tensor(self.lr, "float32")

    def get_config(self):
        return {
            "name": self.name,
            "lr": self.lr,
            "every": self.every,
            "factor": self.factor,
            "total": self.total,
            "warmup": self.warmup,
        }
