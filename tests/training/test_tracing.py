"""Training traces its step once: a variable first created inside the traced step (the optimizer's slots,
Keras' global seed generator that keras-cv's box samplers draw from) makes tf.function trace the whole
step a second time, which was half of a small detector's first epoch."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tfxray.training.trainer import _create_variables_before_tracing  # noqa: E402


class UnseededNoise(keras.Model):
    """A one-layer model whose loss draws unseeded noise, as keras-cv's ``balanced_sample`` does."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.traces = 0

    def train_step(self, data):
        self.traces += 1  # Python runs the step's body only when tf.function traces it
        return super().train_step(data)

    def call(self, x):
        return self.dense(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        jitter = keras.random.uniform(tf.shape(y_pred), minval=-0.01, maxval=0.01)
        return tf.reduce_mean(tf.square(y_pred + jitter - y))


def traces_of_two_epochs(build_first: bool) -> int:
    keras.utils.set_random_seed(0)  # also drops Keras' global seed generator: the step would create it
    model = UnseededNoise()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = np.random.default_rng(0).random((32, 4)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    model(x[:1])  # built, as every tfxray model is before training
    if build_first:
        _create_variables_before_tracing(model)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    return model.traces


def test_the_train_step_is_traced_once_when_its_variables_exist_before_fit():
    assert traces_of_two_epochs(build_first=False) == 2  # control: Adam's slots and the seed made in the trace
    assert traces_of_two_epochs(build_first=True) == 1


def test_the_detector_validation_auc_reads_the_weights_of_each_epoch_from_one_trace(tmp_path):
    """ImageAUC scores with one traced ``detect`` per model: the weights it reads are the model's current
    ones (the graph holds the variables, not their values)."""
    from tfxray.models.detector import build_detector
    from tfxray.models.inference import detector_predictor_for
    from tfxray.training.detection import ImageAUC

    keras.utils.set_random_seed(1)
    model = build_detector("faster_rcnn", "tiny_cnn", input_size=64, fpn_filters=8, head_units=16, anchor_scale=4,
                           rpn_samples=32, roi_samples=16, proposals_train=64, proposals_test=32, rcnn_weight=1.0)
    images = np.random.default_rng(0).random((6, 64, 64, 1)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((images, np.zeros(6, np.float32))).batch(4)
    validation = ImageAUC(data, np.array([0, 1, 0, 1, 0, 1]))
    before = validation.scores(model)
    score = model.head_score
    score.set_weights([w + 0.5 * np.sign(np.arange(w.size).reshape(w.shape) % 2 - 0.5) for w in score.get_weights()])
    after = validation.scores(model)
    assert before.shape == after.shape == (6,)
    assert not np.allclose(before, after)  # the new weights were read
    assert detector_predictor_for(model)._fn.experimental_get_tracing_count() == 1
