"""'auto' config values derived from a dataset of known image sizes, and recorded with the reason."""
from __future__ import annotations

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from wsss.auto_settings import DatasetStats, dataset_stats, derive, resolve
from wsss.datasets import DatasetError


def make_sized_dataset(root, sizes: list[tuple[int, int]]) -> None:
    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets/Segmentation").mkdir(parents=True)
    ids = [f"im{i:03d}" for i in range(len(sizes))]
    for id_, (h, w) in zip(ids, sizes):
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / "JPEGImages" / f"{id_}.jpg")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids) + "\n")
    (root / "classes.txt").write_text("background\ncat\n")


def test_stats_from_headers(tmp_path):
    from wsss.datasets import split_image_paths

    # 10 landscape 300x200, 10 portrait 400x250 (long 300 / 400, short 200 / 250)
    make_sized_dataset(tmp_path, [(200, 300)] * 10 + [(400, 250)] * 10)
    st = dataset_stats(split_image_paths(dict(type="custom", root=str(tmp_path))))
    assert (st.num_images, st.sampled) == (20, 20)
    assert st.median_long == 350 and st.median_short == 225 and st.p95_long == 400


def test_rules_reproduce_the_published_voc_and_demo_settings():
    voc = {k: v["value"] for k, v in derive({}, DatasetStats(10582, 2000, 500, 375, 500)).items()}
    assert voc["classify.resize"] == 512 and voc["classify.crop_size"] == 448  # BAS
    assert voc["seeds.scales"] == (1.0, 0.5, 1.5, 2.0)
    assert voc["affinity.crop_size"] == 512 and voc["affinity.train_radius"] == 10  # IRN
    assert voc["random_walk.radius"] == 5 and voc["random_walk.exp_times"] == 8  # IRN
    assert voc["classify.epochs"] == 10 and voc["affinity.epochs"] == 3
    demo = {k: v["value"] for k, v in derive({}, DatasetStats(240, 240, 139, 122, 157)).items()}
    assert demo["classify.resize"] == 144 and demo["classify.crop_size"] == 128
    assert demo["seeds.scales"] == (1.0, 1.5, 2.0)
    assert demo["affinity.train_radius"] == 6 and demo["random_walk.exp_times"] == 4
    assert demo["segment.crop_size"] == 128 and demo["segment.img_scale"] == (160, 128)
    # 240 images at batch 16 = 15 iterations per epoch: 300 iterations need 20 epochs
    assert demo["classify.epochs"] == 20


def test_max_side_bounds_the_training_sizes_only():
    voc = DatasetStats(10582, 2000, 500, 375, 500)
    capped = {k: v for k, v in derive({"auto_limits": {"max_side": 320}}, voc).items()}
    assert capped["classify.resize"]["value"] == 320 and capped["classify.crop_size"]["value"] == 288
    assert capped["affinity.crop_size"]["value"] == 320 and capped["segment.crop_size"]["value"] == 320
    assert "in [64, 320] (auto_limits.max_side)" in capped["classify.resize"]["why"]
    assert capped["segment.img_scale"]["value"] == (512, 320)  # images stay at their own scale; crops shrink
    assert derive({"auto_limits": {"max_side": 512}}, voc)["classify.resize"]["value"] == 512
    # images below the bound are not touched (the demo, realcut)
    demo = DatasetStats(240, 240, 139, 122, 157)
    values = lambda cfg: {k: v["value"] for k, v in derive(cfg, demo).items()}  # noqa: E731
    assert values({"auto_limits": {"max_side": 320}}) == values({})
    with pytest.raises(ValueError, match="auto_limits.max_side must be an integer >= 64"):
        derive({"auto_limits": {"max_side": 32}}, voc)


def test_max_image_side_is_the_longest_training_side():
    """VOC's 500 px images are below it (IRN / BAS label them at their native size); with the CPU bound of 320
    px, 640 px photos are labelled at 416 (320 x 1.3), not at their 2x larger native size."""
    voc = DatasetStats(10582, 2000, 500, 375, 500)
    assert derive({}, voc)["seeds.max_image_side"]["value"] == 672  # 512 x 1.3 = 665.6, up to 16
    capped = derive({"auto_limits": {"max_side": 320}}, DatasetStats(96, 96, 640, 560, 720))
    assert capped["seeds.max_image_side"]["value"] == 416
    assert "classify.resize=320 x 1.3" in capped["seeds.max_image_side"]["why"]
    # the random walk stays at the native size unless random_walk.max_image_side is given (a bounded walk scored
    # 4 points lower on realcut_640, bench/README.md); then the walk length follows the walked grid
    assert "random_walk.max_image_side" not in capped and capped["random_walk.exp_times"]["value"] == 8  # 160 cells
    walked = derive({"auto_limits": {"max_side": 320}, "random_walk": {"max_image_side": 400}},
                    DatasetStats(96, 96, 640, 560, 720))
    assert walked["random_walk.exp_times"]["value"] == 7  # 100-cell grid (400 / 4)
    explicit = derive({"classify": {"resize": 200, "scale_range": (0.5, 1.5)}}, voc)
    assert explicit["seeds.max_image_side"]["value"] == 304  # explicit values feed the rule: 300, up to 16


