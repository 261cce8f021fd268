"""The affinity net's training samples (IRN's train_irn data): image crops and their affinity labels on the grid."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from wsss.affinity import downsample_labels
from wsss.datasets import read_label_png
from wsss.datasets.files import IGNORE
from wsss.transforms import resize_flip_crop


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
