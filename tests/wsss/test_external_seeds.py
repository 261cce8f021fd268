"""Seeds from any method (wsss.external_seeds): IRN's .npy format and our own .npz converted into seed files,
and a clear error naming the file for every kind of bad input."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from wsss.external_seeds import convert_one, external_files, import_seeds
from wsss.maps import load_seeds, save_seeds

CLASSES = ["background", "cat", "dog", "bird"]
H, W = 37, 70  # not multiples of 4 or 16


def maps(k: int, rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    m = rng.random((k, h, w)).astype(np.float32)
    return m / m.reshape(k, -1).max(1)[:, None, None]


def irn_file(path: Path, keys, high, cam=None) -> Path:
    """Written the way IRN's make_cam.py writes it: np.save of a dict, keys and cam as torch tensors."""
    d = {"keys": torch.as_tensor(keys), "high_res": high}
    if cam is not None:
        d["cam"] = torch.from_numpy(cam)
    np.save(path, d)
    return path


def test_irn_npy_is_converted_with_values_kept(tmp_path):
    rng = np.random.default_rng(0)
    high = maps(2, rng)
    cam4 = maps(2, rng, math.ceil(H / 4), math.ceil(W / 4))
    keys, s4, out = convert_one(irn_file(tmp_path / "a.npy", [2, 0], high, cam4), [0, 2], CLASSES, (H, W))
    assert keys.tolist() == [2, 0] and np.array_equal(out, high)
    assert np.array_equal(s4, cam4)  # IRN's stride-4 cam is the random walk's start as given
    cam16 = maps(2, rng, math.ceil(H / 16), math.ceil(W / 16))
    _, s4_16, _ = convert_one(irn_file(tmp_path / "b.npy", [0, 2], high, cam16), [0, 2], CLASSES, (H, W))
    assert s4_16.shape == cam4.shape  # a stride-16 cam is resized to the stride-4 grid
    _, pooled, _ = convert_one(irn_file(tmp_path / "c.npy", [0, 2], high), [0, 2], CLASSES, (H, W))
    assert pooled.shape == cam4.shape  # no cam: the full-resolution maps pooled onto the grid
    np.testing.assert_allclose(pooled.mean((1, 2)), high.mean((1, 2)), rtol=0.05)
    save_seeds(tmp_path / "ours.npz", keys, s4, high)
    k2, s4_2, high2 = convert_one(tmp_path / "ours.npz", [0, 2], CLASSES, (H, W))  # our own seed file
    assert k2.tolist() == [2, 0] and np.abs(high2 - high).max() <= 0.5 / 255 + 1e-6
    assert np.abs(s4_2 - s4).max() <= 0.5 / 255 + 1e-6
    np.savez(tmp_path / "irn.npz", keys=np.array([0, 2]), high_res=high)  # IRN's fields in an .npz
    assert np.array_equal(convert_one(tmp_path / "irn.npz", [0, 2], CLASSES, (H, W))[2], high)


def test_raw_scores_need_normalize_max(tmp_path):
    rng = np.random.default_rng(1)
    raw = maps(1, rng) * 7 - 1
    path = irn_file(tmp_path / "a.npy", [1], raw)
    with pytest.raises(ValueError, match=r"a\.npy.*outside \[0, 1\].*external_normalize='max'"):
        convert_one(path, [1], CLASSES, (H, W))
    _, _, high = convert_one(path, [1], CLASSES, (H, W), normalize="max")
    assert high.min() == 0 and 0.999 < high.max() <= 1


@pytest.mark.parametrize("case, match", [
    ("size", r"a\.npy: maps are 70x36 .* image is 70x37"),
    ("keys_missing_class", r"a\.npy: 'keys' \[0\] \['cat'\] are not the image's foreground labels \[0, 2\]"),
    ("keys_one_based", r"look 1-based"),
    ("keys_repeat", r"repeat a class"),
    ("nan", r"a\.npy: 'high_res' has 1 non-finite"),
    ("count", r"a\.npy: 'high_res' must be \(K, H, W\) with K = 2"),
    ("cam_grid", r"a\.npy: 'cam' is \(5, 5\), not the stride-4 or stride-16 grid"),
    ("not_dict", r"a\.npy: not a seed map file"),
    ("no_maps", r"a\.npy: no full-resolution maps"),
    ("garbage", r"a\.npy: cannot read|a\.npy: not a seed map file"),
])
def test_bad_files_name_the_file(tmp_path, case, match):
    rng = np.random.default_rng(2)
    path, high, keys = tmp_path / "a.npy", maps(2, rng), [0, 2]
    if case == "size":
        irn_file(path, keys, high[:, :-1])
    elif case == "keys_missing_class":
        irn_file(path, [0], high[:1])
    elif case == "keys_one_based":
        irn_file(path, [1, 3], high)
    elif case == "keys_repeat":
        irn_file(path, [0, 0], high)
    elif case == "nan":
        high[1, 3, 3] = np.nan
        irn_file(path, keys, high)
    elif case == "count":
        irn_file(path, keys, high[:1])
    elif case == "cam_grid":
        irn_file(path, keys, high, cam=maps(2, rng, 5, 5))
    elif case == "not_dict":
        np.save(path, high)
    elif case == "no_maps":
        np.save(path, {"keys": np.array(keys), "maps": high})
    else:
        path.write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match=match):
        convert_one(path, [0, 2], CLASSES, (H, W))


def test_import_seeds_writes_every_image_and_lists_missing_files(tmp_path):
    rng = np.random.default_rng(3)
    labels = {"x": [0], "y": [1, 2]}
    images = {"x": np.zeros((H, W, 3), np.uint8), "y": np.zeros((20, 33, 3), np.uint8)}
    ds = SimpleNamespace(ids=list(labels), split="train", classes=CLASSES, label_set=lambda i: labels[i],
                         image=lambda i: images[i])
    src = tmp_path / "ext"
    src.mkdir()
    irn_file(src / "x.npy", [0], maps(1, rng))
    with pytest.raises(FileNotFoundError, match=r"1 of 2 images have no <id>.npy / <id>.npz .*\['y'\]"):
        import_seeds(ds, {"external_dir": str(src)}, tmp_path / "out")
    irn_file(src / "y.npy", [2, 1], maps(2, rng, 20, 33))
    assert set(external_files(src, ds.ids)) == {"x", "y"}
    res = import_seeds(ds, {"external_dir": str(src)}, tmp_path / "out")
    assert res["computed"] == 2 and res["formats"] == [".npy"]
    s = load_seeds(tmp_path / "out/y.npz")
    assert s.keys.tolist() == [2, 1] and s.high.shape == (2, 20, 33) and s.stride4.shape == (2, 5, 9)
    with pytest.raises(ValueError, match="needs seeds.external_dir"):
        import_seeds(ds, {}, tmp_path / "out2")
    with pytest.raises(ValueError, match="external_normalize"):
        import_seeds(ds, {"external_dir": str(src), "external_normalize": "sum"}, tmp_path / "out2")
