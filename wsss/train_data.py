"""The classifier's training samples and the one joint image + label augmentation the other trainers' datasets
share. Each dataset reads a split (wsss.datasets), applies wsss.transforms.resize_flip_crop and is seeded by
(seed, epoch, index), so a resumed run sees exactly the data an uninterrupted run would (``set_epoch`` is called by
wsss.training.train).

- :class:`LabeledImages`: (image, multi-hot labels), the classifier's samples (here);
- ``SeedLabelImages`` (wsss.bao_data): plus the first BAO teacher labels from each image's seed file;
- ``AffinityDataset`` (wsss.affinity_data): (image, grid labels) from the affinity-label PNGs (IRN's train_irn).

Each trainer's dataset is its own module so that a stage's code fingerprint (pipeline.fingerprint: the modules it
imports) holds only its own data code: a change to BAO's data does not retrain the classifier.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wsss.datasets.files import IGNORE
from wsss.transforms import random_long_side, resize_flip_crop, train_transform


class LabeledImages(torch.utils.data.Dataset):
    """A ``SegDataset`` split as (image, multi-hot labels) training samples with seeded augmentation.

    ``set_epoch`` (called by wsss.training.train) changes the augmentation draw per epoch.
    """

    def __init__(self, ds, resize: int = 512, scale_range: Sequence[float] = (0.7, 1.3), crop: int = 448,
                 flip: bool = True, seed: int = 0):
        self.ds, self.ids = ds, list(ds.ids)
        self.resize, self.scale_range, self.crop, self.flip = resize, tuple(scale_range), crop, flip
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        id_ = self.ids[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        x = train_transform(self.ds.image(id_), rng, self.resize, self.scale_range, self.crop, self.flip)
        return {"image": torch.from_numpy(x), "labels": torch.from_numpy(self.ds.labels(id_))}


def joint_train_transform(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, resize: int = 512,
                          scale_range: Sequence[float] = (0.7, 1.3), crop: int = 448,
                          flip: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's augmentation applied to an image and its label map together (label padding is ignore,
    255): :func:`wsss.transforms.resize_flip_crop`. Returns (float32 3 x crop x crop, uint8 crop x crop)."""
    return resize_flip_crop(image, rng, random_long_side(rng, resize, scale_range), crop, flip, label, IGNORE)
