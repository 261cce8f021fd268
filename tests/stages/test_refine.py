"""Refinement stages on a tiny synthetic work dir: crf (both modes), ir_labels, affinity, random_walk,
eval_pseudo; resume; and the bad-input errors (missing seeds, foreign class list, size mismatch).
The threshold path is tested here with background='threshold'; the learned (default) path in test_gtfree.py."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

import wsss  # noqa: F401  (stack fixes)
from pipeline.stage import StageContext
from stages import affinity, crf, eval_pseudo, ir_labels, random_walk
from tests.helpers import blob_mask, link_stage_dirs, make_voc_layout
from wsss.datasets import read_label_png
from wsss.maps import save_seeds

torch.set_num_threads(1)
CLASSES = ["background", "cat", "dog"]
H, W = 40, 58  # not multiples of the strides: exercises the ceil grids
MASKS = {
    "a": blob_mask(H, W, [(1, 5, 4, 30, 24)]),
    "b": blob_mask(H, W, [(2, 10, 30, 36, 54)]),
    "c": blob_mask(H, W, [(1, 3, 3, 20, 20), (2, 22, 34, 38, 55)]),
}


def seeds_from_mask(mask: np.ndarray, rng: np.random.Generator) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Noisy, blurred, partial class maps (peak inside the object) as the seeds stage would give."""
    keys = [int(v) - 1 for v in np.unique(mask) if 0 < v < 255]
    high = []
    for k in keys:
        m = torch.from_numpy((mask == k + 1).astype(np.float32))[None, None]
        m = torch.nn.functional.avg_pool2d(m, 9, 1, 4)[0, 0].numpy() * 0.9 + 0.05 * rng.random(mask.shape)
        high.append(np.clip(m, 0, 1))
    high = np.stack(high).astype(np.float32)
    low = torch.nn.functional.avg_pool2d(torch.from_numpy(high)[None], 4, 4, ceil_mode=True)[0].numpy()
    return keys, low, high


