"""BAO: a student with an explicit background channel, so label maps need no background threshold.

See docs/METHOD.md, section 3. The pieces, each a few lines:

- :func:`teacher_labels` — the first teacher labels from seed maps, without a threshold: argmax over
  ``[1 - max_c normCAM_c, normCAM_1..C]`` (the seed maps are already max-normalised per class).
- :class:`LabelConditionedHead` — the image label vector modulates the features (FiLM: per-channel scale and
  shift from a linear map of the multi-hot vector, zero-initialised so training starts from the plain
  features; the public code also conditions on the label vector) before a 3x3 conv to C+1 channels,
  channel 0 = background.
- :class:`BAOStudent` — the trained classifier's backbone and 1x1 classifier head (classification loss) plus
  that head. :class:`BAOModel` holds the student and its EMA teacher in one module, so the teacher is saved
  in and resumed from the training checkpoints with the student.
- :func:`class_balanced_ce` — cross-entropy over the background and the present classes only, with label
  smoothing spread over those channels; background pixels and foreground pixels are averaged separately and
  the two means averaged, so large background areas do not drown the objects.
- :func:`ema_update` — teacher <- m * teacher + (1 - m) * student (parameters and float buffers).
- :func:`normalized_maps` — inference maps: softmax over the valid channels, each channel
  max-normalised over the image; the label is the argmax of [background, classes], no threshold.

How the head, learning rates and schedule were found (numbers, dead ends): docs/DEVLOG.md.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wsss.models.fusion import LevelFusion

IGNORE = 255


def teacher_labels(high: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """uint8 (H, W) label map from max-normalised seed maps ``high`` (K, H, W) of the classes ``keys``.

    Background score = 1 - max_c map_c; label = argmax over [background, maps] (key + 1 for a class). A pixel
    is background where its strongest class map is at most 0.5 of that map's maximum: a fixed rule of the
    method, not a threshold tuned per dataset (ties go to background, as in ``seed_labels``).
    """
    from wsss.maps import SeedMaps, seed_labels, seeds_background

    high = np.asarray(high, np.float32)
    bg = seeds_background(high, high.shape[1:])
    return seed_labels(SeedMaps(keys=np.asarray(keys), stride4=high[:, :1, :1], high=high), 0.0, background=bg)


def valid_channels(labels: Tensor) -> Tensor:
    """(B, C+1) bool: background plus the present foreground classes of each image's multi-hot ``labels``."""
    bg = torch.ones(labels.shape[0], 1, dtype=torch.bool, device=labels.device)
    return torch.cat([bg, labels > 0.5], 1)


def class_balanced_ce(logits: Tensor, target: Tensor, valid: Tensor, smoothing: float = 0.4,
                      ignore_index: int = IGNORE) -> Tensor:
    """Class-balanced, label-smoothed cross-entropy over the valid channels.

    ``logits`` (B, K, H, W); ``target`` (B, H, W) long in [0, K) or ``ignore_index``; ``valid`` (B, K) bool.
    Per pixel: ``-sum_k q_k log p_k`` with p = softmax over the valid channels, q = (1 - s) one-hot + s / K_valid
    on the valid channels. Loss = mean of (mean over background pixels, mean over foreground pixels), or the
    one that exists.
    """
    vmask = valid[:, :, None, None]
    logp = F.log_softmax(logits.float().masked_fill(~vmask, float("-inf")), dim=1).masked_fill(~vmask, 0.0)
    keep = target != ignore_index
    tgt = torch.where(keep, target, torch.zeros_like(target)).long()
    keep = keep & valid.gather(1, tgt.flatten(1)).view_as(tgt)  # a label on an absent class is ignored
    k_valid = valid.sum(1).float()[:, None, None]  # (B,1,1)
    nll = -logp.gather(1, tgt[:, None]).squeeze(1)
    uniform = -logp.sum(1) / k_valid  # mean over valid channels of -log p
    per_pixel = (1.0 - smoothing) * nll + smoothing * uniform
    parts = []
    for sel in (keep & (tgt == 0), keep & (tgt > 0)):
        if bool(sel.any()):
            parts.append(per_pixel[sel].mean())
    if not parts:
        return logits.sum() * 0.0
    return torch.stack(parts).mean()


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher <- m * teacher + (1 - m) * student for parameters and float buffers; other buffers copied."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
    for t, s in zip(teacher.buffers(), student.buffers()):
        if t.is_floating_point():
            t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
        else:
            t.copy_(s)


