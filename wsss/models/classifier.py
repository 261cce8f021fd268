"""Multi-label classifiers that give class maps: the CAM baseline and BAS (Background Activation Suppression).

One network serves both seed sources: the classifier head (1x1 conv, no bias, on the high features) gives the
CAM; BAS adds a foreground-map generator (3x3 conv, no bias, sigmoid, on the mid features).
See docs/METHOD.md, section 1.

BAS training step (per image one random positive class p):
- background branch: the detached mid features with the foreground erased, ``mid * (1 - M_p)``, run through
  the high layers and the head with their *current* weights but no gradient into them. Done functionally
  (``torch.func.functional_call`` with detached parameters) instead of the public code's per-step deepcopy:
  same generator gradients, no copy (bench/bench_bas_step.py measures both);
- ``bas = relu(S_bg) / (relu(S_p.detach()) + 1e-8)``, replaced by 1 where ``relu(S_bg) > relu(S_p)``;
- ``area = mean(M_p)``; ``fg = CE(GAP(cam.detach() * M_p), p)`` (the head applied to the masked, detached
  high features); ``cls`` = multi-label loss on the scores.
"""
from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .backbones import build_backbone

log = logging.getLogger("wsss.models")

METHODS = ("cam", "bas")
GENERATOR_PADDING = ("zeros", "replicate", "reflect")
BG_NORM = ("batch", "shared", "running")
FG_POOL = ("mean", "masked")
DEFAULT_WEIGHTS = dict(cls=1.0, fg=0.2, bas=1.0, area=1.2)


def soft_margin_loss(scores: Tensor, labels: Tensor) -> Tensor:
    """The CAM baseline's multi-label loss."""
    return F.multilabel_soft_margin_loss(scores, labels)


def pos_neg_softmax_loss(scores: Tensor, labels: Tensor) -> Tensor:
    """BAS code's multi-label loss: per positive class, a softmax over that logit and all negative logits,
    cross-entropy towards the positive; summed over the positives and divided by the batch size (as the BAS
    code's ``cross_entropy``: each image's mean over its positives times their count, over the batch), so an
    image with three labels weighs three times one with a single label."""
    pos = labels > 0.5
    neg_lse = torch.logsumexp(scores.masked_fill(pos, float("-inf")), dim=1, keepdim=True)  # (B,1); -inf if none
    per = torch.logaddexp(scores, neg_lse) - scores  # (B,C): -log softmax of the positive among [pos, negs]
    return (per * pos).sum() / max(len(scores), 1)


CLS_LOSSES = {"soft_margin": soft_margin_loss, "pos_neg_softmax": pos_neg_softmax_loss}


def bas_loss(s_bg: Tensor, s_p: Tensor) -> Tensor:
    """Per-image background-activation ratio ``relu(S_bg) / relu(S_p)``; 1 (no gradient) where the background
    wins, compared after the relu as the BAS code does (so a negative class score with a negative background
    score gives ratio 0, not 1)."""
    bg, fg = F.relu(s_bg), F.relu(s_p.detach())
    ratio = bg / (fg + 1e-8)
    return torch.where(bg > fg, torch.ones_like(ratio), ratio)


