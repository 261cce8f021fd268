"""BAO pieces against hand computations: teacher labels, class-balanced CE, EMA, normalised maps."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import wsss  # noqa: F401  (stack fixes)
from wsss.models.bao import (
    BAOModel,
    BAOStudent,
    cam_prior_logits,
    class_balanced_ce,
    ema_update,
    freeze_mode,
    normalized_maps,
    predict_maps,
    teacher_labels,
    valid_channels,
)
from wsss.train_data import joint_train_transform

torch.set_num_threads(1)


def test_teacher_labels_without_threshold():
    high = np.array([[[0.9, 0.4, 0.6]], [[0.2, 0.3, 0.7]]], np.float32)  # classes 0 and 3, 1x3 image
    # background = 1 - max = [0.1, 0.6, 0.3] -> class 0 (label 1), background, class 3 (label 4)
    assert teacher_labels(high, np.array([0, 3])).tolist() == [[1, 0, 4]]


def _lse(*xs: float) -> float:
    return math.log(sum(math.exp(x) for x in xs))


def test_class_balanced_ce_matches_hand_computation():
    # channels: background, class 1 (present), class 2 (absent -> excluded from softmax and smoothing)
    logits = torch.tensor([[2.0, 0.0, 1.0, 3.0, 0.5], [0.0, 1.0, 1.0, 0.0, 0.0], [5.0, -3.0, 0.0, 9.0, 9.0]])
    logits = logits[None, :, None, :]  # (1, 3, 1, 5)
    target = torch.tensor([[[0, 1, 0, 255, 2]]])  # pixel 3 ignored, pixel 4 labelled with an absent class
    valid = torch.tensor([[True, True, False]])
    s = 0.4

    def pix(bg: float, c1: float, t: int) -> float:
        lse = _lse(bg, c1)
        logp = [bg - lse, c1 - lse]
        q = [s / 2, s / 2]
        q[t] += 1 - s
        return -(q[0] * logp[0] + q[1] * logp[1])

    l0, l1, l2 = pix(2.0, 0.0, 0), pix(0.0, 1.0, 1), pix(1.0, 1.0, 0)
    want = ((l0 + l2) / 2 + l1) / 2  # background mean and foreground mean, averaged
    got = class_balanced_ce(logits, target, valid, smoothing=s)
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert got.item() != pytest.approx((l0 + l1 + l2) / 3, rel=1e-3)  # not the plain pixel mean
    # without smoothing: plain NLL
    got0 = class_balanced_ce(logits, target, valid, smoothing=0.0).item()
    assert got0 == pytest.approx((((_lse(2, 0) - 2) + (_lse(1, 1) - 1)) / 2 + (_lse(0, 1) - 1)) / 2, rel=1e-6)
    # gradients never reach the absent channel
    logits.requires_grad_(True)
    class_balanced_ce(logits, target, valid, smoothing=s).backward()
    assert logits.grad[0, 2].abs().sum() == 0 and logits.grad[0, 0].abs().sum() > 0


def test_class_balanced_ce_only_background():
    logits = torch.zeros(1, 2, 2, 2)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    # two valid channels, equal logits: -log(1/2) whatever the smoothing
    assert class_balanced_ce(logits, target, torch.tensor([[True, True]])).item() == pytest.approx(math.log(2))


def test_ema_update_math():
    torch.manual_seed(0)
    s = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    t = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    t0 = [p.detach().clone() for p in t.parameters()]
    s[1].running_mean.fill_(4.0)
    s[1].num_batches_tracked.fill_(7)
    ema_update(t, s, 0.9)
    for a0, a, b in zip(t0, t.parameters(), s.parameters()):
        torch.testing.assert_close(a, 0.9 * a0 + 0.1 * b)
    torch.testing.assert_close(t[1].running_mean, torch.full((2,), 0.4))  # 0.9 * 0 + 0.1 * 4
    assert int(t[1].num_batches_tracked) == 7


def test_normalized_maps_per_channel_and_absent_zero():
    logits = torch.tensor([[[[0.0, 2.0]], [[1.0, 0.0]], [[7.0, 7.0]]]])  # (1, 3, 1, 2)
    m = normalized_maps(logits, valid_channels(torch.tensor([[1.0, 0.0]])))
    p_bg = torch.tensor([1 / (1 + math.e), math.e**2 / (math.e**2 + 1)])
    torch.testing.assert_close(m[0, 0, 0], p_bg / p_bg.max())
    assert m[0, 1].max().item() == pytest.approx(1.0) and m[0, 2].abs().sum() == 0


def test_joint_transform_keeps_image_and_label_aligned():
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, 15:] = 255
    lab = np.zeros((20, 30), np.uint8)
    lab[:, 15:] = 1
    for k in range(5):
        x, y = joint_train_transform(img, lab, np.random.default_rng(k), resize=30, scale_range=(0.9, 1.1), crop=24)
        assert x.shape == (3, 24, 24) and y.shape == (24, 24)
        valid = y != 255
        bright = x[0] > 0.5
        assert (bright[valid] == (y[valid] == 1)).mean() > 0.9  # label follows the image (flip, crop, resize)
        assert (x[:, ~valid] == 0).all()  # padding: image zero, label ignore


class _TinyBackbone(nn.Module):
    high_channels = 4

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


class _TwoPartBackbone(nn.Module):
    """A backbone cut at its mid level like wsss.models.backbones.Backbone: ``stages`` then ``high``."""
    high_channels = 4

    def __init__(self):
        super().__init__()
        self.stages = nn.ModuleList([nn.Sequential(nn.Conv2d(3, 4, 3, stride=4, padding=1), nn.BatchNorm2d(4))])
        self.high = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())

    def forward_mid(self, x):
        return self.stages[0](x)

    def forward_high(self, mid):
        return self.high(mid)

    def forward(self, x):
        return self.forward_high(self.forward_mid(x))


def test_bao_model_losses_and_teacher_targets():
    torch.manual_seed(0)
    student = BAOStudent(_TinyBackbone(), nn.Conv2d(4, 2, 1, bias=False), num_classes=2, hidden=8)
    model = BAOModel(student, ema_momentum=0.5)
    images = torch.randn(2, 3, 16, 16)
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    seed_t = torch.zeros(2, 16, 16, dtype=torch.long)
    seed_t[:, 4:8] = 1
    seed_t[:, :, :2] = 255
    out = model(images, labels, seed_t)
    assert set(out) >= {"loss", "cls", "seg"} and out["loss"].requires_grad
    out["loss"].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    tt = model.teacher_targets(images, labels, seed_t)
    with torch.no_grad():  # the definition: argmax over the teacher's present channels (max's indices are used)
        logits = F.interpolate(model.teacher.eval()(images, labels)[0], (16, 16), mode="bilinear", align_corners=False)
        want = logits.masked_fill(~valid_channels(labels)[:, :, None, None], float("-inf")).argmax(1)
    model.teacher.train()
    assert torch.equal(tt, torch.where(seed_t == 255, seed_t, want))
    assert (tt[:, :, :2] == 255).all()  # crop padding stays ignored
    assert set(tt[0].unique().tolist()) <= {0, 1, 255}  # image 0 has only class 1 present: never label 2
    before = [p.clone() for p in model.teacher.parameters()]
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(1.0)
    model.update_teacher()
    for b, t, s in zip(before, model.teacher.parameters(), model.student.parameters()):
        torch.testing.assert_close(t, 0.5 * b + 0.5 * s)
    maps = predict_maps(model.student.eval(), images[0], labels[0], scales=(1.0, 0.5), flip=True)
    assert maps.shape == (3, 16, 16)
    assert maps[2].abs().sum() == 0 and maps[:2].flatten(1).amax(1).tolist() == pytest.approx([1.0, 1.0])


# ---- the bao stage on a tiny synthetic work dir ---------------------------------------------------------------
CLASSES = ["background", "cat", "dog"]
SQUARES = {"a": (0, (4, 4)), "b": (1, (12, 8)), "c": (0, (10, 14)), "d": (1, (2, 16))}  # class, top-left


def make_workdir(tmp):
    import logging

    from mmengine.config import Config
    from PIL import Image

    from pipeline.stage import StageContext
    from wsss.maps import save_label_png, save_seeds
    from wsss.models.classifier import build_classifier, save_classifier

    root, work = tmp / "data", tmp / "work"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(SQUARES) + "\n")
    rng = np.random.default_rng(0)
    for id_, (c, (y, x)) in SQUARES.items():
        img = rng.integers(0, 60, (32, 32, 3)).astype(np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        mask[y:y + 14, x:x + 14] = c + 1
        img[mask > 0] = (220, 40, 40) if c == 0 else (40, 220, 40)
        Image.fromarray(img).save(root / "JPEGImages" / f"{id_}.jpg", quality=95)
        save_label_png(root / "SegmentationClass" / f"{id_}.png", mask)
        high = np.where(mask > 0, 0.9, 0.1).astype(np.float32)[None]
        save_seeds(work / "seeds/maps" / f"{id_}.npz", [c], high[:, ::4, ::4], high)
    torch.manual_seed(0)
    ccfg = dict(backbone="resnet18", method="cam", pretrained=False)
    save_classifier(work / "classify/model.pth", build_classifier(ccfg, 2), CLASSES)
    cfg = Config(dict(
        dataset=dict(type="custom", root=str(root), cache_dir=str(tmp / "cache")),
        classify=ccfg, seeds=dict(scales=(1.0, 0.5)),
        bao=dict(enabled=True, epochs=2, batch_size=2, lr=0.01, resize=32, crop_size=32, teacher_from_epoch=1,
                 ema_momentum=0.5, hidden=16),
        eval_seeds=dict(threshold_range=(0.05, 0.6, 0.05)),
        runtime=dict(device="cpu", workers=1, amp=False, seed=0)))
    return lambda name: StageContext(name=name, cfg=cfg, work_dir=work, log=logging.getLogger("test"))


def test_bao_stage_writes_threshold_free_labels_and_resumes(tmp_path):
    from stages import bao, eval_seeds
    from wsss.datasets import read_label_png

    ctx = make_workdir(tmp_path)
    assert not any("thres" in k for k in ctx("bao").stage_cfg)  # nothing to tune
    res = bao.run(ctx("bao"))
    out = ctx("bao").out_dir
    assert res["num_images"] == 4 and res["computed"] == 4 and res["iterations"] == 4
    assert res["inference"]["scales"] == [1.0, 0.5]
    assert [h["epoch"] for h in res["history"]] == [1, 2]
    first = {}
    for id_, (c, _) in SQUARES.items():
        lab = read_label_png(out / "labels" / f"{id_}.png")
        assert lab.shape == (32, 32) and set(np.unique(lab).tolist()) <= {0, c + 1}
        with np.load(out / "bg" / f"{id_}.npz") as z:
            bg = z["bg"]
        assert bg.dtype == np.float16 and bg.shape == (32, 32) and 0 <= bg.min() and bg.max() <= 1.0
        first[id_] = lab
    assert (out / "model.pth").is_file() and (out / "checkpoints/latest.pth").is_file()
    # resume: a missing output is recomputed, identical; training is not redone
    (out / "labels/b.png").unlink()
    res2 = bao.run(ctx("bao"))
    assert res2["computed"] == 1 and res2["iterations"] == 4
    np.testing.assert_array_equal(read_label_png(out / "labels/b.png"), first["b"])
    # eval_seeds reads the bao labels and reports them beside the threshold sweep
    ev = eval_seeds.run(ctx("eval_seeds"))
    assert ev["bao_miou"] is not None and 0 <= ev["bao_miou"] <= 100
    assert ev["best_miou"] == pytest.approx(100.0)  # seeds are the squares: any threshold in [0.1, 0.9) is exact


def test_bao_stage_labels_long_images_at_the_seeds_bound(tmp_path, monkeypatch):
    """seeds.max_image_side applies to BAO's labelling too: 32 px images with a bound of 16 are labelled at the
    scales x 0.5, and the label and background maps are still full size."""
    import wsss.models.bao as bao_model
    from stages import bao

    seen = []

    def spy(net, x, lab, scales, flip):
        seen.append(tuple(scales))
        return predict_maps(net, x, lab, scales, flip)

    monkeypatch.setattr(bao_model, "predict_maps", spy)
    ctx = make_workdir(tmp_path)
    ctx("bao").cfg.seeds.max_image_side = 16
    res = bao.run(ctx("bao"))
    assert res["inference"]["max_image_side"] == 16 and seen == [(0.5, 0.25)] * 4
    for id_ in SQUARES:
        with np.load(ctx("bao").out_dir / "bg" / f"{id_}.npz") as z:
            assert z["bg"].shape == (32, 32)


def test_bao_stage_bad_seeds(tmp_path):
    from stages import bao
    from wsss.maps import save_seeds

    ctx = make_workdir(tmp_path)
    maps = ctx("bao").input_dir("seeds") / "maps"
    (maps / "c.npz").unlink()
    (maps / "d.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"2 of 4 seed files missing.*\['c', 'd'\]"):
        bao.run(ctx("bao"))
    for i in ("c", "d"):
        save_seeds(maps / f"{i}.npz", [7], np.zeros((1, 8, 8)), np.zeros((1, 32, 32)))
    with pytest.raises(ValueError, match=r"c.npz: seed keys \[7\].*different class list"):
        bao.run(ctx("bao"))


class _LoudBackbone(nn.Module):
    """Fixed, wide, large-magnitude features (like MobileNetV2's 1280-d ReLU6 output): the case that diverged."""
    high_channels = 256

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 256, 3, stride=4, padding=1)
        nn.init.normal_(self.conv.weight, std=1.0)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        return torch.relu(self.conv(x)).clamp(max=6.0)


