"""wsss.segmentation / wsss.mmseg_ext: config inheritance, MobileNetV2 weight mapping, input checks, IoUMetric."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import wsss  # noqa: F401  (stack fixes)
from tests.helpers import blob_mask, make_voc_layout
from wsss.datasets import DatasetError, build_dataset
from wsss.maps import save_label_png

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["background", "a", "b"]


def test_model_configs_inherit_the_shipped_mmseg_configs():
    from mmengine.config import Config

    from wsss.segmentation import mmseg_config_dir

    shipped = mmseg_config_dir()
    assert (shipped / "_base_/models/deeplabv3plus_r50-d8.py").is_file()
    files = sorted((REPO / "configs/segment").glob("*.py"))
    assert len(files) >= 9
    for f in files:
        text = f.read_text()
        # inherits, does not copy: a shipped mmseg config, or one of ours (itself checked by this loop, and the
        # keys below exist only in the shipped bases, so the chain must end there)
        base = re.search(r"^_base_ = '([^']+)'", text, re.M)
        assert base and (base[1].startswith("mmseg::") or (f.parent / base[1]).resolve().parent == f.parent), f
        assert "EncoderDecoder" not in text and "loss_decode" not in text, f
        cfg = Config.fromfile(str(f))
        # keys that only the shipped bases define
        assert cfg.tta_model.type == "SegTTAModel", f
        assert cfg.model.type == "EncoderDecoder" and cfg.model.decode_head.loss_decode.type == "CrossEntropyLoss"
        # the recipe's own backbone weights stay named (mmengine resolves them; wsss.weights checks them first)
        if cfg.model.backbone.type == "TVMobileNetV2":
            assert cfg.model.backbone.tv_checkpoint == "imagenet", f
        else:
            assert str(cfg.model.pretrained).startswith("open-mmlab://resnet"), f
    r101 = Config.fromfile(str(REPO / "configs/segment/deeplabv3plus_r101-d8_voc.py"))
    assert r101.model.backbone.depth == 101 and r101.model.decode_head.type == "DepthwiseSeparableASPPHead"
    assert r101.train_cfg.max_iters == 20000 and r101.crop_size == (512, 512)
    coco = Config.fromfile(str(REPO / "configs/segment/deeplabv3_r50-d8_coco.py"))
    assert coco.model.decode_head.type == "ASPPHead" and coco.train_cfg.max_iters == 80000
    assert coco.param_scheduler[0].end == 80000


def _tv_checkpoint(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    import torchvision

    torch.manual_seed(0)
    tv = torchvision.models.mobilenet_v2()  # random init: hermetic, not the hub file
    for m in tv.modules():  # non-trivial BN statistics so a wrong mapping shows in the outputs
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "mnv2.pth"
    torch.save(tv.state_dict(), path)
    return path, tv.eval()


def test_mobilenet_v2_mapping_covers_every_backbone_weight(tmp_path):
    from wsss.mmseg_ext import TVMobileNetV2, map_torchvision_mobilenet_v2

    path, tv = _tv_checkpoint(tmp_path)
    mapped, unused = map_torchvision_mobilenet_v2(tv.state_dict())
    backbone = TVMobileNetV2(tv_checkpoint=str(path))
    own = backbone.state_dict()
    assert set(mapped) == set(own)  # every backbone key, nothing extra
    assert all(mapped[k].shape == own[k].shape for k in own)
    assert sorted({k.split(".")[0] for k in unused}) == ["classifier", "features"]
    assert all(k.startswith(("features.18.", "classifier.")) for k in unused)
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(backbone(x)[-1], tv.features[:18](x), atol=1e-5)
    # the dilated (output stride 8) variant of the demo config takes the same weights
    dil = TVMobileNetV2(tv_checkpoint=str(path), strides=(1, 2, 2, 1, 1, 1, 1), dilations=(1, 1, 1, 2, 2, 4, 4))
    dil.init_weights()
    assert torch.equal(dil.layer7[0].conv[2].bn.running_var, tv.features[17].conv[3].running_var)


def test_mobilenet_v2_incomplete_checkpoint_is_an_error(tmp_path):
    from wsss.mmseg_ext import TVMobileNetV2

    path, tv = _tv_checkpoint(tmp_path)
    state = tv.state_dict()
    del state["features.5.conv.1.0.weight"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="1 missing key"):
        TVMobileNetV2(tv_checkpoint=str(path)).init_weights()
    with pytest.raises(FileNotFoundError):
        TVMobileNetV2(tv_checkpoint=str(tmp_path / "nope.pth")).init_weights()


def _tiny(tmp_path: Path):
    masks = {f"im{i}": blob_mask(32, 40, [(1 + i % 2, 4, 4, 20, 24)]) for i in range(4)}
    root = make_voc_layout(tmp_path / "data", masks, classes=CLASSES)
    return build_dataset(dict(type="custom", root=str(root), cache_dir=str(tmp_path / "cache")), "train")


def test_label_folder_checks(tmp_path):
    from wsss.segmentation import check_label_folder

    ds = _tiny(tmp_path)
    lab = tmp_path / "labels"
    check_label_folder(ds, ds.mask_dir)  # the ground truth itself passes
    for i in ds.ids[:2]:
        save_label_png(lab / f"{i}.png", ds.mask(i))
    with pytest.raises(DatasetError, match=r"2 of 4 images .* no label file.*im2.*im3"):
        check_label_folder(ds, lab)
    for i in ds.ids[2:]:
        save_label_png(lab / f"{i}.png", ds.mask(i))
    check_label_folder(ds, lab)
    bad = ds.mask("im3").copy()
    bad[0, 0] = 7
    save_label_png(lab / "im3.png", bad)
    with pytest.raises(DatasetError, match=r"outside the class range 0..2.*im3.png: \[7\]"):
        check_label_folder(ds, lab)
    save_label_png(lab / "im3.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(DatasetError, match="differ in size"):
        check_label_folder(ds, lab)
    with pytest.raises(DatasetError, match="does not exist"):
        check_label_folder(ds, tmp_path / "nothing")


def test_num_classes_mismatch_and_config_build(tmp_path):
    from mmengine.config import Config

    from wsss.segmentation import build_mmseg_config

    ds = _tiny(tmp_path)
    cfg = Config(dict(runtime=dict(device="cpu", seed=0), segment=dict(
        model="configs/segment/deeplabv3plus_r50-d8_voc.py", labels_from="gt", num_classes=21, iters=7,
        pretrained=False)))
    with pytest.raises(ValueError, match="num_classes = 21 but dataset"):
        build_mmseg_config(cfg, tmp_path, tmp_path / "out", ds, None, None)
    cfg.segment.num_classes = None
    mm = build_mmseg_config(cfg, tmp_path, tmp_path / "out", ds, ds, None)
    assert mm.model.decode_head.num_classes == 3 and mm.model.auxiliary_head.num_classes == 3
    assert mm.model.backbone.norm_cfg.type == "BN"  # SyncBN reverted where it cannot run (CPU)
    assert mm.param_scheduler[0].end == 7 and mm.train_cfg.max_iters == 7
    assert mm.train_dataloader.dataset.label_dir == str(ds.mask_dir)
    assert mm.resume is True and mm.work_dir == str(tmp_path / "out" / "mmseg")
    assert {"type": "ChannelsLastHook"} in mm.custom_hooks  # runtime.channels_last defaults to on
    assert {"type": "SpaceToBatchHook"} in mm.custom_hooks  # dilated convs: faster on CPU (wsss.models.atrous)
    cfg.runtime.channels_last = False
    mm = build_mmseg_config(cfg, tmp_path, tmp_path / "out", ds, ds, None)
    assert all(h["type"] != "ChannelsLastHook" for h in mm.custom_hooks)
    assert mm.optim_wrapper.type == "OptimWrapper"  # float32 on CPU unless runtime.cpu_bf16


def test_cpu_bf16_runs_the_deeplab_forward_under_bfloat16_autocast(tmp_path):
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    from wsss.segmentation import build_mmseg_config

    ds = _tiny(tmp_path)
    cfg = Config(dict(runtime=dict(device="cpu", seed=0, cpu_bf16=True), segment=dict(
        model="configs/segment/mobilenetv2_deeplabv3plus_demo.py", labels_from="gt", iters=7, pretrained=False)))
    mm = build_mmseg_config(cfg, tmp_path, tmp_path / "out", ds, ds, None)
    assert mm.optim_wrapper.type == "CPUBF16OptimWrapper"
    net = torch.nn.Conv2d(3, 4, 3)
    wrapper = build_optim_wrapper(net, mm.optim_wrapper)
    x = torch.randn(1, 3, 8, 8)
    with wrapper.optim_context(net):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        y = net(x)
    assert y.dtype == torch.bfloat16 and not torch.is_autocast_enabled("cpu")
    wrapper.update_params(y.float().square().mean())  # the backward and the step run; weights stay float32
    assert net.weight.dtype == torch.float32 and net.weight.grad is None  # update_params zeroes the gradients


def test_iou_metric_equals_eval_miou_tool(tmp_path):
    """mmseg's IoUMetric (our wrapper) and tools/eval_miou.py (wsss.metrics) give the same numbers."""
    import subprocess
    import sys

    from wsss.segmentation import iou_metric

    rng = np.random.default_rng(0)
    names = ["background", "x", "y", "z"]
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pairs = []
    for i in range(5):
        gt = rng.integers(0, 3, (20, 30)).astype(np.uint8)  # class z never in gt
        gt[rng.random(gt.shape) < 0.1] = 255
        pred = np.where(rng.random(gt.shape) < 0.7, np.where(gt == 255, 0, gt), rng.integers(0, 4, gt.shape))
        pred = pred.astype(np.uint8)
        save_label_png(gt_dir / f"{i}.png", gt)
        save_label_png(pred_dir / f"{i}.png", pred)
        pairs.append((pred, gt))
    ours = iou_metric(lambda: iter(pairs), names)
    out = tmp_path / "m.json"
    subprocess.run([sys.executable, str(REPO / "tools/eval_miou.py"), "--pred", str(pred_dir), "--gt", str(gt_dir),
                    "--classes", _classes_file(tmp_path, names), "--json", str(out)],
                   check=True, capture_output=True)
    import json

    tool = json.loads(out.read_text())
    assert 0 < ours["mIoU"] < 100
    assert ours["mIoU"] == pytest.approx(tool["mIoU"], abs=1e-3)
    for k, name in enumerate(names):
        a, b = ours["per_class"][name], tool["iou"][k]
        assert (a is None and b is None) or a == pytest.approx(b, abs=1e-3)


