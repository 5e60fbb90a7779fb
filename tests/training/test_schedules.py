import math
import zlib

import numpy as np
import pytest

from tfxray.training.schedules import KerasSchedule, cosine_decay, schedule_value, step_decay


def test_wrist_step_decay_at_known_steps():
    # 0.02, times 0.67 every 1,800 iterations (Kim & MacKinnon 2018)
    assert step_decay(0, lr=0.02, every=1800, factor=0.67) == 0.02
    assert step_decay(1799, lr=0.02, every=1800, factor=0.67) == 0.02
    assert step_decay(1800, lr=0.02, every=1800, factor=0.67) == pytest.approx(0.0134)
    assert step_decay(19999, lr=0.02, every=1800, factor=0.67) == pytest.approx(0.02 * 0.67**11)


def test_cosine_with_warmup():
    assert cosine_decay(0, lr=1.0, total=110, warmup=10) == pytest.approx(0.1)
    assert cosine_decay(9, lr=1.0, total=110, warmup=10) == pytest.approx(1.0)
    assert cosine_decay(60, lr=1.0, total=110, warmup=10) == pytest.approx(0.5)
    assert cosine_decay(110, lr=1.0, total=110, warmup=10) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("step", dict(every=1800, factor=0.67)),
        ("exponential", dict(every=100, factor=0.5)),
        ("cosine", dict(total=1000, warmup=50)),
        ("constant", {}),
    ],
)
def test_keras_schedule_matches_the_pure_function(name, kwargs):
    schedule = KerasSchedule(name, 0.02, **kwargs)
    for step in (0, 1, 49, 50, 99, 100, 999, 1800, 3601, 20000):
        expected = schedule_value(name, step, lr=0.02, **kwargs)
        assert float(np.asarray(schedule(step))) == pytest.approx(expected, rel=1e-5, abs=1e-9)


# ------------------------------------------------------------------------------ reduce on plateau

def test_plateau_on_a_hand_worked_history():
    from tfxray.training.schedules import plateau_lr

    losses = [1.0, 0.9, 0.95, 0.97, 0.96, 0.8, 0.85, 0.86, 0.87]
    rates = [plateau_lr(losses[:k], lr=0.1, factor=0.5, patience=2) for k in range(len(losses) + 1)]
    # best 0.9 after epoch 2; epochs 3 and 4 do not improve -> halved; epoch 5 waits; 0.8 is a new best;
    # epochs 7 and 8 do not improve -> halved again; epoch 9 waits
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025], rel=1e-7)


def test_plateau_min_delta_cooldown_and_floor():
    from tfxray.training.schedules import plateau_lr

    # with min_delta 0.05 a decrease of 0.01 a step is no improvement
    slow = [1.0, 0.99, 0.98, 0.97, 0.96]
    assert plateau_lr(slow, lr=1.0, factor=0.1, patience=2) == 1.0
    assert plateau_lr(slow[:3], lr=1.0, factor=0.1, patience=2, min_delta=0.05) == pytest.approx(0.1)
    # cooldown 2, counted as Keras counts it: the epoch on which the cooldown runs out already
    # counts against patience, so after the cut at epoch 2 only epoch 3 is skipped
    flat = [1.0] * 8
    cuts = [plateau_lr(flat[:k], lr=1.0, factor=0.5, patience=1, cooldown=2) for k in range(1, 9)]
    assert cuts == pytest.approx([1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.0625])
    assert keras_plateau_rates(flat, lr=1.0, factor=0.5, patience=1, cooldown=2) == cuts
    # never below min_lr, and it stays there
    assert plateau_lr(flat, lr=1.0, factor=0.1, patience=1, min_lr=0.05) == pytest.approx(0.05)
    # a NaN loss is never an improvement
    assert plateau_lr([1.0, float("nan"), float("nan")], lr=1.0, factor=0.5, patience=2) == 0.5


def keras_plateau_rates(losses, *, lr, factor, patience, min_delta=0.0, cooldown=0, min_lr=0.0):
    """The learning rate Keras' own ReduceLROnPlateau leaves in the optimizer after each epoch."""
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(lr), "mse")
    callback = keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss", mode="min", factor=factor, patience=patience, min_delta=min_delta, cooldown=cooldown,
        min_lr=min_lr,
    )
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch, loss in enumerate(losses):
        callback.on_epoch_end(epoch, {"val_loss": loss})
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    return rates