def test_head_is_stable_at_a_large_learning_rate():
    # Regression: without normalisation in the head, the first SGD steps of the 3x3 output conv (fan-in 9 x hidden)
    # on large features blew the logits up (demo: seg loss 1.0 -> 42 after two steps) and wrecked the backbone.
    torch.manual_seed(0)
    student = BAOStudent(_LoudBackbone(), nn.Conv2d(256, 2, 1, bias=False), num_classes=2, hidden=64)
    model = BAOModel(student, smoothing=0.0)
    images = torch.randn(4, 3, 32, 32)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    target = torch.zeros(4, 32, 32, dtype=torch.long)
    target[:, 8:24, 8:24] = 1
    target[1, 8:24, 8:24] = 2
    target[2, 8:24, 8:16] = 2
    groups = [dict(g, lr=0.1 * g["lr_mult"] / 10) for g in model.param_groups()]  # new head at 0.1
    opt = torch.optim.SGD([g for g in groups if g["params"]], lr=0.01, momentum=0.9)
    losses = []
    for _ in range(6):
        out = model(images, labels, target)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["seg"].item())
    assert max(losses) < 2.0 * losses[0], losses  # the unnormalised head reached > 10x its first loss here
    assert losses[-1] < losses[0], losses


def test_param_groups_new_head_only_at_10x():
    student = BAOStudent(_TinyBackbone(), nn.Conv2d(4, 2, 1, bias=False), num_classes=2, hidden=8)
    slow, fast = student.param_groups()
    assert slow["lr_mult"] == 1.0 and fast["lr_mult"] == 10.0
    assert {id(p) for p in fast["params"]} == {id(p) for p in student.head.parameters()}
    assert {id(p) for p in student.cls_head.parameters()} <= {id(p) for p in slow["params"]}  # trained: not new


