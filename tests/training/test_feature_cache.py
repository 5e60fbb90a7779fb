"""The frozen-backbone feature cache: what its key depends on, reuse, and when it is switched off."""

import shutil

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from tests.chain_helpers import tiny_recipe  # noqa: E402
from tfxray.data.manifest import load_manifest  # noqa: E402
from tfxray.data.geometry import ImageGeometry  # noqa: E402
from tfxray.data.inputs import load_input  # noqa: E402
from tfxray.models.classifier import build_classifier  # noqa: E402
from tfxray.training.features import backbone_key, cached_features, feature_extractor, file_digest  # noqa: E402

GEOMETRY = ImageGeometry(32, 1, "stretch")


def frozen(backbone="tiny_cnn", size=32, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    options = dict(normalization="per_image") | kwargs
    return build_classifier(backbone, input_size=size, channels=1, weights=None, freeze="all-but-top", **options)


def test_the_key_is_stable_and_ignores_the_head():
    model = frozen()
    key = backbone_key(model, GEOMETRY)
    assert key == backbone_key(frozen(), GEOMETRY)  # the same backbone built again
    dense = model.get_layer("head_dense")
    dense.set_weights([w + 1.0 for w in dense.get_weights()])  # the head trains: the features stay valid
    assert backbone_key(model, GEOMETRY) == key
    assert backbone_key(frozen(dropout=0.5, l2=0.01), GEOMETRY) == key  # head options are after the features


def test_the_key_changes_with_backbone_weights_input_size_and_preprocessing():
    base = backbone_key(frozen(), GEOMETRY)
    keys = {
        "backbone": backbone_key(frozen("mobilenet_v2"), GEOMETRY),
        "weights (another initialisation)": backbone_key(frozen(seed=1), GEOMETRY),
        "input size": backbone_key(frozen(size=48), ImageGeometry(48, 1, "stretch")),
        "resize": backbone_key(frozen(), ImageGeometry(32, 1, "pad")),
        "preprocessing unit": backbone_key(frozen(normalization="unit"), GEOMETRY),
        "preprocessing dataset": backbone_key(frozen(normalization="dataset", dataset_mean=0.3, dataset_std=0.2), GEOMETRY),
        "dataset mean": backbone_key(frozen(normalization="dataset", dataset_mean=0.4, dataset_std=0.2), GEOMETRY),
        "pooling": backbone_key(frozen(pooling="max"), GEOMETRY),
    }
    assert base not in keys.values()
    assert len(set(keys.values())) == len(keys)  # every change gives its own key
    # a single weight of the backbone, a BatchNorm moving mean, is enough
    model = frozen()
    bn = model.get_layer("stage2_a_bn")
    values = bn.get_weights()
    values[2][0] += 1e-3
    bn.set_weights(values)
    assert backbone_key(model, GEOMETRY) != base


def test_file_digest_follows_the_content_not_the_path(wrist_png, tmp_path):
    from PIL import Image

    folder, manifest = wrist_png
    source = folder / manifest.path.iloc[0]
    copy = tmp_path / "renamed.png"
    shutil.copy(source, copy)
    assert file_digest(str(copy)) == file_digest(str(source))
    pixels = np.array(Image.open(copy))
    pixels.flat[0] = (int(pixels.flat[0]) + 1) % 256  # one pixel changed
    Image.fromarray(pixels).save(copy)
    assert file_digest(str(copy)) != file_digest(str(source))


def test_cached_features_are_the_backbone_output_reused_and_recomputed_per_changed_image(wrist_png, tmp_path):
    from PIL import Image

    folder, manifest = wrist_png
    paths = []
    for i, rel in enumerate(manifest.path.iloc[:6]):  # copies: one is edited below
        paths.append(str(tmp_path / f"img{i}.png"))
        shutil.copy(folder / rel, paths[-1])
    cache = tmp_path / "cache"
    model = frozen()
    first, computed = cached_features(model, paths, GEOMETRY, cache_dir=cache, progress=False)
    assert computed == 6 and first.shape == (6, 256)
    x = np.stack([load_input(p, GEOMETRY)[0] for p in paths])
    np.testing.assert_allclose(first, np.asarray(feature_extractor(model)(x)), atol=1e-5)
    key = backbone_key(model, GEOMETRY)
    assert sorted(p.name for p in (cache / key).iterdir()) == sorted(f"{file_digest(p)}.npy" for p in paths)

    again, computed = cached_features(model, paths, GEOMETRY, cache_dir=cache, progress=False)
    assert computed == 0
    np.testing.assert_array_equal(again, first)

    pixels = np.array(Image.open(paths[2]))
    Image.fromarray(255 - pixels).save(paths[2])  # the image's content changes, its path does not
    edited, computed = cached_features(model, paths, GEOMETRY, cache_dir=cache, progress=False)
    assert computed == 1
    np.testing.assert_array_equal(np.delete(edited, 2, axis=0), np.delete(first, 2, axis=0))
    assert not np.allclose(edited[2], first[2])

    other = frozen(seed=1)  # other backbone weights: a new key, everything recomputed
    _, computed = cached_features(other, paths, GEOMETRY, cache_dir=cache, progress=False)
    assert computed == 6 and len(list(cache.iterdir())) == 2


def test_online_augmentation_switches_the_cache_off_with_a_message(wrist_png, tmp_path, capsys):
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**{"model.freeze": "all-but-top", "train.epochs": 1, "data.input_size": 32,
                            "train.cache_dir": str(tmp_path / "cache"), "augment.online.enabled": True,
                            "augment.online.flip": True, "augment.online.rotation": 10.0})
    result = train(recipe, load_manifest(folder / "manifest.csv", classes=recipe.classes), tmp_path / "run", verbose=1)
    out = capsys.readouterr().out
    assert "feature cache off: online augmentation changes the backbone's input every epoch" in out
    assert "feature cache:" not in out and "caching features" not in out
    assert not (tmp_path / "cache").exists()  # nothing written
    assert len(result.history) == 1


def test_frozen_run_without_augmentation_fills_the_cache_for_train_and_validation(wrist_png, tmp_path, capsys):
    from tfxray.training.trainer import train

    folder, _ = wrist_png
    recipe = tiny_recipe(**{"model.freeze": "all-but-top", "train.epochs": 1, "data.input_size": 32,
                            "train.cache_dir": str(tmp_path / "cache")})
    train(recipe, load_manifest(folder / "manifest.csv", classes=recipe.classes), tmp_path / "run", verbose=1)
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    used = split.path[split.split != "test"]
    assert f"feature cache: 0 of {len(used)} images reused" in capsys.readouterr().out
    (key_dir,) = (tmp_path / "cache").iterdir()
    assert sorted(p.name for p in key_dir.iterdir()) == sorted({f"{file_digest(p)}.npy" for p in used})
