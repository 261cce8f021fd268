"""Issue 11 finding 3: config overrides are validated when the config is loaded, before any stage runs, and the
val split is checked at the start when it will be evaluated."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.validate import ConfigError, schema, validate_config
from tests.helpers import blob_mask, make_voc_layout

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs/demo/demo.py"
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("[!_]*/*.py") if p.parent.name != "segment")


@pytest.mark.parametrize("config", CONFIGS)
def test_shipped_configs_validate(config):
    validate_config(load_config(ROOT / config, hooks=False))


@pytest.mark.parametrize("option, message", [
    ({"classify.epochz": 3}, "unknown config key 'classify.epochz'; did you mean 'classify.epochs'"),
    ({"clasify.epochs": 3}, "unknown config key 'clasify.epochs'; did you mean 'classify.epochs'"),
    ({"classify.epochs": "abc"}, "config key 'classify.epochs' = 'abc': expected an integer"),
    ({"classify.epochs": 0}, "config key 'classify.epochs' = 0: must be > 0"),
    ({"classify.lr": -0.1}, "config key 'classify.lr' = -0.1: must be > 0"),
    ({"crf.bg_threshold": 1.5}, "config key 'crf.bg_threshold' = 1.5: must be in [0.0, 1.0]"),
    ({"seeds.scales": ["a"]}, "config key 'seeds.scales' = ['a']: expected a list of numbers"),
    ({"seeds.flip": "yes"}, "config key 'seeds.flip' = 'yes': expected True or False"),
    ({"seeds.source": "bass"}, "config key 'seeds.source' = 'bass': must be one of 'bas', 'cam', 'bas+cam'"),
    ({"classify.loss_weights.bass": 1.0}, "did you mean 'classify.loss_weights.bas'"),
    ({"runtime.seed": -1}, "config key 'runtime.seed' = -1"),
    ({"runtime.workers": "many"}, "config key 'runtime.workers' = 'many': must be a number of processes"),
    ({"bao.freeze_backbone": "layer3"}, "'bao.freeze_backbone' = 'layer3': must be one of False, True, 'mid'"),
    ({"bao.freeze_backbone": 1.5}, "config key 'bao.freeze_backbone' = 1.5: expected bool or str"),
    ({"bao.head_levels": 3}, "config key 'bao.head_levels' = 3: expected list or tuple"),
    # the multi-level head reads frozen backbone levels: a student whose backbone learns (the demo's) cannot
    ({"bao.head_levels": [0, 1, 2, 3]}, "'bao.head_levels' = [0, 1, 2, 3] needs bao.freeze_backbone=True"),
    ({"bao.head_levels": [0, 3], "bao.freeze_backbone": "mid"}, "got bao.freeze_backbone='mid'"),
    ({"bao.cache_features": True}, "'bao.cache_features' = True needs bao.freeze_backbone='mid' or True"),
    # the CAM prior is read from the high map (level 3): without it among the head's levels there is none
    ({"bao.cam_prior": 2.0, "bao.freeze_backbone": True, "bao.head_levels": [0, 1, 2]},
     "'bao.cam_prior' = 2.0 needs bao.head_levels with level 3"),
    ({"bao.cam_prior": 2.0}, "got bao.head_levels=None"),
    ({"bao.cam_prior": -1.0}, "'bao.cam_prior' = -1.0: must be"),
    ({"seeds.max_image_side": "big"}, "config key 'seeds.max_image_side' = 'big': expected int"),
    ({"seeds.max_image_side": 8}, "config key 'seeds.max_image_side' = 8: must be >= 32"),
    ({"random_walk.label_crf.gt_prob": 1.5}, "'random_walk.label_crf.gt_prob' = 1.5: must be in [0.0, 1.0]"),
    ({"random_walk.label_crf.sxy": 3}, "unknown config key 'random_walk.label_crf.sxy'"),
    ({"random_walk.label_crf.enabled": 1}, "'random_walk.label_crf.enabled' = 1: expected True or False"),
])
def test_bad_overrides_name_the_key(option, message):
    with pytest.raises(ConfigError) as err:
        validate_config(load_config(DEMO, option, hooks=False))
    assert message in str(err.value)


@pytest.mark.parametrize("option", [
    {"classify.pretrained": "/weights/resnet50.pth"}, {"classify.pretrained": False}, {"bao.lr": 0.01},
    {"segment.iters": 10}, {"segment.crop_size": [64, 64]}, {"runtime.workers": 2}, {"runtime.workers": "auto"},
    {"dataset.img_suffix": ".png"},
    {"crf.enabled": False}, {"affinity.levels": [0, 1]}, {"classify.lr": 1}, {"random_walk.beta": 7.5},
    {"bao.freeze_backbone": "mid"}, {"bao.freeze_backbone": True},
    {"bao.freeze_backbone": True, "bao.head_levels": [0, 1, 2, 3], "bao.head_dims": [32, 32, 64, 64],
     "bao.cache_features": True},
    {"bao.freeze_backbone": True, "bao.head_levels": [0, 1, 2, 3], "bao.cam_prior": 2},
    {"seeds.max_image_side": 416}, {"seeds.max_image_side": "auto"}, {"seeds.max_image_side": None},
    {"random_walk.label_crf.enabled": True}, {"random_walk.label_crf.bilateral": [50, 5, 4]},
])
def test_good_overrides_pass(option):
    validate_config(load_config(DEMO, option, hooks=False))


def test_mmseg_model_sections_pass_through():
    cfg = load_config(DEMO, hooks=False)
    cfg.segment.model = dict(type="EncoderDecoder", backbone=dict(type="ResNetV1c", depth=50, anything=1))
    validate_config(cfg)


def test_schema_knows_the_dataset_reader_keys():
    from wsss.datasets import PRESETS

    known = schema()
    assert {f"dataset.{k}" for p in PRESETS.values() for k in p} <= set(known)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_rejects_a_bad_key_with_exit_code_2_before_any_stage(tmp_path):
    out = _cli("run", str(DEMO), "--work-dir", str(tmp_path / "w"), "--cfg-options", "classify.epochz=3")
    assert out.returncode == 2, out.stderr[-3000:]
    assert "classify.epochz" in out.stderr and "did you mean 'classify.epochs'" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "w").exists()


def test_a_bad_val_mask_fails_at_the_start_not_after_ten_stages(tmp_path):
    masks = {f"t{k}": blob_mask(32, 32, [(1, 4, 4, 20, 20)]) for k in range(3)}
    root = make_voc_layout(tmp_path / "data", masks, classes=["background", "cat"])
    bad = blob_mask(32, 32, [(9, 4, 4, 20, 20)])  # class 9 of a 2-class dataset
    make_voc_layout(root, {"v0": masks["t0"], "v1": bad}, split="val")
    out = _cli("run", str(DEMO), "--work-dir", str(tmp_path / "w"), "--cfg-options", f"dataset.root={root}",
               f"dataset.cache_dir={tmp_path / 'cache'}", "classify.pretrained=False")
    assert out.returncode == 2, out.stderr[-3000:]
    assert f"{root}/SegmentationClass/v1.png: mask values [9] are outside the class range" in out.stderr
    assert not (tmp_path / "w/classify").exists(), "a stage ran before the val split was checked"


def test_label_crf_on_for_your_own_data_only():
    """The walked labels go through the label CRF in configs/custom/ (chosen on realcut, bench/README.md); the
    VOC, COCO and demo configs keep IRN's labels."""
    on = {c: load_config(c, {}, hooks=False).random_walk.label_crf.enabled for c in CONFIGS}
    assert on == {c: c.startswith("configs/custom/") for c in CONFIGS}
