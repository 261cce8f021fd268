"""The training datasets, one per trainer: each reads a dataset split (wsss.datasets) and applies the one
training augmentation (wsss.transforms.resize_flip_crop), seeded by (seed, epoch, index) so a resumed run sees
exactly the data an uninterrupted run would (``set_epoch`` is called by wsss.training.train).

- :class:`LabeledImages`: (image, multi-hot labels), the classifier's samples;
- :class:`SeedLabelImages`: plus the first BAO teacher labels from each image's seed file;
- :class:`AffinityDataset`: (image, grid labels) from the affinity-label PNGs (IRN's train_irn data).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from wsss.affinity import downsample_labels
from wsss.datasets import read_label_png
from wsss.maps import load_seeds
from wsss.models.bao import IGNORE, teacher_labels
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


class SeedLabelImages(LabeledImages):
    """(image, multi-hot labels, first teacher labels) samples: the teacher labels come from each image's seed file
    (:func:`wsss.models.bao.teacher_labels`), augmented with the image. Seeded per (seed, epoch, index) like
    :class:`LabeledImages`, so a resumed run sees the same data; the bao stage reads ``epoch`` for its teacher
    schedule."""

    def __init__(self, ds, seed_dir, resize: int = 512, scale_range: Sequence[float] = (0.7, 1.3),
                 crop: int = 448, flip: bool = True, seed: int = 0):
        super().__init__(ds, resize, scale_range, crop, flip, seed)
        self.seed_dir = Path(seed_dir)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        id_ = self.ids[i]
        image = self.ds.image(id_)
        seeds = load_seeds(self.seed_dir / f"{id_}.npz")
        if tuple(seeds.size) != image.shape[:2]:
            raise ValueError(f"{self.seed_dir / f'{id_}.npz'}: seed size {seeds.size} differs from the image size "
                             f"{image.shape[:2]} ({self.ds.image_path(id_)})")
        label = teacher_labels(seeds.high, seeds.keys)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        x, lab = joint_train_transform(image, label, rng, self.resize, self.scale_range, self.crop, self.flip)
        return {"image": torch.from_numpy(x), "labels": torch.from_numpy(self.ds.labels(id_)),
                "target": torch.from_numpy(lab.astype(np.int64))}


class AffinityDataset(torch.utils.data.Dataset):
    """(image crop, grid labels) pairs from a split and its affinity-label PNGs (IRN's train_irn data).

    Random long-side resize in ``resize_range``, horizontal flip, normalisation, a ``crop`` x ``crop`` window
    (image padded with zeros = mean colour, labels with 255), labels sampled to the stride-``grid_stride`` grid.
    Augmentation is keyed by (seed, epoch, index), like :class:`LabeledImages` (exact resume).
    """

    def __init__(self, ds, label_dir, resize_range: Sequence[int] = (320, 640), crop: int = 512,
                 grid_stride: int = 4, flip: bool = True, seed: int = 0):
        self.ds, self.ids, self.label_dir = ds, list(ds.ids), Path(label_dir)
        self.resize_range, self.crop, self.grid_stride, self.flip = tuple(resize_range), int(crop), grid_stride, flip
        self.seed, self.epoch = int(seed), 0
        if self.crop % self.grid_stride:
            raise ValueError(f"affinity.crop_size {crop} must be a multiple of grid_stride {grid_stride}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        id_ = self.ids[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        image = self.ds.image(id_)
        lpath = self.label_dir / f"{id_}.png"
        label = read_label_png(lpath)
        if label.shape != image.shape[:2]:
            raise ValueError(f"{lpath}: affinity labels are {label.shape[1]}x{label.shape[0]}, the image "
                             f"{self.ds.image_path(id_)} is {image.shape[1]}x{image.shape[0]}; re-run ir_labels")
        long_side = int(rng.integers(self.resize_range[0], self.resize_range[1] + 1))
        img_out, lab_out = resize_flip_crop(image, rng, long_side, self.crop, self.flip, label, IGNORE)
        grid = downsample_labels(lab_out, self.grid_stride)
        return {"image": torch.from_numpy(img_out), "labels": torch.from_numpy(grid.astype(np.int64))}
