"""Where scoring predicts: one device, or every replica of a MirroredStrategy.

On a machine with several GPUs, scoring loads the model inside ``MirroredStrategy().scope()``
and splits each batch across the replicas (``models.inference.Predictor``). ``devices`` (``--devices`` or the
``TFXRAY_SCORE_DEVICES`` environment variable, comma-separated) names them explicitly; naming
more CPU devices than exist (``/cpu:0,/cpu:1``) splits the CPU into that many logical devices,
which must happen before TensorFlow starts: that is how the tests exercise the strategy
without GPUs.
"""

from __future__ import annotations

import os
import re

from ..errors import UserError

DEVICES_ENV = "TFXRAY_SCORE_DEVICES"


def parse_devices(text: str | list[str] | None) -> list[str] | None:
    if text is None:
        text = os.environ.get(DEVICES_ENV, "")
    items = [d.strip() for d in (text.split(",") if isinstance(text, str) else text) if d and d.strip()]
    for item in items:
        if not re.fullmatch(r"/?(job:\w+/)?(device:)?(cpu|gpu|CPU|GPU):\d+", item):
            raise UserError(f"--devices: {item!r} is not a device name like /gpu:0 or /cpu:1")
    return items or None


def scoring_strategy(devices: list[str] | None = None):
    """A MirroredStrategy over ``devices`` (or over every GPU when there are several); None for one device.

    Call it before any other TensorFlow work when ``devices`` names logical CPUs to create.
    """
    import tensorflow as tf

    devices = parse_devices(devices)
    if devices:
        cpus = [int(d.rsplit(":", 1)[1]) for d in devices if "cpu" in d.lower()]
        if cpus and max(cpus) > 0:
            # Before anything lists logical devices: listing them starts the runtime.
            physical = tf.config.list_physical_devices("CPU")[0]
            try:
                tf.config.set_logical_device_configuration(
                    physical, [tf.config.LogicalDeviceConfiguration()] * (max(cpus) + 1))
            except RuntimeError:  # already started: fine if it already has them
                if max(cpus) + 1 > len(tf.config.list_logical_devices("CPU")):
                    raise UserError(f"--devices {','.join(devices)}: TensorFlow has already started with "
                                    f"{len(tf.config.list_logical_devices('CPU'))} CPU device(s)") from None
        known = {_short(d.name) for d in tf.config.list_logical_devices()}
        for device in devices:
            if _short(device) not in known:
                raise UserError(f"--devices: no device {device} on this machine")
        return tf.distribute.MirroredStrategy(devices=devices) if len(devices) > 1 else None
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return None


def _short(name: str) -> str:
    """'/job:localhost/replica:0/task:0/device:GPU:1', '/gpu:1' -> 'gpu:1'."""
    return name.lower().rsplit("/", 1)[-1].replace("device:", "")