class Classifier(nn.Module):
    """Backbone + classifier head (CAM); with ``method='bas'`` also the foreground-map generator."""

    def __init__(self, backbone: nn.Module, num_classes: int, method: str = "bas",
                 loss_weights: Mapping[str, float] | None = None, cls_loss: str | None = None,
                 detach_generator_input: bool = False, bg_branch: str = "functional",
                 generator_padding: str = "zeros", bg_norm: str = "batch", generator_bias: bool = False,
                 fg_pool: str = "mean", generator_lr_mult: float = 10.0):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"classify.method must be one of {METHODS}, got '{method}'")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (foreground classes), got {num_classes}")
        self.method = method
        self.num_classes = num_classes
        self.backbone = backbone
        self.head = nn.Conv2d(backbone.high_channels, num_classes, 1, bias=False)
        self.generator = None
        if method == "bas":
            if generator_padding not in GENERATOR_PADDING:
                raise ValueError(f"classify.generator_padding must be one of {GENERATOR_PADDING}, "
                                 f"got '{generator_padding}'")
            # bias: the BAS code has none (ResNet's layer3 is non-negative after its ReLU, so the weights can
            # shift the whole map); MobileNetV2's mid features are a linear bottleneck, signed and near zero-mean,
            # so without a bias the generator cannot lower the map as a whole and its area stays near 0.5
            self.generator = nn.Conv2d(backbone.mid_channels, num_classes, 3, padding=1, bias=generator_bias,
                                       padding_mode=generator_padding)
            if generator_bias:
                nn.init.zeros_(self.generator.bias)
        if bg_norm not in BG_NORM:
            raise ValueError(f"classify.bg_norm must be one of {BG_NORM}, got '{bg_norm}'")
        self.bg_norm = bg_norm
        if fg_pool not in FG_POOL:
            raise ValueError(f"classify.fg_pool must be one of {FG_POOL}, got '{fg_pool}'")
        # foreground guidance pooling: 'mean' = GAP(cam * M) over the whole map (the BAS code): its logits grow
        # with the map's area wherever the class map is positive, which rewards a bloated map; 'masked' =
        # sum(cam * M) / sum(M), the class evidence *inside* the map, independent of its size
        self.fg_pool = fg_pool
        self.generator_lr_mult = float(generator_lr_mult)
        self._bn_stats: dict[str, tuple[Tensor, Tensor]] = {}
        unknown = set(loss_weights or {}) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown classify.loss_weights {sorted(unknown)}; known: {sorted(DEFAULT_WEIGHTS)}")
        self.loss_weights = {**DEFAULT_WEIGHTS, **(loss_weights or {})}
        # pos_neg_softmax needs negative logits to compete with: with one foreground class it is identically zero
        cls_loss = cls_loss or ("pos_neg_softmax" if method == "bas" and num_classes > 1 else "soft_margin")
        if cls_loss not in CLS_LOSSES:
            raise ValueError(f"classify.cls_loss must be one of {list(CLS_LOSSES)}, got '{cls_loss}'")
        if cls_loss == "pos_neg_softmax" and num_classes == 1:
            raise ValueError("classify.cls_loss='pos_neg_softmax' is zero with one foreground class (a softmax of "
                             "one logit); use 'soft_margin' (the default for one class)")
        self.cls_loss = cls_loss
        self.detach_generator_input = detach_generator_input
        if bg_branch not in ("functional", "deepcopy"):
            raise ValueError(f"bg_branch must be 'functional' or 'deepcopy', got '{bg_branch}'")
        self.bg_branch = bg_branch  # 'deepcopy' only for bench/bench_bas_step.py (the public code's way)

    # ---- inference -------------------------------------------------------------------------------------
    def class_maps(self, images: Tensor) -> dict[str, Tensor]:
        """Maps at the feature stride, (B, C, h, w): 'cam' = relu(head map); 'bas' = sigmoid generator map."""
        mid = self.backbone.forward_mid(images)
        out = {"cam": F.relu(self.head(self.backbone.forward_high(mid)))}
        if self.generator is not None:
            out["bas"] = torch.sigmoid(self.generator(mid))
        return out

    def backbone_features(self, images: Tensor) -> list[Tensor]:
        """Backbone features at strides 4, 8, 16 (mid) and 16 (high)."""
        return self.backbone.features(images)

    def param_groups(self) -> list[dict[str, Any]]:
        """Backbone at the base lr, the classifier head at 10x, the generator at ``generator_lr_mult``
        (``lr_mult``, read by wsss.training)."""
        groups = [dict(params=[p for p in self.backbone.parameters() if p.requires_grad], lr_mult=1.0),
                  dict(params=list(self.head.parameters()), lr_mult=10.0)]
        if self.generator is not None:
            groups.append(dict(params=list(self.generator.parameters()), lr_mult=self.generator_lr_mult))
        return groups

    @property
    def learns_from_negatives(self) -> bool:
        """Whether an image with no foreground class (a negative) moves the loss: the per-class ``soft_margin``
        loss pushes every absent class down; ``pos_neg_softmax`` only compares an image's positives with its
        negatives, so an image without positives adds nothing."""
        return self.cls_loss == "soft_margin"

    # ---- training ---------------------------------------------------------------------------------------
    def forward(self, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Training losses: 'loss' (weighted total) and detached scalars for the log."""
        labels = labels.to(images.dtype if images.is_floating_point() else torch.float32)
        mid = self.backbone.forward_mid(images)
        capture = self.generator is not None and self.bg_norm == "shared" and self.training
        high = self._forward_high_capturing(mid) if capture else self.backbone.forward_high(mid)
        cmap = self.head(high)
        scores = cmap.mean((2, 3))
        cls = CLS_LOSSES[self.cls_loss](scores.float(), labels.float())
        out = {"cls": cls}
        with torch.no_grad():
            pos = labels > 0.5
            has_pos = pos.any(1)  # top-1 over the images with a class (negatives have no right answer)
            top1 = pos.gather(1, scores.argmax(1, keepdim=True))[has_pos].float().mean() if has_pos.any() else None
            acc = ((scores > 0) == pos).float().mean()
        if self.generator is None:
            out["loss"] = cls
        else:
            terms = self._bas_terms(mid, cmap, scores, labels)
            if terms is None:  # a batch of negatives only: the class loss alone; the generator kept in the graph
                out["loss"] = cls + 0.0 * self.generator(mid[:1]).float().sum()  # (DDP expects every parameter)
            else:  # (its terms are not logged for such a batch: the trainer averages what a step reports)
                out.update(terms)
                w = self.loss_weights
                out["loss"] = w["cls"] * cls + w["fg"] * out["fg"] + w["bas"] * out["bas"] + w["area"] * out["area"]
        out = {k: (v if k == "loss" else v.detach()) for k, v in out.items()}
        out["acc"] = acc
        if top1 is not None:  # left out of a batch of negatives only (the trainer averages what was reported)
            out["top1"] = top1
        return out

    def _bas_terms(self, mid: Tensor, cmap: Tensor, scores: Tensor, labels: Tensor) -> dict[str, Tensor] | None:
        """The generator's terms on the images with a class (a negative has no class map to erase with); None
        for a batch of negatives only."""
        has_pos = (labels > 0.5).any(1)
        if not bool(has_pos.all()):
            if not bool(has_pos.any()):
                return None
            mid, cmap, scores, labels = mid[has_pos], cmap[has_pos], scores[has_pos], labels[has_pos]
        b = torch.arange(len(labels), device=labels.device)
        p = torch.multinomial((labels > 0.5).float(), 1).squeeze(1)  # one random positive class per image
        gen_in = mid.detach() if self.detach_generator_input else mid
        m_p = torch.sigmoid(self.generator(gen_in)[b, p]).unsqueeze(1)  # (B,1,h,w)
        if m_p.shape[-2:] != cmap.shape[-2:]:
            m_p_high = F.interpolate(m_p, cmap.shape[-2:], mode="bilinear", align_corners=False)
        else:
            m_p_high = m_p
        erased = mid.detach() * (1 - m_p)
        s_bg = self.background_scores(erased)[b, p]
        s_p = scores[b, p]
        bas = bas_loss(s_bg.float(), s_p.float())
        fg_logits = (cmap.detach() * m_p_high).mean((2, 3))  # = head(GAP(high.detach() * M_p)): linear head
        if self.fg_pool == "masked":
            fg_logits = fg_logits / (m_p_high.mean((2, 3)) + 1e-5)
        fg = F.cross_entropy(fg_logits.float(), p)
        return {"bas": bas.mean(), "area": m_p.float().mean(), "fg": fg,
                "bg_wins": (F.relu(s_bg) > F.relu(s_p)).float().mean(), "s_bg": s_bg.detach().mean(),
                "s_p": s_p.detach().mean()}

    def _forward_high_capturing(self, mid: Tensor) -> Tensor:
        """``forward_high`` that also records, per BatchNorm of the high layers, the batch mean and (biased)
        variance it normalised with, for the background branch with ``bg_norm='shared'``."""
        self._bn_stats = {}
        hooks = []
        for name, mod in self.backbone.high.named_modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                def hook(m, inp, name=name):
                    x = inp[0].detach().float()
                    dims = [d for d in range(x.dim()) if d != 1]
                    self._bn_stats[name] = (x.mean(dims), x.var(dims, unbiased=False))
                hooks.append(mod.register_forward_pre_hook(hook))
        try:
            return self.backbone.forward_high(mid)
        finally:
            for h in hooks:
                h.remove()

    def background_scores(self, erased: Tensor) -> Tensor:
        """Scores (B,C) of erased mid features through the high layers + head, no gradient into their weights.

        BatchNorm of the high layers (``bg_norm``): 'batch' normalises the erased batch by its own statistics
        in training (the public code's deep copy in train mode): erasing lowers the batch mean and variance,
        so the normalisation scales what is left back up; 'shared' normalises it with the statistics of the
        un-erased forward pass of the same step, so removing features removes their activation; 'running'
        uses the running statistics (eval mode).
        """
        high_mod = self.backbone.high
        if self.bg_branch == "deepcopy":  # the public code's way, kept for the benchmark
            high_copy, head_copy = copy.deepcopy(high_mod), copy.deepcopy(self.head)
            for q in list(high_copy.parameters()) + list(head_copy.parameters()):
                q.requires_grad_(False)
            return head_copy(high_copy(erased)).mean((2, 3))
        params = {k: v.detach() for k, v in high_mod.named_parameters()}
        # BN running stats: clones, so the background batch does not move the real ones (as with the copy)
        buffers = {k: v.clone() for k, v in high_mod.named_buffers()}
        mode = self.bg_norm if high_mod.training else "running"
        if mode == "shared":
            if not self._bn_stats:
                raise RuntimeError("bg_norm='shared' needs the statistics of the forward pass (call forward())")
            for name, (mean, var) in self._bn_stats.items():
                buffers[f"{name}.running_mean"] = mean.to(buffers[f"{name}.running_mean"].dtype)
                buffers[f"{name}.running_var"] = var.to(buffers[f"{name}.running_var"].dtype)
        was_training = high_mod.training
        if mode != "batch":
            high_mod.train(False)
        try:
            feats = functional_call(high_mod, {**params, **buffers}, (erased,))
        finally:
            high_mod.train(was_training)
        return F.conv2d(feats, self.head.weight.detach()).mean((2, 3))


def build_classifier(cfg: Mapping[str, Any], num_classes: int) -> Classifier:
    """From the ``classify`` config section: backbone, pretrained, method, loss_weights, cls_loss."""
    cfg = dict(cfg or {})
    backbone = build_backbone(cfg.get("backbone", "resnet50"), cfg.get("pretrained", True))
    return Classifier(backbone, num_classes, method=cfg.get("method", "bas"),
                      loss_weights=cfg.get("loss_weights"), cls_loss=cfg.get("cls_loss"),
                      detach_generator_input=cfg.get("detach_generator_input", False),
                      bg_branch=cfg.get("bg_branch", "functional"),
                      generator_padding=cfg.get("generator_padding", "zeros"), bg_norm=cfg.get("bg_norm", "batch"),
                      generator_bias=bool(cfg.get("generator_bias", False)), fg_pool=cfg.get("fg_pool", "mean"),
                      generator_lr_mult=float(cfg.get("generator_lr_mult", 10.0)))


def classifier_meta(model: Classifier, classes: list[str] | None = None) -> dict[str, Any]:
    return dict(backbone=model.backbone.name, method=model.method, num_classes=model.num_classes,
                classes=list(classes) if classes is not None else None)


def save_classifier(path: str | os.PathLike, model: nn.Module, classes: list[str] | None = None) -> None:
    """Weights + architecture meta, atomically."""
    from pipeline.cache import atomic_path

    model = getattr(model, "module", model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": classifier_meta(model, classes)}, tmp)


def load_classifier(path: str | os.PathLike, cfg: Mapping[str, Any], num_classes: int,
                    device: str | torch.device = "cpu") -> Classifier:
    """Load a classifier saved by :func:`save_classifier`; a clear error naming the file when its backbone,
    method or class count differs from the config / dataset."""
    from pipeline.cache import load_checkpoint

    path = Path(path)
    ckpt = load_checkpoint(path, "classify", "classifier checkpoint")  # errors name the file and say to rerun classify
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt or "meta" not in ckpt:
        raise ValueError(f"{path}: not a classifier checkpoint of this pipeline (no 'state_dict'/'meta')")
    meta = ckpt["meta"]
    cfg = dict(cfg or {})
    want = dict(backbone=cfg.get("backbone", meta["backbone"]), method=cfg.get("method", meta["method"]),
                num_classes=num_classes)
    diff = [f"{k}: checkpoint {meta.get(k)!r} vs expected {v!r}" for k, v in want.items() if meta.get(k) != v]
    if diff:
        raise ValueError(f"{path}: classifier checkpoint does not match the config/dataset ({'; '.join(diff)}); "
                         "re-run the 'classify' stage or fix the config")
    model = build_classifier({**cfg, "backbone": meta["backbone"], "method": meta["method"], "pretrained": False},
                             num_classes)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the {meta['backbone']}/{meta['method']} architecture "
                         f"({str(e).splitlines()[0]})") from None
    return model.to(device).eval()
