"""tf.distribute strategies by name: default, mirrored (GPUs of one machine), multiworker.

The global batch is the per-replica batch times the number of replicas; the learning rate
is scaled by the same factor when the recipe asks (linear scaling rule).

``TFXRAY_CPU_DEVICES=N`` splits the CPU into N logical devices before TensorFlow starts, so
MirroredStrategy can be exercised on a machine without GPUs (the tests do).

Precision (``precision_policy``: mixed is float16 with a GPU, bfloat16 without) and op
determinism are process-wide switches; ``training_settings`` sets them for one training and
puts them back.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

from ..errors import UserError

STRATEGIES = ("auto", "default", "mirrored", "multiworker")


def _split_cpu_if_asked() -> list[str] | None:
    count = int(os.environ.get("TFXRAY_CPU_DEVICES", "0") or 0)
    if count < 2:
        return None
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # already initialised: keep what exists
        pass
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def make_strategy(name: str = "auto"):
    """The tf.distribute strategy for ``name``; create it before any other TensorFlow work."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise UserError(f"--strategy: expected one of {', '.join(STRATEGIES)}, got {name!r}")
    cpu_devices = _split_cpu_if_asked()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise UserError("--strategy multiworker: set TF_CONFIG (cluster and task) on every worker")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as exc:
            raise UserError(f"TF_CONFIG: not valid JSON ({exc})") from None
        return _multi_worker_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = cpu_devices if (cpu_devices and not gpus) else None
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


def _multi_worker_strategy():
    """MultiWorkerMirroredStrategy whose ``reduce`` accepts what Keras 3.15's ``fit`` gives it.

    Keras 3's ``Model.fit`` reduces a whole (images, labels) batch with one ``strategy.reduce``
    call to build the model symbolically; MirroredStrategy handles the tuple, but
    MultiWorkerMirroredStrategy's collective reduce takes one value at a time and fails with
    "Attempt to convert a value (PerReplica...)". Reducing element by element is the same result.
    Keras then reduces the per-step loss with axis=0, which fails on a scalar.
    """
    import tensorflow as tf

    class NestedReduceMultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            # Only plain containers are split: a PerReplica is itself a nest to tf.nest.
            if isinstance(value, (tuple, list)):
                return type(value)(self.reduce(reduce_op, item, axis) for item in value)
            if isinstance(value, dict):
                return {key: self.reduce(reduce_op, item, axis) for key, item in value.items()}
            # Keras also asks for axis=0 on per-step scalars (the loss); a scalar reduces across workers only.
            if axis is not None and len(self.experimental_local_results(value)[0].shape) == 0:
                axis = None
            return super().reduce(reduce_op, value, axis)

    return NestedReduceMultiWorkerStrategy()


def is_chief(strategy) -> bool:
    """Only the chief writes the run directory in a multi-worker run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "cluster_spec", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


PRECISION_POLICIES = {"float32": "float32", "mixed_float16": "mixed_float16", "mixed_bfloat16": "mixed_bfloat16"}


def precision_policy(precision: str, has_gpu: bool) -> str:
    """The Keras dtype policy for ``train.precision``.

    ``mixed`` is float16 compute with a GPU (tensor cores; Keras wraps the optimizer in a
    LossScaleOptimizer) and bfloat16 compute without one: CPUs emulate float16 (a tiny CNN
    trained about 100x slower in float16 than in float32 on this project's test machine),
    while bfloat16 runs natively on recent CPUs (oneDNN, AVX512-BF16/AMX) and, having float32's
    exponent range, needs no loss scaling. ``mixed_float16`` and ``mixed_bfloat16`` force one.
    """
    if precision == "mixed":
        return "mixed_float16" if has_gpu else "mixed_bfloat16"
    if precision not in PRECISION_POLICIES:
        raise UserError(f"train.precision: expected float32, mixed, mixed_float16 or mixed_bfloat16, got {precision!r}")
    return PRECISION_POLICIES[precision]


def set_precision(precision: str) -> str:
    """Set Keras' global dtype policy for ``precision``; returns the policy's name."""
    import keras
    import tensorflow as tf

    policy = precision_policy(precision, has_gpu=bool(tf.config.list_logical_devices("GPU")))
    keras.mixed_precision.set_global_policy(policy)
    return policy


@contextmanager
def training_settings(precision: str, deterministic: bool, verbose: int = 0):
    """Keras' global dtype policy and TensorFlow's op determinism for one training, put back after.

    Both are process-wide switches: left on, they would change every model built later in the
    same process (a notebook, cross-validation's next fold, a test suite).
    """
    import keras
    import tensorflow as tf

    # TensorFlow exports only enable_op_determinism; its query and its off switch live beside it
    # (TF 2.21). Without them determinism stays on after the training, as it always did.
    from tensorflow.python.framework import config as tf_config

    is_on = getattr(tf_config, "is_op_determinism_enabled", lambda: False)
    turn_off = getattr(tf_config, "disable_op_determinism", None)
    old_policy = keras.mixed_precision.global_policy()
    was_deterministic = is_on()
    try:
        policy = set_precision(precision)
        if verbose and precision == "mixed" and policy == "mixed_bfloat16":
            print("precision mixed: no GPU, so mixed_bfloat16 (float16 is emulated on CPUs; "
                  "--set train.precision=mixed_float16 forces it)")
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(old_policy)
        if deterministic and not was_deterministic and turn_off is not None:
            turn_off()