def test_training_scale_follows_the_classifier():
    from stages.bao import classifier_scale

    ccfg = dict(resize=144, scale_range=(0.8, 1.2), crop_size=128)
    assert classifier_scale(dict(resize=None, resize_range=None, crop_size=None), ccfg) == (144, (0.8, 1.2), 128)
    assert classifier_scale(dict(resize=300, resize_range=(0.5, 1.5), crop_size=96), ccfg) == (300, (0.5, 1.5), 96)


def test_frozen_student_trains_the_head_only_and_cached_features_give_the_same_loss():
    from wsss.feature_cache import FeatureCache

    torch.manual_seed(0)
    backbone, cls_head = _TinyBackbone(), nn.Conv2d(4, 2, 1, bias=False)
    model = BAOModel(BAOStudent(backbone, cls_head, num_classes=2, hidden=8, frozen_backbone=True), ema_momentum=0.5)
    model.train()
    assert not model.student.backbone.training and not model.student.cls_head.training  # BN stays the classifier's
    (group,) = model.param_groups()
    assert group["lr_mult"] == 10.0
    assert {id(p) for p in group["params"]} == {id(p) for p in model.student.head.parameters()}
    frozen_before = [p.clone() for p in model.student.backbone.parameters()]
    teacher_backbone = [p.clone() for p in model.teacher.backbone.parameters()]
    images = torch.randn(3, 3, 16, 16)
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    target = torch.zeros(3, 16, 16, dtype=torch.long)
    target[:, 4:10, 4:10] = 1
    opt = torch.optim.SGD([p for g in model.param_groups() for p in g["params"]], lr=0.1)
    out = model(images, labels, target)
    out["loss"].backward()
    assert all(p.grad is None for p in model.student.backbone.parameters())
    opt.step()
    for b, p in zip(frozen_before, model.student.backbone.parameters()):
        assert torch.equal(b, p)
    # the EMA follows the head; the teacher's frozen backbone is left bit-identical
    head_before = [p.clone() for p in model.teacher.head.parameters()]
    model.update_teacher()
    for b, t, s in zip(head_before, model.teacher.head.parameters(), model.student.head.parameters()):
        torch.testing.assert_close(t, 0.5 * b + 0.5 * s)
    for b, t in zip(teacher_backbone, model.teacher.backbone.parameters()):
        assert torch.equal(b, t)

    class _Items(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"image": images[i], "labels": labels[i], "target": target[i]}

    cache = FeatureCache(model.student.features, _Items(), flip=True, seed=0, flip_keys=("target",))
    plain, mirror = cache.items[1]
    assert torch.equal(mirror["target"], target[1].flip(-1)) and torch.equal(mirror["labels"], labels[1])
    cache.set_epoch(5)
    assert cache.epoch == 5  # the bao stage's step reads the served epoch here for the teacher schedule
    batch = torch.utils.data.default_collate([cache.items[i][0] for i in range(3)])
    on_feats = model(batch["feats"], batch["labels"], batch["target"], use_teacher=True)
    on_images = model(images, labels, target, use_teacher=True)
    assert on_feats["loss"].item() == pytest.approx(on_images["loss"].item(), rel=1e-5)
    with pytest.raises(ValueError, match="freeze_backbone"):
        BAOStudent(_TinyBackbone(), nn.Conv2d(4, 2, 1), num_classes=2, hidden=8)(batch["feats"], labels)


