"""Image transforms for classifier training and map inference (numpy in, torch tensors out).

Training randomness comes from a generator keyed by (seed, epoch, index), not from global state: the same
sample gets the same augmentation whichever worker or rank loads it, so a resumed run sees exactly the data
an uninterrupted run would (see wsss/training.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(image: np.ndarray) -> np.ndarray:
    """RGB uint8 HxWx3 -> float32 3xHxW, ImageNet mean/std."""
    x = image.astype(np.float32) / 255.0
    x = (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 HxWx3 -> normalised float tensor 1x3xHxW."""
    return torch.from_numpy(normalize(image))[None]


def resize_long(image: np.ndarray, long_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = long_side / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    if (nh, nw) == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))


def random_long_side(rng: np.random.Generator, resize: int, scale_range: Sequence[float]) -> int:
    """``resize`` x U(scale_range), at least 8 px: the random rescale of classifier and BAO training."""
    lo, hi = scale_range
    return max(8, round(resize * rng.uniform(lo, hi)))


def resize_flip_crop(image: np.ndarray, rng: np.random.Generator, long_side: int, crop: int, flip: bool = True,
                     label: np.ndarray | None = None, ignore: int = 255) -> tuple[np.ndarray, np.ndarray | None]:
    """The one training augmentation of the pipeline, for an image alone or with its label map.

    Resize to ``long_side`` (bilinear; the label nearest), flip both with probability 1/2 (``flip``), normalise,
    and take the same random ``crop`` x ``crop`` window of both; sides smaller than the crop are padded at a random
    offset (image: zeros = the mean colour after normalisation; label: ``ignore``). Draws from ``rng`` in a fixed
    order (flip, then the window), so a sample keyed by (seed, epoch, index) is the same on every resume.
    Returns (float32 3 x crop x crop, uint8 crop x crop or None).
    """
    image = resize_long(image, long_side)
    h, w = image.shape[:2]
    if label is not None and label.shape != (h, w):
        label = np.asarray(Image.fromarray(label).resize((w, h), Image.NEAREST))
    if flip and rng.random() < 0.5:
        image = image[:, ::-1]
        label = None if label is None else label[:, ::-1]
    x = normalize(image)
    ch, cw = min(crop, h), min(crop, w)
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    oy = int(rng.integers(0, crop - ch + 1))
    ox = int(rng.integers(0, crop - cw + 1))
    out = np.zeros((3, crop, crop), np.float32)
    out[:, oy:oy + ch, ox:ox + cw] = x[:, y0:y0 + ch, x0:x0 + cw]
    if label is None:
        return out, None
    lab = np.full((crop, crop), ignore, np.uint8)
    lab[oy:oy + ch, ox:ox + cw] = label[y0:y0 + ch, x0:x0 + cw]
    return out, lab


def train_transform(image: np.ndarray, rng: np.random.Generator, resize: int = 512,
                    scale_range: Sequence[float] = (0.7, 1.3), crop: int = 448, flip: bool = True) -> np.ndarray:
    """The classifier's augmentation: :func:`resize_flip_crop` at a long side of ``resize`` x U(scale_range).
    Returns float32 3 x crop x crop."""
    return resize_flip_crop(image, rng, random_long_side(rng, resize, scale_range), crop, flip)[0]


def bounded_scales(size: Sequence[int], scales: Sequence[float], max_side: int | None) -> tuple[float, ...]:
    """The multi-scale factors for one image of ``size`` (H, W): ``scales`` as they are when its long side is at
    most ``max_side`` (or ``max_side`` is None: the native size, as IRN / BAS), else each times
    ``max_side / long side``, so the nets label a large photo at about the scale they were trained at (not at
    several times the pixels). The maps are still resized to the full image size."""
    long_side = max(int(size[0]), int(size[1]))
    if max_side is None or long_side <= int(max_side):
        return tuple(float(s) for s in scales)
    f = int(max_side) / long_side
    return tuple(float(s) * f for s in scales)


def scaled_batch(image: np.ndarray, scale: float, flip: bool = True) -> torch.Tensor:
    """The image at ``scale`` (bilinear), normalised, stacked with its horizontal flip: (2 or 1)x3xhxw."""
    x = to_tensor(image)
    if scale != 1.0:
        h, w = image.shape[:2]
        x = F.interpolate(x, (max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear",
                          align_corners=False)
    return torch.cat([x, x.flip(-1)], 0) if flip else x
