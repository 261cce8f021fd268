"""Frozen-backbone features computed once, for the trainers whose backbone does not learn (affinity, BAO frozen).

A frozen backbone in eval mode maps a given input crop to the same features every time, so with a fixed scale
and a horizontal flip as the only augmentation its features can be computed once per image and per mirror
(2 forward passes per image) instead of at every iteration; training then runs the small head only. Each epoch
takes the plain or the mirrored copy of an image from (seed, epoch, index), as the augmenting datasets key their
randomness (exact resume).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor


class FeatureCache(torch.utils.data.Dataset):
    """Items ``{"feats": [level tensors], **the source item's other keys}`` for the plain image and its mirror.

    ``features`` maps a batch of images (B, 3, H, W) to a list of level features (each (B, C, h, w)); it is
    called under ``torch.no_grad`` on the source's epoch-0 items (their fixed-scale crops). ``flip_keys``: the
    other keys that are spatial and are mirrored with the image (e.g. label maps); the rest are copied as they
    are. ``dtype``: the stored feature type
    (float16 halves the memory; items come back as float32). A cache that would not fit in half of the memory
    available is refused after the first batch, with an error naming ``config_key``.
    Memory: ``2 * N * sum_l C_l * h_l * w_l`` elements; meant for datasets that fit in memory (the demo: 240
    images, ~120 MB).
    """

    def __init__(self, features: Callable[[Tensor], Sequence[Tensor]], source: torch.utils.data.Dataset,
                 device: torch.device | str = "cpu", batch_size: int = 16, flip: bool = True, seed: int = 0,
                 flip_keys: Sequence[str] = ("labels",), image_key: str = "image",
                 dtype: torch.dtype = torch.float32, config_key: str = "cache_features"):
        self.seed, self.epoch, self.flip = int(seed), 0, bool(flip)
        self.n = len(source)
        # items[i][m]: the cached item of image i, m = 0 plain, 1 mirrored
        self.items: list[list[dict]] = []
        if hasattr(source, "set_epoch"):
            source.set_epoch(0)  # the fixed-scale crop placement of epoch 0
        with torch.no_grad():
            for start in range(0, self.n, batch_size):
                batch = [source[i] for i in range(start, min(start + batch_size, self.n))]
                images = torch.stack([b[image_key] for b in batch]).to(device)
                copies: list[list[dict]] = [[] for _ in batch]
                for mirror in ((False, True) if self.flip else (False,)):
                    feats = [f.detach().to("cpu", dtype) for f in features(images.flip(-1) if mirror else images)]
                    for j, item in enumerate(batch):
                        rest = {k: (v.flip(-1).clone() if mirror and k in flip_keys else v)
                                for k, v in item.items() if k != image_key}
                        copies[j].append({"feats": [f[j].clone() for f in feats], **rest})
                self.items.extend(copies)
                if start == 0:
                    check_memory(copies[0], self.n, config_key)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        m = int(np.random.default_rng([self.seed, self.epoch, i]).random() < 0.5) if self.flip else 0
        item = {**self.items[i][m], "feats": [f.float() for f in self.items[i][m]["feats"]]}
        return item


def available_memory() -> int | None:
    """Bytes of memory available now (Linux /proc/meminfo), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(copies: list[dict], n: int, config_key: str) -> None:
    """Raise before filling the cache when ``n`` images like this one (its plain + mirrored copies) would take
    more than half of the available memory."""
    per_image = sum(f.numel() * f.element_size() for c in copies for f in c["feats"])
    need, avail = per_image * n, available_memory()
    if avail is not None and need > avail // 2:
        raise ValueError(f"{config_key}=True: the frozen features of {n} images would take {need / 2**30:.1f} GiB, "
                          f"more than half of the {avail / 2**30:.1f} GiB available; set {config_key}=False "
                          "(features are then computed at every step)")
