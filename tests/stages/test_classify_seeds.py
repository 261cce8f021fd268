"""classify + seeds stages end to end on a tiny demo dataset: outputs, metrics, resume, clear errors."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config

import wsss  # noqa: F401
from pipeline.stage import StageContext
from stages import classify, seeds
from tools.demo_data import make_demo_dataset
from wsss.maps import load_seeds

torch.set_num_threads(2)


def _cfg(root, cache, **seeds_cfg):
    return Config(dict(
        dataset=dict(type="custom", root=str(root), cache_dir=str(cache)),
        classify=dict(method="bas", backbone="mobilenet_v2", pretrained=False, epochs=1, batch_size=4, lr=0.01,
                      resize=48, scale_range=(0.8, 1.2), crop_size=40, num_workers=0),
        seeds=dict(source="bas+cam", scales=(1.0, 0.5), **seeds_cfg),
        runtime=dict(device="cpu", workers=1, seed=0, amp=True)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("cls")
    root = base / "data"
    make_demo_dataset(root, seed=0, n_train=8, n_val=2, size=48)
    cfg = _cfg(root, base / "cache")
    ctx = StageContext(name="classify", cfg=cfg, work_dir=base / "wd")
    metrics = classify.run(ctx)
    return base, root, cfg, metrics


def test_classify_writes_model_and_metrics(trained):
    base, _, _, m = trained
    out = base / "wd" / "classify"
    ckpt = torch.load(out / "model.pth", weights_only=True)
    assert ckpt["meta"]["backbone"] == "mobilenet_v2" and ckpt["meta"]["method"] == "bas"
    assert ckpt["meta"]["num_classes"] == 5 and ckpt["meta"]["classes"][0] == "background"
    assert m["epochs"] == 1 and m["iterations"] == 2 and m["images"] == 8 and m["images_per_s"] > 0
    for k in ("loss", "cls", "bas", "area", "fg", "bg_wins"):
        assert math.isfinite(m["final"][k]), k
    assert 0 <= m["area_per_epoch"][0] <= 1 and 0 <= m["bg_wins_per_epoch"][0] <= 1
    lines = (out / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "area" in json.loads(lines[0])
    assert (out / "checkpoints" / "latest.pth").is_file()
    json.dumps(m)  # metrics must be JSON-able for results.json


def test_classify_rejects_classes_the_dataset_lacks(trained, tmp_path):
    _, root, cfg, _ = trained
    cfg = Config(cfg.to_dict())
    cfg.classify.classes = ["background", "disc", "zebra"]
    with pytest.raises(ValueError, match="zebra"):
        classify.run(StageContext(name="classify", cfg=cfg, work_dir=tmp_path))


def test_seeds_files_keys_shapes_and_resume(trained):
    base, root, cfg, _ = trained
    ctx = StageContext(name="seeds", cfg=cfg, work_dir=base / "wd")
    m = seeds.run(ctx)
    ds = ctx.dataset()
    maps = base / "wd" / "seeds" / "maps"
    assert m["images"] == m["computed"] == len(ds.ids) == 8 and m["bytes_per_image"] > 0
    for id_ in ds.ids:
        s = load_seeds(maps / f"{id_}.npz")
        h, w = ds.image(id_).shape[:2]
        k = len(ds.label_set(id_))
        assert s.keys.tolist() == ds.label_set(id_)
        assert s.stride4.shape == (k, math.ceil(h / 4), math.ceil(w / 4)) and s.high.shape == (k, h, w)
        assert s.high.min() >= 0 and s.high.max() <= 1 and s.stride4.max() <= 1
        # bas+cam: two max-normalised maps summed and normalised again (the BAS code), so every class map peaks
        # at 1 whatever the CAM part does (it can be all zero for this untrained model); a plain mean would not
        assert np.allclose(s.high.reshape(k, -1).max(1), 1.0, atol=1 / 255)
        assert np.allclose(s.stride4.reshape(k, -1).max(1), 1.0, atol=1 / 255)
    assert seeds.progress(ctx) == (8, 8)
    victim = maps / f"{ds.ids[3]}.npz"
    before = {p.name: p.stat().st_mtime_ns for p in maps.glob("*.npz")}
    victim.unlink()
    assert seeds.progress(ctx) == (7, 8)
    m2 = seeds.run(ctx)
    assert m2["computed"] == 1 and victim.is_file()
    after = {p.name: p.stat().st_mtime_ns for p in maps.glob("*.npz")}
    assert {n for n in after if after[n] != before.get(n)} == {victim.name}


def test_seeds_sources_bas_and_cam_differ(trained, tmp_path):
    base, _, cfg, _ = trained
    out = {}
    for src in ("bas", "cam"):
        c = Config(cfg.to_dict())
        c.seeds.source, c.seeds.scales, c.seeds.flip, c.seeds.split = src, (1.0,), False, "val"
        wd = tmp_path / src
        shutil.copytree(base / "wd" / "classify", wd / "classify", ignore=shutil.ignore_patterns("checkpoints"))
        ctx = StageContext(name="seeds", cfg=c, work_dir=wd)
        seeds.run(ctx)
        id_ = ctx.dataset("val").ids[0]
        out[src] = load_seeds(wd / "seeds" / "maps" / f"{id_}.npz").stride4
    assert out["bas"].shape == out["cam"].shape and not np.allclose(out["bas"], out["cam"])
    assert np.allclose(out["bas"].reshape(len(out["bas"]), -1).max(1), 1.0, atol=1e-3)


def test_bounded_scales_bound_only_images_longer_than_the_limit():
    from wsss.transforms import bounded_scales

    assert bounded_scales((100, 50), (1.0, 0.5), None) == (1.0, 0.5)
    assert bounded_scales((100, 50), (1.0, 0.5), 100) == (1.0, 0.5)
    assert bounded_scales((50, 200), (1.0, 0.5), 100) == (0.5, 0.25)


def test_seeds_max_image_side_labels_long_images_at_the_bound(trained, tmp_path):
    """An image longer than seeds.max_image_side gets the maps of its scales times bound / long side, still
    stored at its full size; the bound changes the maps (it is in the fingerprint: the seeds section)."""
    base, _, cfg, _ = trained
    from wsss.models.classifier import load_classifier
    from wsss.transforms import bounded_scales

    out = {}
    for bound in (None, 32):
        c = Config(cfg.to_dict())
        c.seeds.split, c.seeds.max_image_side = "val", bound
        wd = tmp_path / str(bound)
        shutil.copytree(base / "wd" / "classify", wd / "classify", ignore=shutil.ignore_patterns("checkpoints"))
        ctx = StageContext(name="seeds", cfg=c, work_dir=wd)
        assert seeds.run(ctx)["max_image_side"] == bound
        ds = ctx.dataset("val")
        out[bound] = {i: load_seeds(wd / "seeds" / "maps" / f"{i}.npz") for i in ds.ids}
    model = load_classifier(base / "wd" / "classify" / "model.pth", cfg.classify, ds.num_fg).eval()
    for id_ in ds.ids:
        image = ds.image(id_)
        h, w = image.shape[:2]
        assert max(h, w) > 32 and out[32][id_].high.shape == out[None][id_].high.shape == (len(out[32][id_].keys), h, w)
        scales = bounded_scales((h, w), (1.0, 0.5), 32)
        assert scales == (32 / max(h, w), 16 / max(h, w))
        _, high = seeds.image_seeds(model, image, ds.label_set(id_), scales, "bas+cam", True)
        assert np.allclose(out[32][id_].high, high, atol=1 / 255 + 1e-6)  # stored quantised to 1/255
        # this 1-epoch model's maps are nearly flat, so the difference is small, but more than quantisation
        assert np.abs(out[32][id_].high - out[None][id_].high).max() > 2 / 255


def test_seeds_wrong_checkpoint_is_a_clear_error_and_keeps_maps(trained, tmp_path):
    base, _, cfg, _ = trained
    from wsss.models import build_classifier, save_classifier

    wd = tmp_path / "wd"
    maps = wd / "seeds" / "maps"
    maps.mkdir(parents=True)
    (maps / "keep.npz").write_bytes(b"x")
    save_classifier(wd / "classify" / "model.pth",
                    build_classifier(dict(backbone="mobilenet_v2", pretrained=False), 3))
    with pytest.raises(ValueError, match=r"model\.pth.*num_classes: checkpoint 3 vs expected 5"):
        seeds.run(StageContext(name="seeds", cfg=cfg, work_dir=wd))
    save_classifier(wd / "classify" / "model.pth",
                    build_classifier(dict(backbone="resnet18", pretrained=False), 5))
    with pytest.raises(ValueError, match=r"model\.pth.*backbone: checkpoint 'resnet18' vs expected 'mobilenet_v2'"):
        seeds.run(StageContext(name="seeds", cfg=cfg, work_dir=wd))
    assert (maps / "keep.npz").read_bytes() == b"x"


def test_seeds_split_with_an_image_without_labels_is_an_error(trained, tmp_path):
    base, root, cfg, _ = trained
    from PIL import Image

    ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    mask = np.zeros((48, 48), np.uint8)
    Image.fromarray(mask, mode="L").save(root / "SegmentationClass" / "empty_0.png")
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(root / "JPEGImages" / "empty_0.jpg")
    (root / "ImageSets" / "Segmentation" / "withempty.txt").write_text("\n".join([*ids, "empty_0"]) + "\n")
    c = Config(cfg.to_dict())
    c.seeds.split = "withempty"
    with pytest.raises(ValueError, match=r"1 image\(s\) of split 'withempty' have no foreground class.*empty_0"):
        seeds.run(StageContext(name="seeds", cfg=c, work_dir=base / "wd"))


def test_one_class_dataset_needs_and_uses_background_only_images(tmp_path):
    """One foreground class: a class in every training image cannot be localised from image-level labels (a clear
    error before training); background-only images train the classifier as negatives (soft-margin loss), and the
    seeds stage still labels the images with the class only."""
    from tests.helpers import blob_mask, make_voc_layout
    from wsss.datasets import DatasetError

    masks = {f"pos{i}": blob_mask(40, 40, [(1, 5 + i, 8, 25 + i, 30)]) for i in range(6)}
    root = make_voc_layout(tmp_path / "data", masks, classes=["background", "crack"])
    cfg = _cfg(root, tmp_path / "cache")
    with pytest.raises(DatasetError, match=r"\['crack'\] are in every one of the 6 training images"):
        classify.run(StageContext(name="classify", cfg=cfg, work_dir=tmp_path / "wd0"))

    masks.update({f"neg{i}": np.zeros((40, 40), np.uint8) for i in range(3)})
    make_voc_layout(root, masks, classes=["background", "crack"])
    ctx = StageContext(name="classify", cfg=cfg, work_dir=tmp_path / "wd")
    m = classify.run(ctx)
    assert m["images"] == 9 and m["negative_images"] == 3 and m["cls_loss"] == "soft_margin"
    assert classify.check_learnable(ctx.dataset(require_foreground=False)) == []
    (root / "classes.txt").write_text("background\ncrack\nscratch\n")  # a class no image has: named, not fatal
    assert classify.check_learnable(ctx.dataset(require_foreground=False)) == ["scratch"]
    (root / "classes.txt").write_text("background\ncrack\n")
    assert m["iterations"] == 2 and math.isfinite(m["final"]["loss"])  # 9 images, batch 4, last one dropped
    s = seeds.run(StageContext(name="seeds", cfg=cfg, work_dir=tmp_path / "wd"))
    assert s["images"] == 6 and sorted(p.stem for p in (tmp_path / "wd/seeds/maps").glob("*.npz")) == sorted(
        f"pos{i}" for i in range(6))


def test_classes_in_the_same_images_are_named(tmp_path, caplog):
    """Classes in exactly the same training images have identical image-level labels, so nothing in training
    tells their pixels apart: they are named (a warning before training; they still train). Once one of them is in
    an image without the other, they are not."""
    from tests.helpers import blob_mask, make_voc_layout

    rider, bike, dog = (1, 2, 2, 15, 15), (2, 20, 20, 35, 35), (3, 2, 20, 12, 35)
    masks = {f"img{i}": blob_mask(40, 40, [rider, bike] + ([dog] if i % 2 else [])) for i in range(4)}
    masks.update({f"dog{i}": blob_mask(40, 40, [dog]) for i in range(2)})
    root = make_voc_layout(tmp_path / "data", masks, classes=["background", "rider", "bike", "dog"])
    ctx = StageContext(name="classify", cfg=_cfg(root, tmp_path / "cache"), work_dir=tmp_path / "wd")
    assert classify.inseparable_classes(ctx.dataset(require_foreground=False)) == [["rider", "bike"]]
    assert classify.run(ctx)["iterations"] == 1  # they still train
    assert "classes ['rider', 'bike'] are in exactly the same training images" in caplog.text
    masks["img4"] = blob_mask(40, 40, [bike])  # bike once without rider: rider's images are a subset, not equal
    make_voc_layout(root, masks, classes=["background", "rider", "bike", "dog"])
    assert classify.inseparable_classes(ctx.dataset(require_foreground=False)) == []


def test_white_on_black_masks_stop_with_a_hint(tmp_path):
    """Binary masks painted 255 on 0 (255 is VOC's 'ignore') leave no image with a class: the classify stage
    stops before training and says what 255 means, instead of training on nothing."""
    from tests.helpers import make_voc_layout
    from wsss.datasets import DatasetError

    masks = {}
    for i in range(4):
        m = np.zeros((40, 40), np.uint8)
        m[5 + i:25, 8:30] = 255
        masks[f"im{i}"] = m
    root = make_voc_layout(tmp_path / "data", masks, classes=["background", "crack"])
    cfg = _cfg(root, tmp_path / "cache")
    with pytest.raises(DatasetError, match=r"no training image of split 'train' has a foreground class, nothing to "
                                           r"learn \(the masks hold only 0 and 255, e.g. .*im0.png: 255 means "
                                           r"'ignore'"):
        classify.run(StageContext(name="classify", cfg=cfg, work_dir=tmp_path / "wd"))
    assert not (tmp_path / "wd/classify/model.pth").exists()