def test_mid_frozen_student_trains_the_last_stage_and_heads_and_cached_mid_features_give_the_same_loss():
    from wsss.feature_cache import FeatureCache

    torch.manual_seed(0)
    student = BAOStudent(_TwoPartBackbone(), nn.Conv2d(4, 2, 1, bias=False), num_classes=2, hidden=8,
                         frozen_backbone="mid")
    model = BAOModel(student, ema_momentum=0.5).train()
    assert not student.backbone.stages.training and student.backbone.high.training  # frozen BN keeps its stats
    slow, fast = model.param_groups()
    assert (slow["lr_mult"], fast["lr_mult"]) == (1.0, 10.0)
    want = list(student.backbone.high.parameters()) + list(student.cls_head.parameters())
    assert [id(p) for p in slow["params"]] == [id(p) for p in want]
    images = torch.randn(3, 3, 16, 16)
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    target = torch.zeros(3, 16, 16, dtype=torch.long)
    target[:, 4:10, 4:10] = 1
    mid_before = [p.clone() for p in student.backbone.stages.parameters()]
    high_before = [p.clone() for p in student.backbone.high.parameters()]
    opt = torch.optim.SGD([p for g in model.param_groups() for p in g["params"]], lr=0.1)
    model(images, labels, target)["loss"].backward()
    assert all(p.grad is None for p in student.backbone.stages.parameters())
    opt.step()
    assert all(torch.equal(b, p) for b, p in zip(mid_before, student.backbone.stages.parameters()))
    assert not all(torch.equal(b, p) for b, p in zip(high_before, student.backbone.high.parameters()))
    # the EMA follows the last stage and the heads; the teacher's frozen stages stay bit-identical
    teacher_high = [p.clone() for p in model.teacher.backbone.high.parameters()]
    teacher_mid = [p.clone() for p in model.teacher.backbone.stages.parameters()]
    model.update_teacher()
    for b, t, s in zip(teacher_high, model.teacher.backbone.high.parameters(), student.backbone.high.parameters()):
        torch.testing.assert_close(t, 0.5 * b + 0.5 * s)
    assert all(torch.equal(b, t) for b, t in zip(teacher_mid, model.teacher.backbone.stages.parameters()))

    class _Items(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"image": images[i], "labels": labels[i], "target": target[i]}

    cache = FeatureCache(student.features, _Items(), flip=True, seed=0, flip_keys=("target",))
    assert cache.items[0][0]["feats"][0].shape == (4, 4, 4)  # the mid map is what is cached
    batch = torch.utils.data.default_collate([cache.items[i][0] for i in range(3)])
    model.eval()  # BN of the learning stage in eval mode: the same numbers from images and from cached features
    on_feats = model(batch["feats"], batch["labels"], batch["target"], use_teacher=True)
    on_images = model(images, labels, target, use_teacher=True)
    assert on_feats["loss"].item() == pytest.approx(on_images["loss"].item(), rel=1e-5)

    # with the teacher's labels, one frozen pass per step serves the teacher and the student, with the same loss
    model.train()
    calls = []
    for net in (student, model.teacher):
        real = net.backbone.forward_mid
        net.backbone.forward_mid = lambda x, real=real: calls.append(1) or real(x)
    with torch.no_grad():
        want = model(images, labels, model.teacher_targets(images, labels, target))["loss"]
        assert len(calls) == 2
        got = model(images, labels, target, use_teacher=True)["loss"]
    assert len(calls) == 3 and torch.equal(got, want)


