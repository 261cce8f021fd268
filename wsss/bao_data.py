"""BAO's training samples: the classifier's (wsss.train_data) plus the first teacher labels from each seed file."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from wsss.maps import load_seeds
from wsss.models.bao import teacher_labels
from wsss.train_data import LabeledImages, joint_train_transform


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
