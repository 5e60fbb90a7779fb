"""The tf.data training pipeline on hand-made images whose pixels name them."""

import numpy as np
import pytest

from tfxray.config import OnlineAugmentConfig
from tfxray.data.online import online_augmentation
from tfxray.data.pipeline import (
    CACHE_BUDGET_BYTES, ImageGeometry, cache_plan, decoded_bytes, training_dataset,
)
from tfxray.data.synth import write_png16
from tfxray.errors import UserError

N = 40
GEOMETRY = ImageGeometry(8)


@pytest.fixture(scope="module")
def named_images(tmp_path_factory):
    """40 flat 8x8 PNGs: image i is filled with (i + 1) / 64, so a batch tells which images it holds."""
    folder = tmp_path_factory.mktemp("named")
    paths = []
    for i in range(N):
        path = folder / f"{i:02d}.png"
        write_png16(path, np.full((8, 8), (i + 1) / 64, np.float32))
        paths.append(str(path))
    return paths


def ids(images) -> np.ndarray:
    return np.rint(np.asarray(images)[:, 0, 0, 0] * 64).astype(int) - 1


def epoch(ds, steps=None):
    batches = list(ds.take(steps) if steps else ds)
    return [tuple(np.asarray(t) for t in b) for b in batches]


def test_order_and_pairing_are_kept_without_shuffle(named_images):
    labels = np.arange(N) % 3
    weights = np.linspace(0.5, 2, N)
    batches = epoch(training_dataset(named_images, labels, GEOMETRY, batch_size=16, shuffle=False, seed=0,
                                     sample_weights=weights))
    assert [len(b[0]) for b in batches] == [16, 16, 8]
    got = np.concatenate([ids(b[0]) for b in batches])
    assert got.tolist() == list(range(N))
    assert np.concatenate([b[1] for b in batches]).tolist() == labels.tolist()
    assert np.allclose(np.concatenate([b[2] for b in batches]), weights)


def test_shuffle_is_a_permutation_that_changes_each_epoch(named_images):
    ds = training_dataset(named_images, np.zeros(N), GEOMETRY, batch_size=8, shuffle=True, seed=1)
    first = np.concatenate([ids(b[0]) for b in epoch(ds)])
    second = np.concatenate([ids(b[0]) for b in epoch(ds)])
    assert sorted(first) == list(range(N)) and sorted(second) == list(range(N))
    assert first.tolist() != second.tolist() and first.tolist() != list(range(N))


def test_balanced_sampling_draws_classes_equally(named_images):
    labels = (np.arange(N) >= 36).astype(int)  # 36 normal : 4 fracture (9:1)
    batch = 8
    steps = int(np.ceil(N / batch))  # one epoch
    ds = training_dataset(named_images, labels, GEOMETRY, batch_size=batch, shuffle=True, seed=0, balanced=True)
    batches = epoch(ds, steps * 10)
    first_epoch = np.concatenate([b[1] for b in batches[:steps]])
    assert len(first_epoch) == N and 0.3 <= first_epoch.mean() <= 0.7  # 0.1 without balancing
    drawn = np.concatenate([b[1] for b in batches])
    assert abs(drawn.mean() - 0.5) < 0.075  # 400 draws: binomial sd 0.025
    images = np.concatenate([ids(b[0]) for b in batches])
    assert np.array_equal(labels[images], drawn)  # every image keeps its own label
    assert set(images[drawn == 1]) == {36, 37, 38, 39}  # the minority repeats; the majority is subsampled
    assert len(set(images[drawn == 0])) > 30


def test_balanced_needs_two_classes(named_images):
    with pytest.raises(UserError, match="two classes"):
        training_dataset(named_images, np.zeros(N), GEOMETRY, batch_size=8, shuffle=True, seed=0, balanced=True)


ONLINE = OnlineAugmentConfig(enabled=True, rotation=180, translate=0.1, zoom=0.1, shear=0.1, flip=True,
                             brightness=0.2, contrast=0.2)


def augmented_run(paths, seed, epochs=2):
    """A fresh pipeline and fresh layers, as a second run of the same recipe builds them."""
    ds = training_dataset(paths, np.arange(N) % 2, ImageGeometry(16), batch_size=8, shuffle=True, seed=seed,
                          augment=online_augmentation(ONLINE, seed), deterministic=True)
    return [b[0] for _ in range(epochs) for b in epoch(ds)]


