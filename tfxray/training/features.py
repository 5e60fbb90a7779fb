"""Feature caching for frozen backbones.

With ``freeze: all-but-top`` and no online augmentation, the backbone's pooled
output for a given image never changes, so it is computed once and kept on disk, keyed by
the backbone's identity (name, a hash of its weights, input size, preprocessing) and the
image file's content hash. The head then trains on the cached features in seconds per
epoch, and its weights are copied into the full model, so scoring is unchanged.

This is what made the original top-layer retraining practical; a second run on the same
data (or a resumed one) reuses the cache.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..io import atomic_path

FEATURE_LAYER = "head_pool"


def default_cache_dir() -> Path:
    root = os.environ.get("TFXRAY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tfxray")
    return Path(root) / "features"


def file_digest(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def backbone_key(model, geometry) -> str:
    """Identity of everything between the file and the pooled features."""
    import keras

    digest = hashlib.sha256()
    digest.update(repr((geometry.size, geometry.channels, geometry.resize)).encode())
    feature_layer = model.get_layer(FEATURE_LAYER)
    extractor_layers = model.layers[: model.layers.index(feature_layer) + 1]
    for layer in extractor_layers:
        # the class too: average and max pooling (and other layer pairs) share name and config
        digest.update(f"{type(layer).__name__}:{layer.name}".encode())
        digest.update(repr(sorted(layer.get_config().items(), key=str)).encode())
        for weight in layer.weights:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:24]


def feature_extractor(model):
    import keras

    return keras.Model(model.inputs, model.get_layer(FEATURE_LAYER).output, name="feature_extractor")


def cached_features(
    model, paths: list[str], geometry, *, cache_dir: Path | None = None, batch_size: int = 32, progress: bool = True
) -> tuple[np.ndarray, int]:
    """Pooled backbone features (n, d) for ``paths``; (features, number computed now)."""
    from ..progress import progress as progress_bar

    from ..data.pipeline import training_dataset

    folder = (cache_dir or default_cache_dir()) / backbone_key(model, geometry)
    folder.mkdir(parents=True, exist_ok=True)
    targets = [folder / f"{file_digest(p)}.npy" for p in paths]
    missing = [i for i, t in enumerate(targets) if not t.is_file()]
    if missing:
        dataset = training_dataset(
            [paths[i] for i in missing], np.zeros(len(missing)), geometry, batch_size=batch_size,
            shuffle=False, seed=0, cache=False,
        )
        features = extract_features(feature_extractor(model), dataset.map(lambda x, y: x), batch_size)
        for position, row in enumerate(progress_bar(features, desc="caching features", unit="img", disable=not progress)):
            with atomic_path(targets[missing[position]]) as tmp:
                np.save(tmp, row)
    stacked = np.stack([np.load(t, allow_pickle=False) for t in targets])
    return stacked, len(missing)


def extract_features(extractor, images, batch_size: int) -> np.ndarray:
    """``extractor`` over a dataset of image batches, as one compiled function traced once.

    Every call gets a full batch (the last one padded with zeros, its padding cut off again), so
    the function has one static input shape and one trace: Keras' ``predict`` traces a second
    time for a short last batch. Calling the model eagerly per batch would execute a ResNet op
    by op, several times slower.
    """
    import tensorflow as tf

    spec = images.element_spec
    run = tf.function(lambda x: extractor(x, training=False),
                      input_signature=[tf.TensorSpec((batch_size, *spec.shape[1:]), spec.dtype)])
    parts = []
    for batch in images:
        n = int(batch.shape[0])
        if n < batch_size:
            batch = tf.pad(batch, [[0, batch_size - n]] + [[0, 0]] * (len(batch.shape) - 1))
        parts.append(np.asarray(run(batch), dtype=np.float32)[:n])
    return np.concatenate(parts) if parts else np.zeros((0, *extractor.output.shape[1:]), np.float32)


def feature_dataset(features: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, batch_size: int, seed: int,
                    *, shuffle: bool, repeat: bool = False, balanced: bool = False):
    """(features, label[, weight]) batches for training the head: ``pipeline.labelled_dataset`` over
    feature vectors instead of images (nothing to decode or cache), so ``shuffle``, ``repeat`` and
    ``balanced`` (``class_balance: balanced``: classes drawn equally, seeded) behave exactly as they
    do for images. Repeated or balanced streams are infinite: fit needs ``steps_per_epoch``.
    """
    from ..data.pipeline import labelled_dataset

    features = np.asarray(features, np.float32)
    return labelled_dataset((features,), labels, lambda vector: vector, image_bytes=features[:1].nbytes,
                            batch_size=batch_size, shuffle=shuffle, seed=seed, sample_weights=weights, cache=False,
                            repeat=repeat, balanced=balanced)


def head_model(model):
    """The layers after the pooled features, as a model on feature vectors (shares weights)."""
    import keras

    feature_layer = model.get_layer(FEATURE_LAYER)
    inputs = keras.Input(feature_layer.output.shape[1:], name="features")
    x = inputs
    for layer in model.layers[model.layers.index(feature_layer) + 1 :]:
        x = layer(x)
    return keras.Model(inputs, x, name="head")
