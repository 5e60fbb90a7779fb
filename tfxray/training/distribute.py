"""tf.distribute strategies by name: default, mirrored (GPUs of one machine), multiworker.

The global batch is the per-replica batch times the number of replicas; the learning rate
is scaled by the same factor when the recipe asks (linear scaling rule).

``TFXRAY_CPU_DEVICES=N`` splits the CPU into N logical devices before TensorFlow starts, so
MirroredStrategy can be exercised on a machine without GPUs (the tests do).
"""

from __future__ import annotations

import json
import os

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


def set_precision(precision: str) -> None:
    import keras

    if precision not in ("float32", "mixed"):
        raise UserError(f"train.precision: expected float32 or mixed, got {precision!r}")
    keras.mixed_precision.set_global_policy("mixed_float16" if precision == "mixed" else "float32")