def test_same_seed_same_augmented_batches(named_images):
    a, b, c = augmented_run(named_images, 0), augmented_run(named_images, 0), augmented_run(named_images, 1)
    assert len(a) == 10
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert not np.array_equal(a[0], a[5])  # new draws in the second epoch
    flat = np.full_like(a[0], a[0].max())
    assert not np.allclose(a[0], flat)  # the flat images were transformed (black corners, jitter)


def test_cache_decision():
    # hand-computed sizes of decoded float32 images
    assert decoded_bytes(1000, ImageGeometry(299, 1)) == 1000 * 299 * 299 * 4 == 357_604_000
    per_image = 224 * 224 * 3 * 4  # 602,112 bytes
    fits = 2 * 1024**3 // per_image  # 3,566 images fill 2 GiB
    geometry = ImageGeometry(224, 3)
    assert cache_plan(decoded_bytes(fits, geometry)) == "memory"
    assert cache_plan(decoded_bytes(fits + 1, geometry)) == "none"
    assert cache_plan(decoded_bytes(fits + 1, geometry), cache_dir="/run/decoded") == "file"
    assert CACHE_BUDGET_BYTES == 2 * 1024**3
    assert cache_plan(100, budget_bytes=99, cache_dir=None) == "none"


@pytest.mark.parametrize("cache_dir", [None, "dir"])
def test_over_budget_sets_give_the_same_data(named_images, tmp_path, cache_dir):
    """Past the memory budget: a file cache under the run directory, or no cache at all."""
    folder = tmp_path / "decoded" if cache_dir else None
    ds = training_dataset(named_images, np.zeros(N), GEOMETRY, batch_size=8, shuffle=True, seed=2,
                          cache_dir=folder, cache_budget_bytes=1000)
    for _ in range(2):
        got = np.concatenate([ids(b[0]) for b in epoch(ds)])
        assert sorted(got) == list(range(N))
    if cache_dir:
        assert any(p.name.endswith(".index") for p in folder.iterdir())  # tf.data wrote its cache file


@pytest.mark.parametrize("shape,mode", [
    ((256, 256, 1), "stretch"), ((300, 180, 1), "stretch"), ((40, 64, 3), "stretch"), ((20, 20, 1), "stretch"),
    ((300, 180, 1), "pad"), ((72, 120, 3), "pad"), ((20, 50, 1), "pad"),
])
def test_resize_matches_tensorflow_antialiased_resize(shape, mode):
    """Pillow's float resampling, held to tf.image.resize(antialias=True) / resize_with_pad."""
    import tensorflow as tf

    from tfxray.data.geometry import resize_array

    image = np.random.default_rng(0).random(shape).astype(np.float32)
    geometry = ImageGeometry(56, shape[2], mode)
    if mode == "pad":
        reference = tf.image.resize_with_pad(image, 56, 56, antialias=True).numpy()
    else:
        reference = tf.image.resize(image, (56, 56), antialias=True).numpy()
    ours = resize_array(image, geometry)
    assert ours.shape == reference.shape == (56, 56, shape[2])
    assert np.abs(ours - reference).max() < 1e-4


def test_pad_keeps_a_square_image_whole():
    """TensorFlow's float32 arithmetic floors 256 / (256 / 56) = 55.999996 to 55, leaving a black line
    in a 56 px frame (and 64 px wide -> 55 of 56 columns); the long side here fills the frame."""
    from tfxray.data.geometry import resize_array

    image = np.random.default_rng(0).random((256, 256, 1)).astype(np.float32)
    padded = resize_array(image, ImageGeometry(56, 1, "pad"))
    assert np.array_equal(padded, resize_array(image, ImageGeometry(56, 1, "stretch")))
    assert padded[-1].min() > 0
    wide = resize_array(np.ones((40, 64, 1), np.float32), ImageGeometry(56, 1, "pad"))
    # 64 -> 56 columns, 40 -> 35 rows, (56 - 35) / 2 = 10.5 -> 10 rows above, 11 below
    assert np.allclose(wide[10:45], 1) and np.all(wide[:10] == 0) and np.all(wide[45:] == 0)


def test_any_keras_layer_is_reproducible_when_deterministic(named_images):
    """A layer without per-batch seeds (Keras's own) runs sequentially, so its generator keeps batch order."""
    import keras

    def run():
        layer = keras.layers.RandomRotation(0.5, seed=3)
        ds = training_dataset(named_images, np.zeros(N), ImageGeometry(16), batch_size=8, shuffle=True, seed=0,
                              augment=layer)
        return [b[0] for b in epoch(ds)]

    assert all(np.array_equal(x, y) for x, y in zip(run(), run()))
