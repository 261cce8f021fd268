"""The ground-truth-free refinement path (the default): the BAO learned background replaces the background
threshold in crf, ir_labels and random_walk, so no threshold in the config can matter; the threshold path can take
its value from the calibration split ('calib') and its provenance is labelled."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

import wsss  # noqa: F401  (stack fixes)
from pipeline.cache import atomic_save_npz
from pipeline.stage import StageContext
from stages import affinity, crf, eval_pseudo, ir_labels, random_walk
from tests.helpers import link_stage_dirs
from tests.stages.test_refine import MASKS, build_base, labels_of, miou_vs_masks

torch.set_num_threads(1)


def learned_background(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible BAO background map: high off the objects, low on them, blurred, noisy, max 1."""
    fg = torch.from_numpy(((mask > 0) & (mask < 255)).astype(np.float32))[None, None]
    fg = torch.nn.functional.avg_pool2d(fg, 7, 1, 3)[0, 0].numpy()
    bg = np.clip(1.0 - 0.9 * fg + 0.05 * rng.random(mask.shape), 0, 1)
    return (bg / bg.max()).astype(np.float32)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Dataset, seeds, BAO background maps and an untrained classifier checkpoint."""
    def bao_background(tmp: Path, id_: str, mask: np.ndarray, rng: np.random.Generator) -> None:
        atomic_save_npz(tmp / "work/bao/bg" / f"{id_}.npz", bg=learned_background(mask, rng).astype(np.float16))

    return build_base(tmp_path_factory.mktemp("gtfree"), bao_background)


def make_ctx(tmp: Path, name: str, work: str = "work", **sections) -> StageContext:
    """Sections with NO background threshold at all: the learned path must not need one."""
    cfg = Config(dict(
        dataset=dict(type="custom", root=str(tmp / "data"), cache_dir=str(tmp / "cache")),
        runtime=dict(device="cpu", workers=1, amp=False, seed=0),
        classify=dict(backbone="mobilenet_v2", method="cam"),
        bao=dict(enabled=True),
        crf=dict(mode="labels", iters=5),
        ir_labels=dict(iters=5),
        affinity=dict(grid_stride=4, dims=(8, 8, 8), embed_dim=16, train_radius=4, epochs=10, batch_size=3,
                      lr=0.1, crop_size=32, resize_range=(48, 64), chunk=16),
        random_walk=dict(radius=3, beta=10, exp_times=5, flip=True, sem_seg_bg_thres="calib"),  # unused: learned
        eval_pseudo=dict(),
    ))
    for k, v in sections.items():
        if k in cfg:
            cfg[k].update(v)
        else:
            cfg[k] = v
    return StageContext(name=name, cfg=cfg, work_dir=tmp / work, log=logging.getLogger(f"test.{name}"))


def linked_ctx(tmp: Path, name: str, inputs: tuple[str, ...], work: str, **sections) -> StageContext:
    """:func:`make_ctx` in a new work dir whose input stage folders link to the shared ones under ``tmp/work``."""
    ctx = make_ctx(tmp, name, work=work, **sections)
    link_stage_dirs(ctx.work_dir, tmp / "work", inputs)
    return ctx


def test_learned_background_is_the_default_and_an_input(base):
    cfg = make_ctx(base, "crf").cfg
    assert crf.inputs(cfg) == ("seeds", "bao")
    assert ir_labels.inputs(cfg) == ("seeds", "bao")
    assert random_walk.inputs(cfg) == ("seeds", "affinity", "bao")
    cfg.bao.enabled = False
    with pytest.raises(ValueError, match=r"crf.background='learned'.*bao.enabled=False"):
        crf.inputs(cfg)
    cfg.crf.background = "threshold"
    assert crf.inputs(cfg) == ("seeds",)
    cfg.crf.bg_threshold = "calib"
    assert crf.inputs(cfg) == ("seeds", "eval_seeds")
    cfg.crf.background = "bogus"
    with pytest.raises(ValueError, match="crf.background must be one of"):
        crf.inputs(cfg)
    # the seeds' own background: random_walk only, and it reads neither BAO nor eval_seeds (sem_seg_bg_thres is
    # 'calib' in make_ctx and unused)
    cfg.random_walk.background = "seeds"
    assert random_walk.inputs(cfg) == ("seeds", "affinity")
    cfg.crf.background = "seeds"
    with pytest.raises(ValueError, match=r"crf.background must be one of \('learned', 'threshold'\)"):
        crf.inputs(cfg)


def test_seeds_background_is_one_minus_the_strongest_seed():
    from wsss.maps import seeds_background

    high = np.array([[[0.0, 0.2], [1.0, 0.5]], [[0.1, 0.9], [0.3, 0.5]]], np.float32)
    assert np.allclose(seeds_background(high, (2, 2)), [[0.9, 0.1], [0.0, 0.5]])
    assert seeds_background(high, (2, 2)).dtype == np.float32
    assert np.array_equal(seeds_background(np.zeros((0, 2, 3), np.float32), (2, 3)), np.ones((2, 3), np.float32))


def test_crf_learned_background_needs_no_threshold(base):
    ctx = make_ctx(base, "crf")
    res = crf.run(ctx)
    assert res["background"] == "learned" and res["bg_threshold"] is None
    assert res["provenance_label"] == "ground-truth-free"
    labs = labels_of(ctx.out_dir / "labels")
    assert set(labs) == {"a", "b", "c"} and miou_vs_masks(labs) > 70
    # a threshold in the config changes nothing on the learned path
    other = linked_ctx(base, "crf", ("seeds", "bao"), work="work_thr", crf=dict(bg_threshold=0.99))
    crf.run(other)
    for k, lab in labels_of(other.out_dir / "labels").items():
        np.testing.assert_array_equal(lab, labs[k])
    # the background really comes from the maps: a background map of zeros labels every seed pixel foreground
    zero = make_ctx(base, "crf", work="work_zero")
    shutil.copytree(base / "work/seeds", zero.work_dir / "seeds")
    for id_ in MASKS:
        atomic_save_npz(zero.work_dir / "bao/bg" / f"{id_}.npz", bg=np.zeros(MASKS[id_].shape, np.float16))
    crf.run(zero)
    assert all((lab > 0).mean() > 0.9 for lab in labels_of(zero.out_dir / "labels").values())
    # probability unary on the learned background
    pctx = linked_ctx(base, "crf", ("seeds", "bao"), work="work_probs", crf=dict(mode="probs", bilateral=(80, 13, 10)))
    crf.run(pctx)
    assert miou_vs_masks(labels_of(pctx.out_dir / "labels")) > 60


def test_learned_background_map_errors(base, tmp_path):
    ctx = make_ctx(base, "crf", work=str(tmp_path / "w"))
    shutil.copytree(base / "work/seeds", ctx.work_dir / "seeds")
    shutil.copytree(base / "work/bao", ctx.work_dir / "bao")
    (ctx.work_dir / "bao/bg/b.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"bg/b\.npz: learned background map missing"):
        crf.run(ctx)
    atomic_save_npz(ctx.work_dir / "bao/bg/b.npz", bg=np.zeros((5, 5), np.float16))
    with pytest.raises(ValueError, match=r"b\.npz: background map is 5x5"):
        crf.run(ctx)


def test_ir_labels_affinity_random_walk_learned(base):
    ctx = make_ctx(base, "ir_labels")
    res = ir_labels.run(ctx)
    assert res["background"] == "learned" and (res["conf_fg"], res["conf_bg"]) == (1.25, 0.5)
    fr = res["confident_fractions_of_computed"]
    assert 0 < fr["ignore_fraction"] < 0.7 and fr["bg_fraction"] > 0.2 and fr["fg_fraction"] > 0.1
    for k, lab in labels_of(ctx.out_dir / "labels").items():
        gt = MASKS[k]
        known = (lab != 255) & (gt != 255)
        assert (lab[known] == gt[known]).mean() > 0.95  # confident regions are right (255 between them: above)
    # wider scales -> fewer confident pixels (the scales, not a threshold, set the band)
    wide = linked_ctx(base, "ir_labels", ("seeds", "bao"),
                      work="work_wide", ir_labels=dict(conf_fg_scale=2.0, conf_bg_scale=0.2))
    wres = ir_labels.run(wide)
    assert wres["confident_fractions_of_computed"]["ignore_fraction"] > fr["ignore_fraction"]

    affinity.run(make_ctx(base, "affinity"))
    rctx = make_ctx(base, "random_walk")
    out = random_walk.run(rctx)
    assert out["bg_mode"] == "learned" and out["sem_seg_bg_thres"] is None
    labs = labels_of(rctx.out_dir / "labels")
    for k, lab in labs.items():
        assert set(np.unique(lab)) <= set(np.unique(MASKS[k])) | {0}
    assert miou_vs_masks(labs) > 40
    # class_norm None -> 'per_class' with the learned background; 'global' (IRN) divides all classes by one max,
    # which is >= each class's own: from the same walk, every pixel 'global' calls foreground stays foreground
    # under 'per_class' (guaranteed); per class no more pixels under 'global' (true here, where the two objects
    # of image c are apart; a class could in general lose pixels to a neighbour raised more under 'per_class')
    assert out["class_norm"] == "per_class"
    gctx = linked_ctx(base, "random_walk", ("seeds", "bao", "affinity"),
                      work="work_global", random_walk=dict(class_norm="global"))
    assert random_walk.run(gctx)["class_norm"] == "global"
    for k, lab in labels_of(gctx.out_dir / "labels").items():
        assert set(np.unique(lab)) <= set(np.unique(MASKS[k])) | {0}
        assert not ((lab > 0) & (labs[k] == 0)).any()
        for c in set(np.unique(lab)) - {0}:
            assert (lab == c).sum() <= (labs[k] == c).sum()
    bad = make_ctx(base, "random_walk", work="work_bad", random_walk=dict(class_norm="local"))
    with pytest.raises(ValueError, match="random_walk.class_norm must be None or one of"):
        random_walk.run(bad)

    # label_crf: the walked label map through the label CRF, i.e. wsss.crf.label_map_crf of the plain labels
    assert out["label_crf"] is None
    params = dict(gt_prob=0.8, gaussian=[3, 3], bilateral=[30, 5, 4], iters=5)
    cctx = linked_ctx(base, "random_walk", ("seeds", "bao", "affinity"),
                      work="work_lcrf", random_walk=dict(label_crf=params))
    assert random_walk.run(cctx)["label_crf"] == dict(gt_prob=0.8, gaussian=(3, 3), bilateral=(30, 5, 4), iters=5)
    from wsss.crf import label_map_crf
    from wsss.datasets import read_image

    crfed = labels_of(cctx.out_dir / "labels")
    for k, lab in labs.items():
        keys = np.array([c - 1 for c in np.unique(MASKS[k]) if c not in (0, 255)])
        image = read_image(base / "data/JPEGImages" / f"{k}.jpg")
        assert np.array_equal(crfed[k], label_map_crf(image, lab, keys, random_walk.label_crf(dict(label_crf=params))))
    assert any(not np.array_equal(crfed[k], labs[k]) for k in labs)  # the CRF moved some pixels
    off = linked_ctx(base, "random_walk", ("seeds", "bao", "affinity"),
                     work="work_off", random_walk=dict(label_crf=dict(enabled=False, **params)))
    assert random_walk.run(off)["label_crf"] is None
    for k, lab in labels_of(off.out_dir / "labels").items():
        assert np.array_equal(lab, labs[k])  # enabled=False: the walk's own labels
    for bad_crf, msg in ((dict(gt_prob=0.8), "needs each of"), (dict(params, sxy=3), "a dict of 'enabled' and"),
                         ({**params, "gt_prob": 1.0}, "gt_prob must be"),
                         ({**params, "bilateral": (30, 5)}, r"bilateral \(sxy, srgb, compat\)")):
        with pytest.raises(ValueError, match=f"random_walk.label_crf.*{msg}"):
            random_walk.run(make_ctx(base, "random_walk", work="work_bad", random_walk=dict(label_crf=bad_crf)))

    # background='seeds': the same walk with 1 - max seed as its background channel, in a work dir without BAO;
    # identical to the learned path given that map as bao/bg (float32, scale 1)
    sctx = linked_ctx(base, "random_walk", ("seeds", "affinity"),
                      work="work_seedsbg", random_walk=dict(background="seeds"))
    sres = random_walk.run(sctx)
    assert (sres["background"], sres["bg_mode"], sres["class_norm"]) == ("seeds", "learned", "per_class")
    assert sres["provenance_label"] == "ground-truth-free" and sres["background_scale"] is None
    seeded = labels_of(sctx.out_dir / "labels")
    assert set(seeded) == set(labs) and miou_vs_masks(seeded) > 40
    from wsss.maps import load_seeds, seeds_background

    lctx = linked_ctx(base, "random_walk", ("seeds", "affinity"), work="work_seedsbg_as_bao")
    for k in labs:
        seeds = load_seeds(base / "work/seeds/maps" / f"{k}.npz")
        atomic_save_npz(lctx.work_dir / "bao/bg" / f"{k}.npz", bg=seeds_background(seeds.high, seeds.size))
    random_walk.run(lctx)
    assert all(np.array_equal(lab, seeded[k]) for k, lab in labels_of(lctx.out_dir / "labels").items())
    assert any(not np.array_equal(seeded[k], labs[k]) for k in labs)  # another background than BAO's map

    # eval_pseudo labels both paths ground-truth-free
    ectx = make_ctx(base, "eval_pseudo")
    for s in ("crf", "random_walk"):
        (ectx.work_dir / s / "results.json").write_text(json.dumps({"provenance_label": "ground-truth-free"}))
    ev = eval_pseudo.run(ectx)
    assert ev["crf_kind"] == ev["random_walk_kind"] == "ground-truth-free"
    assert [r["kind"] for r in ev["rows"]] == ["ground-truth-free"] * 2


def test_threshold_from_calib(base, tmp_path):
    ctx = make_ctx(base, "crf", work=str(tmp_path / "w"), crf=dict(background="threshold", bg_threshold="calib"))
    shutil.copytree(base / "work/seeds", ctx.work_dir / "seeds")
    with pytest.raises(FileNotFoundError, match=r"crf.bg_threshold='calib' needs .*eval_seeds/results.json"):
        crf.run(ctx)
    (ctx.work_dir / "eval_seeds").mkdir()
    (ctx.work_dir / "eval_seeds/results.json").write_text(json.dumps({"calib_threshold": None}))
    with pytest.raises(ValueError, match="no calib_threshold"):
        crf.run(ctx)
    (ctx.work_dir / "eval_seeds/results.json").write_text(json.dumps({"calib_threshold": 0.3}))
    res = crf.run(ctx)
    assert res["bg_threshold"] == 0.3 and res["provenance_label"] == "tuned with ground truth (on calib)"
    fixed = make_ctx(base, "crf", work=str(tmp_path / "f"), crf=dict(background="threshold", bg_threshold=0.3))
    shutil.copytree(base / "work/seeds", fixed.work_dir / "seeds")
    crf.run(fixed)
    ref = labels_of(fixed.out_dir / "labels")
    for k, lab in labels_of(ctx.out_dir / "labels").items():
        np.testing.assert_array_equal(lab, ref[k])
    # ir_labels: the calibration threshold times the scales
    ictx = make_ctx(base, "ir_labels", work=str(tmp_path / "w"),
                    ir_labels=dict(background="threshold", conf_fg_thres="calib", conf_bg_thres="calib"))
    res = ir_labels.run(ictx)
    assert res["conf_fg"] == pytest.approx(0.375) and res["conf_bg"] == pytest.approx(0.15)
    assert res["provenance"] == "calib"


def test_learned_background_scale(base, tmp_path):
    """``learned_background.scale`` s: every stage that reads the BAO map reads ``s * b``, exactly as if BAO had
    written ``s * b`` (halving is exact in float16, so the labels must be equal pixel for pixel); s < 1 lets the
    class maps win more pixels; a config change reruns exactly the stages that read the map."""
    from stages import eval_seeds
    from wsss.background import UserInputError

    halved = tmp_path / "halved"
    shutil.copytree(base / "work/seeds", halved / "seeds")
    for id_ in MASKS:
        with np.load(base / "work/bao/bg" / f"{id_}.npz") as z:
            atomic_save_npz(halved / "bao/bg" / f"{id_}.npz", bg=z["bg"] * np.float16(0.5))
    for stage in (crf, ir_labels):
        scaled = linked_ctx(base, stage.NAME, ("seeds", "bao"), work=str(tmp_path / f"scaled_{stage.NAME}"),
                            learned_background=dict(scale=0.5))
        res = stage.run(scaled)
        assert res["background_scale"] == 0.5
        stage.run(make_ctx(base, stage.NAME, work=str(halved)))  # scale 1 on the halved maps
        plain = linked_ctx(base, stage.NAME, ("seeds", "bao"), work=str(tmp_path / f"plain_{stage.NAME}"))
        stage.run(plain)
        ref, one = labels_of(halved / stage.NAME / "labels"), labels_of(plain.out_dir / "labels")
        got = labels_of(scaled.out_dir / "labels")
        assert set(got) == set(MASKS)
        for k, lab in got.items():
            np.testing.assert_array_equal(lab, ref[k])
        fg = lambda labs: sum(int(((v > 0) & (v < 255)).sum()) for v in labs.values())  # noqa: E731
        assert fg(got) > fg(one)  # a halved background: more foreground
    for bad in (0, -1, "0.5", True, 5):
        with pytest.raises(UserInputError, match=r"learned_background.scale must be a number in \(0, 4\]"):
            crf.run(make_ctx(base, "crf", work=str(tmp_path / "bad"), learned_background=dict(scale=bad)))
    for stage in (eval_seeds, crf, ir_labels, random_walk):
        assert "learned_background" in stage.CONFIG_KEYS