def _classes_file(tmp_path: Path, names: list[str]) -> str:
    p = tmp_path / "classes.txt"
    p.write_text("\n".join(names) + "\n")
    return str(p)


def test_background_only_images_train_as_all_background(tmp_path):
    """A training image without any class gets no pseudo-label file; DeepLab trains on it as all background
    (with ground-truth labels its mask is read as usual)."""
    from mmengine.config import Config
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    from wsss.segmentation import build_mmseg_config, check_label_folder

    register_all_modules(init_default_scope=True)

    masks = {"pos0": blob_mask(20, 30, [(1, 2, 2, 10, 10)]), "neg0": np.zeros((20, 30), np.uint8),
             "pos1": blob_mask(20, 30, [(2, 5, 5, 15, 25)])}
    root = make_voc_layout(tmp_path / "d", masks, classes=CLASSES)
    ds = build_dataset(dict(type="custom", root=str(root), cache_dir=str(tmp_path / "c")), require_foreground=False)
    assert ds.ids == ["pos0", "neg0", "pos1"]
    lab = tmp_path / "labels"
    pseudo = {i: np.full((20, 30), 2 if i == "pos0" else 1, np.uint8) for i in ("pos0", "pos1")}
    for i, m in pseudo.items():
        save_label_png(lab / f"{i}.png", m)
    with pytest.raises(DatasetError, match="1 of 3 images .* no label file.*neg0"):
        check_label_folder(ds, lab)
    check_label_folder(ds, lab, ids=["pos0", "pos1"])
    cfg = Config(dict(runtime=dict(device="cpu", seed=0), segment=dict(
        model="configs/segment/mobilenetv2_deeplabv3plus_demo.py", labels_from=str(lab), iters=2, pretrained=False,
        crop_size=16, img_scale=(32, 16))))
    mm = build_mmseg_config(cfg, tmp_path, tmp_path / "out", ds, None, lab)
    assert mm.train_dataloader.dataset.background_ids == ["neg0"]
    data = DATASETS.build(mm.train_dataloader.dataset)
    pipeline = data.pipeline
    for k, i in enumerate(ds.ids):
        info = data.get_data_info(k)
        loaded = pipeline.transforms[1](pipeline.transforms[0](dict(info)))  # load image + annotations
        want = pseudo.get(i, np.zeros((20, 30), np.uint8))
        assert np.array_equal(loaded["gt_seg_map"], want), i
    cfg.segment.labels_from = "gt"
    assert build_mmseg_config(cfg, tmp_path, tmp_path / "out", ds, None, None).train_dataloader.dataset[
        "background_ids"] == []


