"""Inter-pixel affinities: pair offsets within a radius, affinity labels, the loss, the training data and step
(the net itself: wsss.models.affinity_net).

Formulation: AffinityNet's (PSA, Ahn & Kwak CVPR 2018) pairwise affinity ``a_ij = exp(-mean_c |f_i - f_j|)``
on a learned embedding ``f``, not IRN's class-boundary map + displacement field. Why: the random walk only
needs pairwise affinities; PSA predicts them directly and needs no displacement branch, no path-max over
boundary scores and no instance machinery, so the model is one small head and the loss a few lines. IRN's
*schedule* is kept (frozen classifier backbone, stride-4 grid, radius 10 for training / 5 for inference,
affinity labels from CRF-cleaned confident regions, beta=10, 2^8 walk steps).

Layout: for a grid of ``h x w`` cells and the half-plane offsets ``(dy, dx)`` of :func:`pair_offsets`
(``dy >= 0``; every unordered pair appears once), affinities are a tensor ``(..., n_off, h, w)`` where entry
``[k, y, x]`` is the affinity between cell ``(y, x)`` and ``(y + dy_k, x + dx_k)``; entries whose partner
falls outside the grid are meaningless and masked by :func:`pair_valid_mask`.

How the demo's affinity training was diagnosed and fixed (numbers, dead ends): docs/DEVLOG.md.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

IGNORE = 255

# ---- pair structure ------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def pair_offsets(radius: int) -> tuple[tuple[int, int], ...]:
    """Half-plane offsets ``(dy, dx)`` with ``0 < dy^2 + dx^2 < radius^2`` (PSA's ``get_indices_of_pairs``).

    Only one of ``d`` / ``-d`` is listed: the affinity is symmetric, so each unordered pair is stored once.
    """
    if radius < 2:
        raise ValueError(f"affinity radius must be >= 2 (got {radius}): radius 1 has no neighbours")
    out = [(0, dx) for dx in range(1, radius)]
    for dy in range(1, radius):
        for dx in range(-radius + 1, radius):
            if dx * dx + dy * dy < radius * radius:
                out.append((dy, dx))
    return tuple(out)


def grid_size(height: int, width: int, stride: int) -> tuple[int, int]:
    """The affinity grid of an image: ``ceil(H / stride) x ceil(W / stride)`` (IRN's ``strided_size``)."""
    return math.ceil(height / stride), math.ceil(width / stride)


def pair_valid_mask(h: int, w: int, offsets: Sequence[tuple[int, int]], device=None) -> Tensor:
    """(n_off, h, w) bool: the partner ``(y + dy, x + dx)`` lies inside the grid."""
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    off = torch.tensor(offsets, device=device, dtype=torch.long).view(-1, 2)
    dy, dx = off[:, 0].view(-1, 1, 1), off[:, 1].view(-1, 1, 1)
    return (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)


def shifted(x: Tensor, dy: int, dx: int, fill: float = 0.0) -> Tensor:
    """``out[..., y, x] = x[..., y + dy, x + dx]`` (``fill`` outside the grid); ``dy >= 0``."""
    h, w = x.shape[-2:]
    out = torch.full_like(x, fill)
    ys, ye = 0, h - dy
    xs, xe = max(0, -dx), min(w, w - dx)
    if ye > ys and xe > xs:
        out[..., ys:ye, xs:xe] = x[..., ys + dy:ye + dy, xs + dx:xe + dx]
    return out


def affinity_labels(labels: Tensor, offsets: Sequence[tuple[int, int]]) -> tuple[Tensor, Tensor, Tensor]:
    """Pair targets from a grid label map (..., h, w) (0 = bg, 1..254 = classes, 255 = ignore).

    Returns three bool tensors (..., n_off, h, w): ``bg_pos`` (both background), ``fg_pos`` (both the same
    foreground class) and ``neg`` (two different known labels). Pairs touching an ignore cell or leaving
    the grid are in none of them.
    """
    labels = labels.long()
    h, w = labels.shape[-2:]
    partner = torch.stack([shifted(labels, dy, dx, fill=IGNORE) for dy, dx in offsets], dim=-3)
    me = labels.unsqueeze(-3)
    known = (me != IGNORE) & (partner != IGNORE)
    same = known & (me == partner)
    return same & (me == 0), same & (me != 0), known & (me != partner)


def pairwise_affinity(feats: Tensor, offsets: Sequence[tuple[int, int]], chunk: int = 8) -> Tensor:
    """PSA affinity ``exp(-mean_c |f_p - f_q|)`` for every offset: (B, C, h, w) -> (B, n_off, h, w).

    Computed in chunks of offsets under activation checkpointing, so training memory is O(B*C*h*w*chunk)
    instead of O(B*C*h*w*n_off) (radius 10 has 150 offsets).
    """
    def part(f: Tensor, offs: tuple[tuple[int, int], ...]) -> Tensor:
        return torch.stack([torch.exp(-(f - shifted(f, dy, dx)).abs().mean(1)) for dy, dx in offs], dim=1)

    offsets = tuple(tuple(o) for o in offsets)
    chunks = [offsets[i:i + chunk] for i in range(0, len(offsets), chunk)]
    if feats.requires_grad and torch.is_grad_enabled():
        return torch.cat([checkpoint(part, feats, c, use_reentrant=False) for c in chunks], dim=1)
    return torch.cat([part(feats, c) for c in chunks], dim=1)


def affinity_loss(aff: Tensor, bg_pos: Tensor, fg_pos: Tensor, neg: Tensor, eps: float = 1e-5) -> dict[str, Tensor]:
    """PSA / IRN balanced loss: ``bg/4 + fg/4 + neg/2`` where each term is a mean over its own pairs
    (``-log a`` for same-label pairs, ``-log(1 - a)`` for different-label pairs), so the rare negative
    pairs and the abundant background pairs weigh the same regardless of their counts."""
    aff = aff.float()

    def mean_over(term: Tensor, mask: Tensor) -> Tensor:
        return (term * mask).sum() / (mask.sum() + eps)

    bg = mean_over(-torch.log(aff + eps), bg_pos)
    fg = mean_over(-torch.log(aff + eps), fg_pos)
    ng = mean_over(-torch.log(1.0 + eps - aff), neg)
    return {"loss": bg / 4 + fg / 4 + ng / 2, "bg": bg.detach(), "fg": fg.detach(), "neg": ng.detach(),
            "n_bg": bg_pos.sum().detach().float(), "n_fg": fg_pos.sum().detach().float(),
            "n_neg": neg.sum().detach().float()}


def _pair_sums(emb: Tensor, labels: Tensor, offsets: tuple[tuple[int, int], ...], eps: float) -> Tensor:
    """(6,) sums: -log a over bg-bg / same-fg pairs, -log(1 - a) over different-label pairs, and the 3 counts.

    Works on each offset's in-grid overlap only (two slices of ``emb``, no shifted copy, no fill, no
    out-of-grid work), with ``-log a = mean_c |f_p - f_q|`` computed exactly instead of ``-log(exp(-d) + eps)``.
    """
    h, w = emb.shape[-2:]
    out = emb.new_zeros(6, dtype=torch.float32)
    for dy, dx in offsets:
        xs, xe = max(0, -dx), min(w, w - dx)
        if h - dy <= 0 or xe <= xs:
            continue
        la, lb = labels[..., :h - dy, xs:xe], labels[..., dy:, xs + dx:xe + dx]
        known = (la != IGNORE) & (lb != IGNORE)
        if not known.any():
            continue
        d = (emb[..., :h - dy, xs:xe] - emb[..., dy:, xs + dx:xe + dx]).abs().mean(-3).float()
        same = known & (la == lb)
        bg, fg, neg = same & (la == 0), same & (la != 0), known & (la != lb)
        pos_term = -torch.log(torch.exp(-d) + eps)  # = d up to eps: the same value as affinity_loss
        neg_term = -torch.log(eps - torch.expm1(-d))  # -log(1 + eps - exp(-d)), exact for small d
        out = out + torch.stack([(pos_term * bg).sum(), (pos_term * fg).sum(), (neg_term * neg).sum(),
                                 bg.sum().float(), fg.sum().float(), neg.sum().float()])
    return out


def pair_loss(emb: Tensor, labels: Tensor, offsets: Sequence[tuple[int, int]], chunk: int = 0,
              eps: float = 1e-5) -> dict[str, Tensor]:
    """:func:`affinity_loss` computed straight from the embedding (B, C, h, w) and grid labels (B, h, w).

    Same value as ``affinity_loss(pairwise_affinity(emb), *affinity_labels(labels))`` but without the
    (B, n_off, h, w) affinity and mask tensors: measured on the demo (batch 8, 64-d, 32x32 grid, 54 offsets,
    2 cores) a training step went from ~1.4-2.8 s (checkpointed full-grid affinities) to ~0.1 s. ``chunk > 0``
    checkpoints groups of ``chunk`` offsets (memory O(B*C*h*w*chunk), for VOC-sized crops on a GPU);
    ``chunk = 0`` keeps every offset's activations (fastest, fine for small grids).
    """
    offsets = tuple(tuple(o) for o in offsets)
    labels = labels.long()
    if chunk and emb.requires_grad and torch.is_grad_enabled():
        parts = [offsets[i:i + chunk] for i in range(0, len(offsets), chunk)]
        sums = sum(checkpoint(_pair_sums, emb, labels, c, eps, use_reentrant=False) for c in parts)
    else:
        sums = _pair_sums(emb, labels, offsets, eps)
    bg, fg, ng = (sums[i] / (sums[i + 3] + eps) for i in range(3))
    loss = bg / 4 + fg / 4 + ng / 2
    if emb.requires_grad and not loss.requires_grad:  # no confident pair in the batch: a step with zero gradient
        loss = loss + 0.0 * emb.sum()
    return {"loss": loss, "bg": bg.detach(), "fg": fg.detach(), "neg": ng.detach(),
            "n_bg": sums[3].detach(), "n_fg": sums[4].detach(), "n_neg": sums[5].detach()}


def downsample_labels(labels: np.ndarray, stride: int) -> np.ndarray:
    """Label map (H, W) -> grid (ceil(H/s), ceil(W/s)) by taking each cell's centre pixel (nearest, as IRN)."""
    h, w = grid_size(*labels.shape, stride)
    ys = np.minimum(np.arange(h) * stride + stride // 2, labels.shape[0] - 1)
    xs = np.minimum(np.arange(w) * stride + stride // 2, labels.shape[1] - 1)
    return labels[np.ix_(ys, xs)]


def affinity_step(offsets: Sequence[tuple[int, int]], chunk: int = 0):
    """The ``step_fn`` for wsss.training.train: the embedding of the crop (or of its cached features), then
    :func:`pair_loss` against its grid labels (``chunk``: offsets per checkpointed group, 0 = none)."""
    offsets = tuple(offsets)

    def step(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        labels = batch["labels"]
        emb = model(batch["feats"], size=tuple(labels.shape[-2:])) if "feats" in batch else model(batch["image"])
        return pair_loss(emb.float(), labels, offsets, chunk)

    return step