def test_schedule_scales_with_the_dataset_and_explicit_values_feed_later_rules():
    seg = {"batch_size": 8, "auto_epochs": 10, "auto_min_iters": 100}
    small = derive({"segment": seg}, DatasetStats(240, 240, 139, 122, 157))
    big = derive({"segment": seg}, DatasetStats(2400, 240, 139, 122, 157))
    assert small["segment.iters"]["value"] == 300 and big["segment.iters"]["value"] == 3000
    assert "10 passes over 240 images at batch 8" in small["segment.iters"]["why"]
    # the floor (default 1000 iterations) lifts a small split's schedule, not a large one's
    tiny = derive({"segment": {"batch_size": 8}}, DatasetStats(96, 96, 506, 447, 544))
    assert tiny["segment.iters"]["value"] == 1000 and "= 360, at least 1000" in tiny["segment.iters"]["why"]
    assert derive({"segment": {"batch_size": 8}}, DatasetStats(300, 240, 235, 208, 254))["segment.iters"]["value"] \
        == 1125  # realcut_small: 30 passes, above the floor (its measured runs are unchanged)
    # a fixed affinity crop of 512 on small images: the radius follows the crop actually used
    d = derive({"affinity": {"crop_size": 512}}, DatasetStats(240, 240, 139, 122, 157))
    assert d["affinity.train_radius"]["value"] == 10
    # BAO's EMA teacher takes over at half the schedule, whatever an epoch holds: 64 images at batch 16 give
    # 4 iterations an epoch and 75 epochs (300 iterations), so epoch 1 would leave 4 iterations on the seeds
    d = derive({"bao": {"batch_size": 16}}, DatasetStats(64, 64, 300, 260, 320))
    assert d["bao.epochs"]["value"] == 75 and d["bao.teacher_from_epoch"]["value"] == 37
    assert derive({"bao": {"epochs": 24}}, DatasetStats(240, 240, 139, 122, 157))["bao.teacher_from_epoch"][
        "value"] == 12  # the demo's explicit 24 epochs: its own teacher_from_epoch=12
    assert derive({"bao": {"epochs": 1}}, DatasetStats(240, 240, 139, 122, 157))["bao.teacher_from_epoch"][
        "value"] == 1  # a one-epoch schedule: the seeds' labels throughout (the teacher never takes over)


def test_resolve_replaces_auto_and_records_why(tmp_path):
    make_sized_dataset(tmp_path, [(120, 140)] * 5)
    cfg = Config(dict(dataset=dict(type="custom", root=str(tmp_path)), runtime=dict(device="auto"),
                      classify=dict(resize="auto", crop_size=100), random_walk=dict(exp_times="auto")))
    chosen = resolve(cfg)
    assert set(chosen) == {"classify.resize", "random_walk.exp_times"}
    assert cfg.classify.resize == 144 and cfg.classify.crop_size == 100  # explicit values are kept
    assert cfg.runtime.device == "auto"  # not a derivable key: its own meaning of 'auto'
    assert cfg.auto_settings["classify.resize"]["value"] == 144
    assert "median image 140x120" in cfg.auto_settings["classify.resize"]["why"]
    assert cfg.auto_settings["stats"]["num_images"] == 5


def test_resolve_names_the_keys_when_the_dataset_is_unreadable(tmp_path):
    cfg = Config(dict(dataset=dict(type="custom", root=str(tmp_path / "nowhere")), seeds=dict(scales="auto")))
    with pytest.raises(DatasetError, match=r"split file is missing.*'auto' \(1: seeds.scales\)"):
        resolve(cfg)


def test_config_hook_runs_on_load(tmp_path):
    from pipeline.config import load_config

    make_sized_dataset(tmp_path / "d", [(100, 100)] * 4)
    path = tmp_path / "c.py"
    path.write_text(f"dataset = dict(type='custom', root={str(tmp_path / 'd')!r})\n"
                    "config_hooks = ['wsss.auto_settings:resolve']\nsegment = dict(crop_size='auto')\n")
    cfg = load_config(path)
    assert cfg.segment.crop_size == 112 and "segment.crop_size" in cfg.auto_settings


@pytest.mark.parametrize(("flags", "value"), [("fpu avx512f avx512_bf16 amx_bf16 amx_tile", True),
                                               ("fpu avx512f avx512_bf16", False), ("fpu sse2 avx2", False)])
def test_cpu_bf16_auto_follows_the_cpus_amx_units(tmp_path, monkeypatch, flags, value):
    """runtime.cpu_bf16='auto' becomes True only on a CPU with AMX bfloat16 units (the only bfloat16 hardware
    measured), is recorded with the reason like the data-derived keys, and needs no dataset to resolve."""
    import wsss.auto_settings

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(wsss.auto_settings, "CPUINFO", str(cpuinfo))
    cfg = Config(dict(dataset=dict(type="custom", root=str(tmp_path / "nowhere")), runtime=dict(cpu_bf16="auto")))
    chosen = resolve(cfg)
    assert cfg.runtime.cpu_bf16 is value and set(chosen) == {"runtime.cpu_bf16"}
    assert cfg.auto_settings["runtime.cpu_bf16"]["value"] is value
    assert ("has AMX" if value else "no AMX") in cfg.auto_settings["runtime.cpu_bf16"]["why"]
    assert "stats" not in cfg.auto_settings  # no data was read
    explicit = Config(dict(runtime=dict(cpu_bf16=False)))
    assert resolve(explicit) == {} and explicit.runtime.cpu_bf16 is False  # an explicit value is kept


def test_an_unresolved_cpu_bf16_is_an_error_not_true():
    """'auto' (a non-empty string) must never be read as True by a config without the resolving hook."""
    from wsss.training import precision_options

    assert precision_options({"cpu_bf16": True}) == {"amp": True, "cpu_bf16": True}
    with pytest.raises(ValueError, match=r"runtime.cpu_bf16 must be True or False.*'auto'"):
        precision_options({"cpu_bf16": "auto"})
