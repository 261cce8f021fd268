"""Multi-level feature fusion for the dense heads on a frozen backbone (the affinity net, BAO's multi-level head)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def group_count(channels: int) -> int:
    """GroupNorm groups for ``channels``: the largest of 32, 16, 8, 4, 2 leaving at least 4 channels a group."""
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0 and channels // g >= 4:
            return g
    return 1


class LevelFusion(nn.ModuleList):
    """Feature levels -> one map: each level through a 1x1 conv + GroupNorm + ReLU (``dims`` channels), bilinearly
    resized to a common size, concatenated (``out_channels`` = sum of ``dims``). The convolutions keep PyTorch's
    default init: the owner initialises them (the affinity net's random draws stay those it always made)."""

    def __init__(self, channels: Sequence[int], dims: Sequence[int]):
        if len(channels) != len(dims):
            raise ValueError(f"{len(dims)} dims for {len(channels)} feature levels")
        super().__init__(nn.Sequential(nn.Conv2d(c, d, 1, bias=False), nn.GroupNorm(group_count(d), d),
                                       nn.ReLU(inplace=True)) for c, d in zip(channels, dims))
        self.out_channels = int(sum(dims))

    def forward(self, feats: Sequence[Tensor], size: Sequence[int]) -> Tensor:
        return torch.cat([F.interpolate(level(f), size=tuple(size), mode="bilinear", align_corners=False)
                          for level, f in zip(self, feats)], 1)
