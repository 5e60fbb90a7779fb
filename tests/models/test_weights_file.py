"""A backbone's weights file is read straight into the classifier, as the slower build-and-copy reads it."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tfxray.models import classifier  # noqa: E402
from tfxray.models.backbones import build_backbone  # noqa: E402


@pytest.mark.parametrize("backbone, size", [("tiny_cnn", 32), ("resnet50", 32)])
def test_weights_file_read_straight_equals_build_and_copy(backbone, size, tmp_path, monkeypatch):
    keras.utils.set_random_seed(4)
    path = tmp_path / "backbone.weights.h5"
    build_backbone(backbone, (size, size, 3)).save_weights(path)
    direct = classifier.build_classifier(backbone, input_size=size, weights=str(path))
    assert classifier._read_backbone_file(direct, str(path))  # the fast path applies to this file
    monkeypatch.setattr(classifier, "_read_backbone_file", lambda model, file: False)
    copied = classifier.build_classifier(backbone, input_size=size, weights=str(path))
    image = np.random.default_rng(0).random((2, size, size, 1), dtype=np.float32)
    features = [keras.Model(m.input, m.get_layer("head_pool").output)(image) for m in (direct, copied)]
    np.testing.assert_array_equal(np.asarray(features[0]), np.asarray(features[1]))
    assert not np.allclose(np.asarray(features[0]), 0)


def test_a_file_of_another_backbone_is_not_read_straight(tmp_path):
    keras.utils.set_random_seed(0)
    path = tmp_path / "tiny.weights.h5"
    build_backbone("tiny_cnn", (32, 32, 3)).save_weights(path)
    model = classifier.build_classifier("mobilenet_v2", input_size=32, weights=None)
    before = [w.copy() for w in model.get_weights()]
    assert not classifier._read_backbone_file(model, str(path))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # nothing changed