def valid_softmax(logits: Tensor, valid: Tensor) -> Tensor:
    """Softmax over the valid channels of (B, K, H, W) logits; absent channels are 0."""
    vmask = valid[:, :, None, None]
    return F.softmax(logits.float().masked_fill(~vmask, float("-inf")), dim=1).masked_fill(~vmask, 0.0)


def channel_normalize(maps: Tensor) -> Tensor:
    """Each (B, K) channel divided by its spatial maximum (all-zero channels stay 0)."""
    return maps / maps.flatten(2).amax(2).clamp(min=1e-5)[:, :, None, None]


def cam_prior_logits(cam: Tensor, labels: Tensor, scale: float) -> Tensor:
    """(B, C+1, h, w) logits ``scale * [1 - max_c normCAM_c, normCAM_1..C]`` from class maps ``cam`` (B, C, h, w):
    each present class's map divided by its maximum, absent classes 0. Their argmax is the rule of the first
    teacher labels (:func:`teacher_labels`) on these maps, so a head that adds these logits starts from it."""
    cam = channel_normalize(F.relu(cam.float())) * (labels > 0.5).float()[:, :, None, None]
    return scale * torch.cat([1.0 - cam.amax(1, keepdim=True), cam], 1)


def normalized_maps(logits: Tensor, valid: Tensor) -> Tensor:
    """(B, K, H, W) maps in [0, 1]: softmax over the valid channels, each channel max-normalised; absent = 0."""
    return channel_normalize(valid_softmax(logits, valid))


class LabelConditionedHead(nn.Module):
    """features (B, D, h, w) + multi-hot labels (B, C) -> logits (B, C+1, h, w), channel 0 = background."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 256):
        super().__init__()
        # conv-BN: without the BN the hidden features of MobileNetV2's 1280-d output have rms ~2.4 and the first
        # SGD steps of the 3x3 output conv (fan-in 9 x hidden) blow the logits up (seg loss 1.0 -> 42 in two steps
        # at the demo lr), and the gradient through the backbone wrecks the classifier (cls 0.09 -> 0.5)
        self.proj = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.film = nn.Linear(num_classes, 2 * hidden)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.out = nn.Conv2d(hidden, num_classes + 1, 3, padding=1)
        nn.init.kaiming_normal_(self.proj.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.zeros_(self.out.bias)

    def forward(self, feats: Tensor, labels: Tensor) -> Tensor:
        h = F.relu(self.bn(self.proj(feats)))
        gamma, beta = self.film(labels.to(h.dtype)).chunk(2, dim=1)
        h = F.relu(h * (1 + gamma[:, :, None, None]) + beta[:, :, None, None])
        return self.out(h)


class MultiLevelHead(nn.Module):
    """Frozen backbone levels -> logits on the first level's grid: the levels fused as the affinity net fuses them
    (:class:`wsss.models.fusion.LevelFusion`), then the :class:`LabelConditionedHead`. With MobileNetV2's levels
    (0, 1, 2, 3) the background is learned at stride 4, from the edges and colours the stride-16 map has lost."""

    def __init__(self, channels: Sequence[int], dims: Sequence[int], num_classes: int, hidden: int = 256):
        super().__init__()
        self.fuse = LevelFusion(channels, dims)
        for m in self.fuse.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
        self.head = LabelConditionedHead(self.fuse.out_channels, num_classes, hidden)

    def forward(self, feats: Sequence[Tensor], labels: Tensor) -> Tensor:
        return self.head(self.fuse(feats, feats[0].shape[-2:]), labels)


FREEZE_MODES = ("none", "mid", "all")


def freeze_mode(value: bool | str | None) -> str:
    """``bao.freeze_backbone`` as one of FREEZE_MODES: False/None -> 'none', True -> 'all', or the name itself."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "all"
    if value in FREEZE_MODES:
        return str(value)
    raise ValueError(f"bao.freeze_backbone must be False, True, 'mid' or 'all', got {value!r}")