def test_freeze_mode_names():
    assert [freeze_mode(v) for v in (False, None, True, "mid", "all", "none")] == \
        ["none", "none", "all", "mid", "all", "none"]
    with pytest.raises(ValueError, match="bao.freeze_backbone must be"):
        freeze_mode("layer3")


@pytest.mark.parametrize("freeze,cache", [(True, False), (True, True), ("mid", False), ("mid", True)])
def test_bao_stage_frozen_backbone(tmp_path, freeze, cache):
    from stages import bao
    from wsss.models.classifier import load_classifier

    ctx = make_workdir(tmp_path)
    ctx("bao").cfg.bao.update(freeze_backbone=freeze, cache_features=cache)
    res = bao.run(ctx("bao"))
    assert res["frozen_backbone"] == freeze_mode(freeze) and res["cached_features"] == cache
    assert res["iterations"] == 4
    assert len(list((ctx("bao").out_dir / "labels").glob("*.png"))) == 4
    state = torch.load(ctx("bao").out_dir / "model.pth")["state_dict"]
    classifier = load_classifier(ctx("bao").input_dir("classify") / "model.pth", ctx("bao").cfg.classify, 2)
    kept = [k for k in classifier.backbone.state_dict() if freeze is True or k.startswith("stages.")]
    changed = [k for k in classifier.backbone.state_dict() if k.startswith("high.") and k.endswith("weight")]
    assert kept and changed
    for k in kept:  # the frozen part is the classifier's, unchanged
        assert torch.equal(state[f"student.backbone.{k}"], classifier.backbone.state_dict()[k]), k
    learned = [not torch.equal(state[f"student.backbone.{k}"], classifier.backbone.state_dict()[k]) for k in changed]
    assert any(learned) == (freeze == "mid")