def build_base(tmp: Path, per_image: Callable[[Path, str, np.ndarray, np.random.Generator], None] | None = None
               ) -> Path:
    """Dataset + seeds + an untrained classifier checkpoint under ``tmp``; ``per_image(tmp, id, mask, rng)`` writes
    more per-image inputs (test_gtfree's BAO maps) from the same random stream, right after each image's seeds."""
    from wsss.models import build_classifier, save_classifier

    make_voc_layout(tmp / "data", MASKS, classes=CLASSES)
    rng = np.random.default_rng(0)
    for id_, mask in MASKS.items():
        save_seeds(tmp / "work/seeds/maps" / f"{id_}.npz", *seeds_from_mask(mask, rng))
        if per_image is not None:
            per_image(tmp, id_, mask, rng)
    torch.manual_seed(0)
    clf = build_classifier(dict(backbone="mobilenet_v2", pretrained=False, method="cam"), 2)
    save_classifier(tmp / "work/classify/model.pth", clf, CLASSES)
    return tmp


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The built inputs, shared (read-only) by the tests."""
    return build_base(tmp_path_factory.mktemp("refine"))


def make_ctx(tmp: Path, name: str, workers: int = 1, work: str = "work", **sections) -> StageContext:
    cfg = Config(dict(
        dataset=dict(type="custom", root=str(tmp / "data"), cache_dir=str(tmp / "cache")),
        runtime=dict(device="cpu", workers=workers, amp=False, seed=0),
        classify=dict(backbone="mobilenet_v2", method="cam"),
        crf=dict(background="threshold", mode="labels", bg_threshold=0.25, iters=5),
        ir_labels=dict(background="threshold", conf_fg_thres=0.30, conf_bg_thres=0.05, iters=5),
        affinity=dict(grid_stride=4, dims=(8, 8, 8), embed_dim=16, train_radius=4, epochs=30, batch_size=3,
                      lr=0.1, crop_size=32, resize_range=(48, 64), chunk=16),
        random_walk=dict(background="threshold", radius=3, beta=10, exp_times=5, sem_seg_bg_thres=0.25, flip=True),
        eval_pseudo=dict(),
    ))
    for k, v in sections.items():
        cfg[k].update(v)
    return StageContext(name=name, cfg=cfg, work_dir=tmp / work, log=logging.getLogger(f"test.{name}"))


def labels_of(d: Path) -> dict[str, np.ndarray]:
    return {p.stem: read_label_png(p) for p in sorted(d.glob("*.png"))}


def miou_vs_masks(labels: dict[str, np.ndarray]) -> float:
    from wsss.metrics import ConfusionMatrix, summarize

    cm = ConfusionMatrix(3)
    for k, lab in labels.items():
        cm.update(lab, MASKS[k])
    return summarize(cm, CLASSES)["mIoU"]


def test_crf_stage_both_modes_pool_and_resume(base):
    ctx = make_ctx(base, "crf", workers=2)
    res = crf.run(ctx)
    assert res["computed"] == 3 and res["mode"] == "labels"
    labs = labels_of(ctx.out_dir / "labels")
    assert set(labs) == {"a", "b", "c"}
    for k, lab in labs.items():
        assert lab.shape == (H, W)
        assert set(np.unique(lab)) <= set(np.unique(MASKS[k])) | {0}  # only the image's own classes
    assert miou_vs_masks(labs) > 70
    assert crf.progress(ctx) == (3, 3)
    # resume: one output lost -> only that one is recomputed, the others are left alone
    mtime = (ctx.out_dir / "labels/a.png").stat().st_mtime_ns
    (ctx.out_dir / "labels/b.png").unlink()
    assert crf.progress(ctx) == (2, 3)
    assert crf.run(ctx)["computed"] == 1
    assert (ctx.out_dir / "labels/a.png").stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(read_label_png(ctx.out_dir / "labels/b.png"), labs["b"])
    # probability unary, both background scores
    for bg in ("threshold", "power"):
        pctx = make_ctx(base, "crf", work=f"work_{bg}", crf=dict(mode="probs", bg=bg, bg_power=4.0,
                                                               bilateral=(80, 13, 10)))
        link_stage_dirs(pctx.work_dir, base / "work", ("seeds",))
        assert crf.run(pctx)["computed"] == 3
        plabs = labels_of(pctx.out_dir / "labels")
        assert miou_vs_masks(plabs) > 60, bg


def test_ir_labels_confident_regions(base):
    ctx = make_ctx(base, "ir_labels")
    res = ir_labels.run(ctx)
    assert res["computed"] == 3
    fr = res["confident_fractions_of_computed"]
    assert 0 < fr["ignore_fraction"] < 0.7 and fr["bg_fraction"] > 0.2 and fr["fg_fraction"] > 0.1
    for k, lab in labels_of(ctx.out_dir / "labels").items():
        gt = MASKS[k]
        known = (lab != 255) & (gt != 255)
        assert (lab[known] == gt[known]).mean() > 0.95  # confident labels are almost always right
        assert (lab == 255).any()  # the uncertain band in between is ignored


def test_affinity_random_walk_eval(base):
    ir = make_ctx(base, "ir_labels")
    if not (ir.out_dir / "labels/c.png").exists():
        ir_labels.run(ir)
    ctx = make_ctx(base, "affinity")
    res = affinity.run(ctx)
    assert (ctx.out_dir / "model.pth").is_file() and (ctx.out_dir / "checkpoints/latest.pth").is_file()
    assert res["num_offsets"] == 22 and res["grid_stride"] == 4
    assert res["final"]["n_neg"] > 0 and res["final"]["n_bg"] > 0 and np.isfinite(res["final"]["loss"])
    # training resumes from its checkpoint: a finished run does no more iterations
    assert affinity.run(ctx)["iterations"] == res["iterations"]
    # cached frozen features (the demo's fast path): trains the head only, loss below a constant affinity's 0.69
    cctx = make_ctx(base, "affinity", work="work_cache", affinity=dict(
        grid_stride=4, dims=(8, 8, 8, 8), levels=(0, 1, 2, 3), embed_dim=16, train_radius=4, epochs=40, batch_size=3,
        lr=0.5, crop_size=32, cache_features=True, train_chunk=0))
    link_stage_dirs(cctx.work_dir, base / "work", ("classify", "ir_labels"))
    cres = affinity.run(cctx)
    assert cres["cached_features"] and (cctx.out_dir / "model.pth").is_file()
    assert cres["final"]["loss"] < 0.6 and cres["final"]["n_neg"] > 0

    rctx = make_ctx(base, "random_walk")
    out = random_walk.run(rctx)
    assert out["computed"] == 3 and out["steps"] == 32
    labs = labels_of(rctx.out_dir / "labels")
    for k, lab in labs.items():
        assert lab.shape == (H, W) and set(np.unique(lab)) <= set(np.unique(MASKS[k])) | {0}
    assert miou_vs_masks(labs) > 40
    assert random_walk.run(rctx)["computed"] == 0  # resume: nothing left to do

    # random_walk.max_image_side: the walk runs on the image scaled to a 40 px long side (a 10x7 grid instead of
    # 15x10); the labels are still full size and still find the objects (a tiny grid: a lower bar)
    bctx = make_ctx(base, "random_walk", work="work_bound", random_walk=dict(max_image_side=40))
    link_stage_dirs(bctx.work_dir, base / "work", ("seeds", "affinity"))
    random_walk.run(bctx)
    blabs = labels_of(bctx.out_dir / "labels")
    assert all(lab.shape == (H, W) for lab in blabs.values()) and miou_vs_masks(blabs) > 30
    assert any((blabs[k] != labs[k]).any() for k in labs)

    # keep_low_confidence_as_ignore marks some pixels 255; PSA's walked power background and full-res seeds
    for i, opts in enumerate([dict(), dict(bg_mode="power", bg_power=2.0, seed_source="high")]):
        ictx = make_ctx(base, "random_walk", work=f"work_ign{i}",
                        random_walk=dict(keep_low_confidence_as_ignore=True, ignore_threshold=0.6, **opts))
        link_stage_dirs(ictx.work_dir, base / "work", ("seeds", "affinity"))
        random_walk.run(ictx)
        ilabs = labels_of(ictx.out_dir / "labels")
        assert any((lab == 255).any() for lab in ilabs.values()), opts
        assert all(((lab == 255) | (lab == labs[k]) | (lab == 0) | (labs[k] == 0)).all() for k, lab in ilabs.items())

    # evaluation of both paths, next to the seed numbers when eval_seeds has run
    if not (base / "work/crf/labels/c.png").exists():
        crf.run(make_ctx(base, "crf"))
    (base / "work/eval_seeds").mkdir(exist_ok=True)
    (base / "work/eval_seeds/results.json").write_text('{"best_miou": 55.5, "best_threshold": 0.3, "wall_s": 1}')
    ectx = make_ctx(base, "eval_pseudo")
    ev = eval_pseudo.run(ectx)
    assert ev["seeds"]["best_miou"] == 55.5
    assert ev["crf_miou"] == pytest.approx(miou_vs_masks(labels_of(base / "work/crf/labels")))
    assert ev["random_walk_miou"] == pytest.approx(miou_vs_masks(labs))
    full = __import__("json").loads((ectx.out_dir / "eval.json").read_text())
    assert len(full["crf"]["iou"]) == 3 and "confusion_matrix" in full["random_walk"]


def test_eval_pseudo_without_masks_skips(base, tmp_path):
    import shutil

    shutil.copytree(base / "data", tmp_path / "data")
    shutil.rmtree(tmp_path / "data/SegmentationClass")
    (tmp_path / "data/labels.json").write_text('{"a": ["cat"], "b": ["dog"], "c": ["cat", "dog"]}')
    ctx = make_ctx(tmp_path, "eval_pseudo")
    ctx.cfg.dataset.label_file = "labels.json"
    res = eval_pseudo.run(ctx)
    assert res["skipped"] is True and "no ground-truth masks" in res["reason"]
    assert "crf_miou" not in res


def _copy_work(base: Path, tmp: Path) -> StageContext:
    import shutil

    shutil.copytree(base / "work/seeds", tmp / "work/seeds")
    return make_ctx(base, "crf", work=str(tmp / "work"))


def test_bad_inputs(base, tmp_path):
    ctx = _copy_work(base, tmp_path)
    # missing seeds: a clear list and a hint, before anything is computed
    (ctx.work_dir / "seeds/maps/b.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 3 seed files missing.*\['b'\].*run the seeds stage"):
        crf.run(ctx)
    assert not (ctx.out_dir / "labels").exists()
    with pytest.raises(FileNotFoundError, match="seeds stage"):
        ir_labels.run(make_ctx(base, "ir_labels", work=str(tmp_path / "work")))
    # seeds of another class list (key out of range): the file is named; earlier outputs survive
    keys, low, high = seeds_from_mask(MASKS["b"], np.random.default_rng(1))
    save_seeds(ctx.work_dir / "seeds/maps/b.npz", [7], low, high)
    ctx.cfg.runtime.workers = 1
    (ctx.out_dir / "labels").mkdir(parents=True)
    from wsss.maps import save_label_png

    save_label_png(ctx.out_dir / "labels/a.png", MASKS["a"])
    with pytest.raises(ValueError, match=r"b\.npz.*outside the 2 foreground classes"):
        crf.run(ctx)
    np.testing.assert_array_equal(read_label_png(ctx.out_dir / "labels/a.png"), MASKS["a"])
    # image-size mismatch between seeds and image
    save_seeds(ctx.work_dir / "seeds/maps/b.npz", keys, low[:, :-1], high[:, :-4])
    with pytest.raises(ValueError, match=r"b\.npz: seed maps are 58x36 but the image .*b\.jpg is 58x40"):
        crf.run(ctx)
    # the random walk refuses the same way, and names a missing affinity model
    rctx = make_ctx(base, "random_walk", work=str(tmp_path / "work"))
    with pytest.raises(FileNotFoundError, match="affinity net checkpoint is missing"):
        random_walk.run(rctx)
