"""Seed files (wsss.maps.save_seeds / load_seeds): lossless planar-residual storage of the quantised maps, the former
layout still readable, extra arrays, size on disk of smooth VOC-size maps, and a clear error for a broken file."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.cache import atomic_save_npz
from wsss.maps import decode_planar, encode_planar, load_seeds, quantize, save_seeds


def smooth_maps(k: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """CAM-like maps: a few bumps plus low noise on the stride-16 grid, bilinearly upsampled, max-normalised."""
    rng = np.random.default_rng(seed)
    gh, gw = math.ceil(h / 16), math.ceil(w / 16)
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
    low = np.abs(rng.normal(0, 0.03, (k, gh, gw))).astype(np.float32)
    for c in range(k):
        for _ in range(2):
            cy, cx, sd = rng.uniform(0, gh), rng.uniform(0, gw), rng.uniform(0.1, 0.3) * max(gh, gw)
            low[c] += np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sd * sd))
    high = F.interpolate(torch.from_numpy(low)[None], (h, w), mode="bilinear", align_corners=False)[0]
    return (high / high.flatten(1).max(1).values[:, None, None]).numpy()


@pytest.mark.parametrize("k, h, w", [(1, 37, 70), (3, 64, 64), (2, 1, 5), (0, 9, 9)])
def test_roundtrip_gives_exactly_the_quantised_values(tmp_path, k, h, w):
    rng = np.random.default_rng(k)
    for high in (smooth_maps(max(k, 1), h, w)[:k], rng.random((k, h, w)).astype(np.float32)):  # smooth and noise
        stride4 = rng.random((k, math.ceil(h / 4), math.ceil(w / 4))).astype(np.float32)
        save_seeds(tmp_path / "a.npz", np.arange(k), stride4, high)
        s = load_seeds(tmp_path / "a.npz")
        assert s.high.dtype == np.float32 and s.high.shape == (k, h, w) and s.size == (h, w)
        assert np.array_equal(s.high, quantize(high).astype(np.float32) / 255.0)
        assert np.array_equal(s.stride4, quantize(stride4).astype(np.float32) / 255.0) and s.extra == {}
    q = rng.integers(0, 256, (2, 7, 11), dtype=np.uint8)  # every byte value, wrap-around of the residual
    assert np.array_equal(decode_planar(encode_planar(q)), q)


def test_former_layout_is_a_clear_error(tmp_path):
    """Files without the stride-4 maps (before IRN's geometry) cannot feed the random walk: re-run seeds."""
    high = smooth_maps(2, 50, 40)
    atomic_save_npz(tmp_path / "old.npz", keys=np.asarray([1, 4], np.int16), low=np.zeros((2, 4, 3), np.float16),
                    high=quantize(high), size=np.asarray(high.shape[1:], np.int32))
    with pytest.raises(ValueError, match=r"old\.npz: seed file of an older layout.*re-run the seeds stage"):
        load_seeds(tmp_path / "old.npz")


def test_extra_arrays_and_reserved_names(tmp_path):
    high = smooth_maps(2, 30, 30)
    mid = np.random.default_rng(0).random((2, 8, 8)).astype(np.float16)
    save_seeds(tmp_path / "a.npz", [0, 1], high[:, ::4, ::4], high, mid=mid)
    s = load_seeds(tmp_path / "a.npz")
    assert list(s.extra) == ["mid"] and s.extra["mid"].dtype == np.float16 and np.array_equal(s.extra["mid"], mid)
    with pytest.raises(ValueError, match="may not be named"):
        save_seeds(tmp_path / "b.npz", [0, 1], high[:, ::4, ::4], high, size=np.zeros(2))


def test_voc_size_smooth_maps_stay_under_100_kb(tmp_path):
    high = smooth_maps(3, 375, 500)
    stride4 = high[:, ::4, ::4]
    save_seeds(tmp_path / "new.npz", [0, 1, 2], stride4, high)
    atomic_save_npz(tmp_path / "old.npz", keys=np.arange(3, dtype=np.int16), stride4=quantize(stride4),
                    high=quantize(high), size=np.asarray([375, 500], np.int32))  # plain deflate of the same
    new, old = (tmp_path / "new.npz").stat().st_size, (tmp_path / "old.npz").stat().st_size
    assert new < 100_000 and new < 0.75 * old, (new, old)


def test_broken_file_is_named(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match=r"x\.npz: damaged seed file"):
        load_seeds(tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError, match=r"y\.npz: seed file is missing"):
        load_seeds(tmp_path / "y.npz")
