"""The affinity net: the frozen classifier backbone and a trainable multi-level embedding head (PSA's pairwise
affinity on its stride-4 grid; wsss.affinity holds the pair geometry and the loss), and its checkpoint I/O.

Features: the classifier backbone gives features at strides 4, 8, 16 (mid) and 16 (high); each level goes
through a 1x1 conv + GroupNorm + ReLU, is bilinearly resized to the stride-``grid_stride`` grid (default 4:
IRN's grid; the stride-16 levels are *upsampled*), concatenated, and mapped by a 1x1 conv to the embedding.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from wsss.affinity import grid_size, pair_offsets, pairwise_affinity
from wsss.models.fusion import LevelFusion


class AffinityNet(nn.Module):
    """Frozen classifier backbone + trainable multi-level embedding head on the stride-``grid_stride`` grid."""

    def __init__(self, backbone: nn.Module, grid_stride: int = 4, dims: Sequence[int] = (64, 128, 256),
                 embed_dim: int = 256, levels: Sequence[int] | None = None, chunk: int = 8):
        super().__init__()
        self.backbone = backbone  # anything with ``backbone_features(images) -> list[Tensor]`` (the Classifier)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.grid_stride = int(grid_stride)
        self.chunk = int(chunk)
        with torch.no_grad():
            probe = self.backbone.eval().backbone_features(torch.zeros(1, 3, 64, 64))
        self.levels = list(range(len(probe)))[-len(dims):] if levels is None else list(levels)
        if len(self.levels) != len(dims):
            raise ValueError(f"affinity: {len(dims)} dims for {len(self.levels)} feature levels {self.levels}")
        chans = [probe[i].shape[1] for i in self.levels]
        self.heads = LevelFusion(chans, dims)
        self.embed = nn.Conv2d(sum(dims), embed_dim, 1, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.weight.requires_grad:
                nn.init.kaiming_normal_(m.weight)

    def train(self, mode: bool = True) -> AffinityNet:
        super().train(mode)
        self.backbone.eval()  # frozen: BN statistics stay those of the classifier (IRN)
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def embedding(self, images: Tensor) -> Tensor:
        """(B, embed_dim, ceil(H/s), ceil(W/s)) features on the affinity grid."""
        size = grid_size(images.shape[-2], images.shape[-1], self.grid_stride)
        return self.embed_features(self.frozen_features(images), size)

    @torch.no_grad()
    def frozen_features(self, images: Tensor) -> list[Tensor]:
        """The backbone levels the head reads (``self.levels``, in order): what a feature cache stores
        (:class:`wsss.feature_cache.FeatureCache`)."""
        feats = self.backbone.backbone_features(images)
        return [feats[i].detach() for i in self.levels]

    def embed_features(self, feats: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        """The trainable head on precomputed frozen features (one tensor per level of ``self.levels``)."""
        return self.embed(self.heads(feats, size))

    def forward(self, x: Tensor | Sequence[Tensor], offsets: Sequence[tuple[int, int]] | None = None,
                size: tuple[int, int] | None = None) -> Tensor:
        """Images (B, 3, H, W) or cached level features (then ``size`` = the grid) -> the embedding, or with
        ``offsets`` the affinities (B, n_off, h, w) in (0, 1]. Training calls it (not ``embedding``) so DDP
        sees a forward."""
        emb = self.embedding(x) if isinstance(x, Tensor) else self.embed_features(x, tuple(size))
        return emb if offsets is None else pairwise_affinity(emb.float(), offsets, self.chunk)

    @torch.no_grad()
    def infer(self, images: Tensor, radius: int, flip: bool = True) -> Tensor:
        """Inference affinities (B, n_off, h, w); with ``flip`` the mean of the image and its mirror (IRN)."""
        offsets = pair_offsets(radius)
        emb = self.embedding(images).float()
        aff = pairwise_affinity(emb, offsets, self.chunk)
        if flip:
            emb_f = self.embedding(images.flip(-1)).float().flip(-1)
            aff = (aff + pairwise_affinity(emb_f, offsets, self.chunk)) / 2
        return aff


def build_affinity_net(classifier: nn.Module, cfg: dict) -> AffinityNet:
    """From the ``affinity`` config section (grid_stride, dims, embed_dim, levels, chunk)."""
    return AffinityNet(classifier, grid_stride=cfg.get("grid_stride", 4), dims=tuple(cfg.get("dims", (64, 128, 256))),
                       embed_dim=cfg.get("embed_dim", 256), levels=cfg.get("levels"), chunk=cfg.get("chunk", 8))


ARCH_KEYS = ("grid_stride", "dims", "embed_dim", "levels", "chunk")  # chunk: inference only


def save_affinity_net(path, model: nn.Module, cfg: dict) -> None:
    """Weights (frozen backbone included: the file is self-contained) + architecture, atomically."""
    from pipeline.cache import atomic_path

    model = getattr(model, "module", model)
    meta = {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in cfg.items() if k in ARCH_KEYS}
    meta["levels"] = list(model.levels)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": meta}, tmp)


def load_affinity_net(path, classify_cfg: dict, num_classes: int, device="cpu") -> AffinityNet:
    """Rebuild the classifier architecture (no pretrained download) and the head, then load the weights."""
    from pathlib import Path

    from wsss.models.classifier import build_classifier

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: affinity net checkpoint is missing (run the 'affinity' stage first)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "meta" not in ckpt:
        raise ValueError(f"{path}: not an affinity-net checkpoint of this pipeline")
    classifier = build_classifier({**dict(classify_cfg or {}), "pretrained": False}, num_classes)
    model = build_affinity_net(classifier, ckpt["meta"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the configured classifier/affinity architecture "
                         f"({str(e).splitlines()[0]}); re-run the affinity stage") from None
    return model.to(device).eval()