@pytest.mark.parametrize(
    "rule",
    [
        dict(lr=0.1, factor=0.5, patience=2),
        dict(lr=0.01, factor=0.3, patience=1, cooldown=2),
        dict(lr=0.02, factor=0.1, patience=3, min_delta=0.01, min_lr=1e-4),
        dict(lr=1e-3, factor=0.67, patience=2, min_delta=0.002, cooldown=1, min_lr=2e-4),
    ],
)
def test_plateau_gives_the_same_rates_as_keras_reduce_lr_on_plateau(rule):
    from tfxray.training.schedules import plateau_lr

    rng = np.random.default_rng(zlib.crc32(repr(sorted(rule.items())).encode()))  # fixed per rule
    histories = [
        [1.0, 0.9, 0.95, 0.97, 0.96, 0.8, 0.85, 0.86, 0.87, 0.7, 0.7, 0.7],
        list(np.float32(1.0 / np.arange(1, 25) + rng.normal(0, 0.02, 24))),  # noisy decrease that flattens
        list(np.float32(np.abs(rng.normal(0.5, 0.1, 30)))),  # noise only: many plateaus
    ]
    for losses in histories:
        losses = [float(v) for v in losses]
        expected = keras_plateau_rates(losses, **rule)
        ours = [plateau_lr(losses[: k + 1], **rule) for k in range(len(losses))]
        assert ours == expected  # bit for bit: both float32 as the optimizer holds them
        assert len(set(expected)) > 1  # the history did make Keras reduce the rate


@pytest.mark.parametrize(
    "override,message",
    [
        ({}, "factor: a plateau schedule needs 0 < factor < 1"),
        ({"train.schedule.factor": 0.5, "train.schedule.patience": 0}, "patience: must be at least 1"),
        ({"train.schedule.factor": 0.5, "train.schedule.cooldown": -1}, "cooldown: must not be negative"),
        ({"train.schedule.factor": 0.5, "train.schedule.min_lr": 0.01}, "min_lr: must be below train.lr"),
    ],
)
def test_plateau_recipe_fields_are_checked_in_one_line(override, message):
    from tfxray.config import load_recipe
    from tfxray.errors import UserError

    overrides = [(["train", "schedule", "name"], "plateau"), (["train", "lr"], 0.001)]
    overrides += [(key.split("."), value) for key, value in override.items()]
    with pytest.raises(UserError, match=message) as caught:
        load_recipe("demo", overrides)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------ hand-computed values

WRIST_STEP = [  # 0.02 x 0.67 ** floor(step / 1800), worked by hand
    (0, 0.02), (1799, 0.02), (1800, 0.0134), (3599, 0.0134), (3600, 0.008978), (19999, 0.02 * 0.67**11),
]
EXPONENTIAL = [  # 0.02 x 0.5 ** (step / 100)
    (0, 0.02), (50, 0.0141421356237), (100, 0.01), (250, 0.00353553390593), (1000, 0.02 / 1024),
]
COSINE = [  # lr 0.1, warm-up 100 of 1,000 steps: 0.1 (s + 1) / 100, then 0.05 (1 + cos(pi (s - 100) / 900))
    (0, 0.001), (49, 0.05), (99, 0.1), (100, 0.1), (325, 0.0853553390593), (550, 0.05),
    (775, 0.0146446609407), (1000, 0.0), (2000, 0.0),
]


@pytest.mark.parametrize("step,expected", WRIST_STEP)
def test_wrist_step_decay_hand_values(step, expected):
    assert step_decay(step, lr=0.02, every=1800, factor=0.67) == pytest.approx(expected, rel=1e-9)
    assert float(np.asarray(KerasSchedule("step", 0.02, every=1800, factor=0.67)(step))) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("step,expected", EXPONENTIAL)
def test_exponential_decay_hand_values(step, expected):
    import keras

    from tfxray.training.schedules import exponential_decay

    assert exponential_decay(step, lr=0.02, every=100, factor=0.5) == pytest.approx(expected, rel=1e-9)
    assert float(np.asarray(KerasSchedule("exponential", 0.02, every=100, factor=0.5)(step))) == pytest.approx(expected, rel=1e-6)
    keras_own = keras.optimizers.schedules.ExponentialDecay(0.02, decay_steps=100, decay_rate=0.5)
    assert float(np.asarray(keras_own(step))) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("step,expected", COSINE)
def test_cosine_with_warmup_hand_values(step, expected):
    assert cosine_decay(step, lr=0.1, total=1000, warmup=100) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    keras_value = float(np.asarray(KerasSchedule("cosine", 0.1, total=1000, warmup=100)(step)))
    assert keras_value == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_cosine_without_warmup_starts_at_lr_and_halves_midway():
    assert cosine_decay(0, lr=0.1, total=200) == pytest.approx(0.1)
    assert cosine_decay(100, lr=0.1, total=200) == pytest.approx(0.05)
    assert cosine_decay(200, lr=0.1, total=200) == pytest.approx(0.0, abs=1e-15)
