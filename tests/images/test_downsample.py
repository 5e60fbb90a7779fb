"""The box-average downsampling behind ``max_size``, against a brute-force loop."""

from __future__ import annotations

import numpy as np
import pytest

from tfxray.images.base import area_downsample


def brute_force(image: np.ndarray, k: int, valid: np.ndarray | None = None) -> np.ndarray:
    height, width = image.shape[:2]
    out = np.zeros((-(-height // k), -(-width // k)) + image.shape[2:])
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = image[i * k:(i + 1) * k, j * k:(j + 1) * k].astype(float)
            keep = np.ones(block.shape[:2], bool) if valid is None else valid[i * k:(i + 1) * k, j * k:(j + 1) * k]
            out[i, j] = block[keep].mean(axis=0) if keep.any() else 0
    return out


@pytest.mark.parametrize("shape, max_size", [((10, 7), 3), ((9, 9), 3), ((5, 12), 4), ((4, 4), 10)])
def test_matches_brute_force(shape, max_size):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 4096, shape).astype(np.uint16)
    k = max(1, -(-max(shape) // max_size))
    reduced, _ = area_downsample(image, max_size)
    assert max(reduced.shape) <= max(max_size, 1) or k == 1
    np.testing.assert_allclose(reduced, brute_force(image, k), rtol=1e-6)


def test_channels_frames_and_mask():
    rng = np.random.default_rng(2)
    rgb = rng.random((11, 8, 3)).astype(np.float32)
    reduced, _ = area_downsample(rgb[None].repeat(2, 0), 4, channels_last=True)
    assert reduced.shape == (2, 4, 3, 3)
    np.testing.assert_allclose(reduced[1], brute_force(rgb, 3), rtol=1e-5)

    gray = rng.integers(0, 100, (7, 7)).astype(np.int16)
    valid = rng.random((7, 7)) > 0.4
    valid[:3, :3] = False  # one fully padded block
    reduced, reduced_valid = area_downsample(gray, 3, valid=valid)
    np.testing.assert_allclose(reduced, brute_force(gray, 3, valid), rtol=1e-6)
    assert not reduced_valid[0, 0] and reduced_valid.sum() == reduced_valid.size - 1