def test_colour_val_masks_reach_mmseg_as_class_indices(tmp_path):
    """Colour masks (VOC colours, any mask suffix) are what mmseg's val and 'gt' datasets read as indices: the
    dataset's decoded copy, not the RGB file (whose colours would be read as garbage or fail); images of mixed
    suffixes reach it by the dataset reader's paths."""
    from mmengine.config import Config
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    from PIL import Image

    from wsss.datasets.colors import voc_palette
    from wsss.segmentation import build_mmseg_config

    register_all_modules(init_default_scope=True)
    masks = {"a": blob_mask(20, 30, [(1, 2, 2, 10, 10)]), "b": blob_mask(20, 30, [(2, 5, 5, 15, 25)])}
    root = make_voc_layout(tmp_path / "d", masks, classes=CLASSES)
    for i, m in masks.items():
        (root / "SegmentationClass" / f"{i}.png").unlink()
        Image.fromarray(voc_palette()[m]).save(root / "SegmentationClass" / f"{i}_mask.png")
    Image.open(root / "JPEGImages/b.jpg").save(root / "JPEGImages/b.png")  # images of mixed suffixes too
    (root / "JPEGImages/b.jpg").unlink()
    ds = build_dataset(dict(type="custom", root=str(root), cache_dir=str(tmp_path / "c"), mask_suffix="_mask.png"),
                       require_foreground=False)
    assert ds.mask_suffix == ".png" and ds.mask_dir.name.startswith("index_masks_")
    cfg = Config(dict(runtime=dict(device="cpu", seed=0), segment=dict(
        model="configs/segment/mobilenetv2_deeplabv3plus_demo.py", labels_from="gt", iters=2, pretrained=False,
        crop_size=16, img_scale=(32, 16), val_interval=1)))
    mm = build_mmseg_config(cfg, tmp_path, tmp_path / "out", ds, ds, None)
    for section, load_labels in ((mm.train_dataloader, 1), (mm.val_dataloader, 2)):  # val resizes in between
        data = DATASETS.build(section.dataset)
        for k, i in enumerate(ds.ids):
            info = dict(data.get_data_info(k))
            assert info["img_path"] == str(root / "JPEGImages" / ("b.png" if i == "b" else f"{i}.jpg"))
            loaded = data.pipeline.transforms[load_labels](data.pipeline.transforms[0](info))
            assert np.array_equal(loaded["gt_seg_map"], masks[i]), i