class BAOStudent(nn.Module):
    """The classifier's backbone + 1x1 classifier head, plus the label-conditioned background head.

    ``frozen_backbone`` (see :func:`freeze_mode`): what keeps the classifier's weights (no gradient, BN in eval
    mode). 'none': everything learns (BAO's recipe). 'mid': the backbone up to its stride-16 mid level (stem to
    MobileNetV2's block 13 / ResNet's layer3) is frozen, its last stage, the classifier head and the new head
    learn. 'all': only the new head learns. With a frozen part the input may be the frozen part's cached output
    (a list of maps, :class:`wsss.feature_cache.FeatureCache`) instead of images.

    ``head_levels`` (needs 'all'): the new head reads these backbone levels (0-2: strides 4, 8, 16 mid; 3: the
    high map) through a :class:`MultiLevelHead` with ``head_dims`` channels each, instead of the high map alone;
    the frozen classifier head's scores (a loss without gradient then) are left out. ``cam_prior`` (> 0, needs
    level 3 among them): the head's logits are added to ``cam_prior`` x the frozen classifier's CAM logits
    (:func:`cam_prior_logits`, upsampled), so it starts from the first teacher labels' rule and learns a correction
    of it instead of the whole map. Each class map is divided by its maximum over the input: with cached features
    (the whole image in the crop) that is the image's; on random crops (no cache; not measured) a crop that cut an
    object away would raise that class's weak response to full strength.
    """

    def __init__(self, backbone: nn.Module, cls_head: nn.Module, num_classes: int, hidden: int = 256,
                 frozen_backbone: bool | str = False, head_levels: Sequence[int] | None = None,
                 head_dims: Sequence[int] | None = None, cam_prior: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.cls_head = cls_head
        self.num_classes = num_classes
        self.freeze = freeze_mode(frozen_backbone)
        self.head_levels = [int(i) for i in head_levels] if head_levels else None
        if self.head_levels is None:
            self.head = LabelConditionedHead(backbone.high_channels, num_classes, hidden)
        else:
            if self.freeze != "all":
                raise ValueError("bao.head_levels needs bao.freeze_backbone=True (the levels come from the frozen "
                                 f"backbone), got freeze_backbone={frozen_backbone!r}")
            channels = backbone.stage_channels + [backbone.high_channels]
            if any(not 0 <= i < len(channels) for i in self.head_levels):
                raise ValueError(f"bao.head_levels must be among {list(range(len(channels)))} (strides 4, 8, 16, "
                                 f"16 high), got {self.head_levels}")
            dims = list(head_dims) if head_dims else [64] * len(self.head_levels)
            self.head = MultiLevelHead([channels[i] for i in self.head_levels], dims, num_classes, hidden)
        self.cam_prior = float(cam_prior or 0.0)
        if self.cam_prior < 0 or (self.cam_prior > 0 and (self.head_levels is None or 3 not in self.head_levels)):
            raise ValueError("bao.cam_prior must be >= 0 and needs bao.head_levels with level 3 (the high map the "
                             f"classifier's CAM is read from), got cam_prior={cam_prior!r}, "
                             f"head_levels={head_levels!r}")
        for m in self._frozen_modules():
            for p in m.parameters():
                p.requires_grad_(False)
            m.eval()

    @property
    def frozen_backbone(self) -> bool:
        return self.freeze != "none"

    def _frozen_modules(self) -> list[nn.Module]:
        if self.freeze == "mid":
            return [self.backbone.stages]
        return [self.backbone, self.cls_head] if self.freeze == "all" else []

    def learning_modules(self) -> list[nn.Module]:
        """The parts that learn (the optimizer's and the EMA teacher's), the new head last."""
        if self.freeze == "mid":
            return [self.backbone.high, self.cls_head, self.head]
        return [self.head] if self.freeze == "all" else [self.backbone, self.cls_head, self.head]

    @classmethod
    def from_classifier(cls, classifier: nn.Module, hidden: int = 256, frozen_backbone: bool | str = False,
                        head_levels: Sequence[int] | None = None, head_dims: Sequence[int] | None = None,
                        cam_prior: float = 0.0) -> BAOStudent:
        return cls(copy.deepcopy(classifier.backbone), copy.deepcopy(classifier.head), classifier.num_classes, hidden,
                   frozen_backbone, head_levels, head_dims, cam_prior)

    def train(self, mode: bool = True) -> BAOStudent:
        super().train(mode)
        for m in self._frozen_modules():  # BN statistics stay the classifier's
            m.eval()
        return self

    def features(self, images: Tensor) -> list[Tensor]:
        """[the output of the frozen part] of images (what a feature cache stores): the mid map ('mid') or the
        stride-16 high map ('all'), or the ``head_levels``; with nothing frozen, the high map with its gradient."""
        if self.freeze == "none":
            return [self.backbone(images)]
        with torch.no_grad():
            if self.head_levels is not None:
                levels = self.backbone.features(images)
                return [levels[i] for i in self.head_levels]
            return [self.backbone.forward_mid(images) if self.freeze == "mid" else self.backbone(images)]

    def forward(self, images: Tensor | Sequence[Tensor], labels: Tensor) -> tuple[Tensor, Tensor | None]:
        """(logits (B, C+1, h, w) at the feature stride, class scores (B, C), None with ``head_levels``) of images
        (B, 3, H, W), or of their cached features (a list, frozen part only)."""
        if isinstance(images, Tensor):
            levels = self.features(images)
        elif self.frozen_backbone:
            levels = list(images)
        else:
            raise ValueError("BAOStudent: cached features need a frozen backbone (bao.freeze_backbone)")
        if self.head_levels is not None:
            logits = self.head(levels, labels)
            if self.cam_prior > 0:
                with torch.no_grad():
                    high = levels[self.head_levels.index(3)]
                    cam = self.cls_head(high.to(next(self.cls_head.parameters()).dtype))
                    prior = F.interpolate(cam_prior_logits(cam, labels, self.cam_prior), logits.shape[-2:],
                                          mode="bilinear", align_corners=False)
                logits = logits + prior.to(logits.dtype)
            return logits, None
        feats = levels[0]
        high = self.backbone.forward_high(feats) if self.freeze == "mid" else feats
        scores = self.cls_head(high).mean((2, 3))
        return self.head(high, labels), scores

    def param_groups(self) -> list[dict]:
        """The learning part of the backbone and the (trained) classifier head at the base lr, the new head at
        10x (``lr_mult``)."""
        *base, head = self.learning_modules()
        groups = [dict(params=[p for m in base for p in m.parameters()], lr_mult=1.0)] if base else []
        return groups + [dict(params=list(head.parameters()), lr_mult=10.0)]


class BAOModel(nn.Module):
    """Student + EMA teacher in one module (one checkpoint); ``forward`` returns the training losses.

    Teacher labels: the first seeds' labels (``seed_targets``) while ``use_teacher`` is False; afterwards the
    EMA teacher's own single-scale prediction on the same augmented batch (argmax over the background and the
    present classes, no threshold), computed without gradient. Pixels ignored in ``seed_targets`` (crop
    padding) stay ignored. The per-channel normalisation of inference is left out here: on a crop that cut an
    object away it would promote that class's weak response to a full-strength label.
    """

    def __init__(self, student: BAOStudent, ema_momentum: float = 0.999, smoothing: float = 0.4,
                 cls_weight: float = 1.0, seg_weight: float = 1.0):
        super().__init__()
        if not 0.0 <= ema_momentum < 1.0:
            raise ValueError(f"bao.ema_momentum must be in [0, 1), got {ema_momentum}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"bao.label_smoothing must be in [0, 1), got {smoothing}")
        self.student = student
        self.teacher = copy.deepcopy(student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.ema_momentum = ema_momentum
        self.smoothing = smoothing
        self.cls_weight = cls_weight
        self.seg_weight = seg_weight

    def param_groups(self) -> list[dict]:
        return self.student.param_groups()

    def _ema(self, momentum: float) -> None:
        """The EMA step on the parts that learn (a frozen part is the same in both)."""
        for t, s in zip(self.teacher.learning_modules(), self.student.learning_modules()):
            ema_update(t, s, momentum)

    def update_teacher(self) -> None:
        self._ema(self.ema_momentum)

    def sync_teacher(self) -> None:
        """teacher <- student (the EMA with momentum 0), while the seeds still provide the labels."""
        self._ema(0.0)

    @torch.no_grad()
    def teacher_targets(self, images: Tensor | Sequence[Tensor], labels: Tensor, seed_targets: Tensor) -> Tensor:
        was = self.teacher.training
        self.teacher.eval()
        logits, _ = self.teacher(images, labels)
        self.teacher.train(was)
        logits = F.interpolate(logits.float(), seed_targets.shape[-2:], mode="bilinear", align_corners=False)
        vmask = valid_channels(labels)[:, :, None, None]
        # max's indices are argmax's (the first maximum on ties); argmax over the channels of an NCHW batch is
        # ~10x slower on CPU (40 ms of a 16-image step at 128 px)
        target = logits.masked_fill(~vmask, float("-inf")).max(1).indices
        return torch.where(seed_targets == IGNORE, seed_targets, target)

    def forward(self, images: Tensor | Sequence[Tensor], labels: Tensor, seed_targets: Tensor,
                use_teacher: bool = False) -> dict:
        """Losses on a batch of images (or of their cached features, frozen backbone)."""
        labels = labels.float()
        if isinstance(images, Tensor) and self.student.frozen_backbone and use_teacher:
            images = self.student.features(images)  # the frozen part is the teacher's too: run it once for both
        target = self.teacher_targets(images, labels, seed_targets) if use_teacher else seed_targets
        logits, scores = self.student(images, labels)
        logits = F.interpolate(logits.float(), target.shape[-2:], mode="bilinear", align_corners=False)
        seg = class_balanced_ce(logits, target.long(), valid_channels(labels), self.smoothing)
        cls = F.multilabel_soft_margin_loss(scores.float(), labels) if scores is not None else seg.new_zeros(())
        with torch.no_grad():
            keep = target != IGNORE
            fg_share = ((target > 0) & keep).sum() / keep.sum().clamp(min=1)
        return {"loss": self.cls_weight * cls + self.seg_weight * seg, "cls": cls.detach(), "seg": seg.detach(),
                "fg_share": fg_share.float()}


@torch.no_grad()
def predict_maps(student: BAOStudent, image: Tensor, labels: Tensor, scales: Sequence[float] = (1.0,),
                 flip: bool = True) -> Tensor:
    """Multi-scale (+ flip) normalised maps (C+1, H, W) for one normalised image (3, H, W): per scale the
    softmax over background + present classes, upsampled to full size and summed; then each channel
    max-normalised. Absent classes are 0. The label map is its argmax: no threshold."""
    h, w = image.shape[-2:]
    labels = labels.float()[None]
    valid = valid_channels(labels)
    total = torch.zeros(1, labels.shape[1] + 1, h, w, device=image.device)
    for s in scales:
        x = image[None]
        if s != 1.0:
            x = F.interpolate(x, (max(1, round(h * s)), max(1, round(w * s))), mode="bilinear", align_corners=False)
        batch = torch.cat([x, x.flip(-1)]) if flip else x
        logits, _ = student(batch, labels.expand(len(batch), -1))
        prob = F.interpolate(valid_softmax(logits, valid.expand(len(batch), -1)), (h, w), mode="bilinear",
                             align_corners=False)
        total += prob[:1] + (prob[1:].flip(-1) if flip else 0)
    return channel_normalize(total)[0]