def test_bao_cache_needs_a_frozen_backbone(tmp_path):
    from stages import bao

    ctx = make_workdir(tmp_path)
    ctx("bao").cfg.bao.update(freeze_backbone=False, cache_features=True)
    with pytest.raises(ValueError, match=r"bao.cache_features=True needs bao.freeze_backbone='mid' or True"):
        bao.run(ctx("bao"))


def test_feature_cache_refuses_what_does_not_fit(monkeypatch):
    import wsss.feature_cache as fc

    class _Items(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {"image": torch.zeros(3, 16, 16), "labels": torch.zeros(4, 4)}

    backbone = _TinyBackbone()  # 4 x 4 x 4 float32 per copy: 2 copies x 256 B x 4 images = 2 KiB
    monkeypatch.setattr(fc, "available_memory", lambda: 4096)
    assert len(fc.FeatureCache(lambda x: [backbone(x)], _Items(), batch_size=2)) == 4  # 2 KiB <= half of 4 KiB
    monkeypatch.setattr(fc, "available_memory", lambda: 4000)
    with pytest.raises(ValueError, match=r"bao.cache_features=True: the frozen features of 4 images.*"
                                         r"set bao.cache_features=False"):
        fc.FeatureCache(lambda x: [backbone(x)], _Items(), batch_size=2, config_key="bao.cache_features")


def test_multi_level_head_learns_at_stride_4_on_the_frozen_levels_and_cached_levels_give_the_same_loss():
    from wsss.feature_cache import FeatureCache
    from wsss.models import build_classifier

    torch.manual_seed(0)
    classifier = build_classifier(dict(backbone="mobilenet_v2", method="bas", pretrained=False), 2)
    student = BAOStudent.from_classifier(classifier, hidden=16, frozen_backbone=True, head_levels=(0, 1, 2, 3),
                                         head_dims=(8, 8, 8, 8))
    model = BAOModel(student, ema_momentum=0.5, smoothing=0.0).train()  # no smoothing: the loss can near 0
    (group,) = model.param_groups()
    assert {id(p) for p in group["params"]} == {id(p) for p in student.head.parameters()}
    images = torch.randn(2, 3, 64, 64)
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    target = torch.zeros(2, 64, 64, dtype=torch.long)
    target[:, 16:40, 8:32] = 1
    target[1, 40:60, 36:60] = 2
    logits, scores = student(images, labels)
    assert logits.shape == (2, 3, 16, 16) and scores is None  # stride 4: the first level's grid
    backbone_before = [p.clone() for p in student.backbone.parameters()]
    opt = torch.optim.SGD(group["params"], lr=0.1, momentum=0.9)
    losses = []
    for _ in range(25):
        out = model(images, labels, target)
        assert out["cls"].item() == 0.0  # the frozen classifier head gets no gradient: its loss is left out
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["seg"].item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(torch.equal(b, p) for b, p in zip(backbone_before, student.backbone.parameters()))

    class _Items(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"image": images[i], "labels": labels[i], "target": target[i]}

    student.eval()
    cache = FeatureCache(student.features, _Items(), flip=False, seed=0, flip_keys=("target",))
    batch = torch.utils.data.default_collate([cache[i] for i in range(2)])
    assert [f.shape[1] for f in batch["feats"]] == [24, 32, 96, 1280]  # MobileNetV2's levels
    on_feats, on_images = model(batch["feats"], labels, target), model(images, labels, target)
    assert on_feats["loss"].item() == pytest.approx(on_images["loss"].item(), rel=1e-5)
    with pytest.raises(ValueError, match="head_levels needs bao.freeze_backbone=True"):
        BAOStudent.from_classifier(classifier, frozen_backbone="mid", head_levels=(0, 3))
    with pytest.raises(ValueError, match=r"head_levels must be among \[0, 1, 2, 3\]"):
        BAOStudent.from_classifier(classifier, frozen_backbone=True, head_levels=(0, 4))
    with pytest.raises(ValueError, match="2 dims for 3 feature levels"):
        BAOStudent.from_classifier(classifier, frozen_backbone=True, head_levels=(0, 1, 3), head_dims=(8, 8))


def test_cam_prior_logits_follow_the_first_teacher_labels_rule():
    cam = torch.tensor([[[[2.0, 1.0], [0.0, -1.0]], [[0.0, 3.0], [3.0, 0.0]], [[5.0, 5.0], [5.0, 5.0]]]])
    labels = torch.tensor([[1.0, 1.0, 0.0]])  # class 2 is absent: its map must not count
    prior = cam_prior_logits(cam, labels, 2.0)
    fg = torch.tensor([[[1.0, 0.5], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    expected = 2.0 * torch.cat([1.0 - fg.amax(0, keepdim=True), fg])[None]
    assert torch.allclose(prior, expected)
    # its argmax is teacher_labels' on the same normalised maps (background 0, a class c -> c + 1)
    keys = np.array([0, 1])
    assert np.array_equal(prior[0].argmax(0).numpy(), teacher_labels(fg[:2].numpy(), keys))


def test_cam_prior_student_starts_from_the_classifiers_cam_and_needs_the_high_level():
    from wsss.models import build_classifier

    torch.manual_seed(0)
    classifier = build_classifier(dict(backbone="mobilenet_v2", method="bas", pretrained=False), 2)
    student = BAOStudent.from_classifier(classifier, hidden=16, frozen_backbone=True, head_levels=(0, 1, 2, 3),
                                         head_dims=(8, 8, 8, 8), cam_prior=3.0).eval()
    nn.init.zeros_(student.head.head.out.weight)  # the head adds nothing: the logits are the prior alone
    images = torch.randn(2, 3, 64, 64)
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    logits, _ = student(images, labels)
    cam = classifier.eval().head(classifier.backbone(images))
    expected = F.interpolate(cam_prior_logits(cam, labels, 3.0), (16, 16), mode="bilinear", align_corners=False)
    assert logits.shape == (2, 3, 16, 16)
    assert torch.allclose(logits, expected, atol=1e-5)
    assert logits[0, 2].abs().max() == 0  # an absent class gets no prior
    with pytest.raises(ValueError, match="cam_prior must be >= 0 and needs bao.head_levels with level 3"):
        BAOStudent.from_classifier(classifier, frozen_backbone=True, head_levels=(0, 1, 2), cam_prior=3.0)
    with pytest.raises(ValueError, match="cam_prior must be >= 0"):
        BAOStudent.from_classifier(classifier, frozen_backbone=True, head_levels=(0, 3), cam_prior=-1.0)


@pytest.mark.parametrize("cpu_bf16", [False, True])
def test_bao_stage_cam_prior_student_learns_its_head_only_and_labels_every_image(tmp_path, caplog, cpu_bf16):
    """The fast CPU config's student (bas_irn_cpu_fast.py) through the stage (ResNet-18 levels: 64-512 channels;
    cached levels), also under the bfloat16 autocast that the CPU configs' runtime.cpu_bf16='auto' turns on where
    the CPU has AMX."""
    from stages import bao
    from wsss.models.classifier import load_classifier

    ctx = make_workdir(tmp_path)
    ctx("bao").cfg.bao.update(freeze_backbone=True, cache_features=True, head_levels=(0, 1, 2, 3),
                              head_dims=(8, 8, 8, 8), cam_prior=2.0)
    ctx("bao").cfg.runtime.cpu_bf16 = cpu_bf16
    with caplog.at_level(logging.INFO):
        res = bao.run(ctx("bao"))
    assert ("bfloat16 autocast on CPU" in caplog.text) == cpu_bf16
    assert res["head_levels"] == [0, 1, 2, 3] and res["cam_prior"] == 2.0 and res["cached_features"]
    assert res["iterations"] == 4
    assert len(list((ctx("bao").out_dir / "labels").glob("*.png"))) == 4
    state = torch.load(ctx("bao").out_dir / "model.pth")["state_dict"]
    classifier = load_classifier(ctx("bao").input_dir("classify") / "model.pth", ctx("bao").cfg.classify, 2)
    for k, v in classifier.backbone.state_dict().items():  # the prior is read from the classifier, unchanged
        assert torch.equal(state[f"student.backbone.{k}"], v), k
    assert torch.equal(state["student.cls_head.weight"], classifier.head.weight)
