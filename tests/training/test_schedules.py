import math

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
