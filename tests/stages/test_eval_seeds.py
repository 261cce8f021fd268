"""eval_seeds on hand-made seeds and masks: exact mIoU at a threshold, the best threshold, plot and JSON."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

import wsss  # noqa: F401  (stack fixes)
from pipeline.stage import StageContext
from stages import eval_seeds
from wsss.maps import save_label_png, save_seeds

CLASSES = ["background", "cat", "dog"]


def _columns(values: list[int]) -> np.ndarray:
    """A 4x4 map whose columns hold ``values``/255 (exactly representable in the uint8 seed format)."""
    return np.tile(np.asarray(values, np.float32) / 255.0, (4, 1))


def make_dataset(root: Path, masks: bool = True) -> None:
    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets/Segmentation").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "ImageSets/Segmentation/train.txt").write_text("a\nb\n")
    for i in ("a", "b"):
        Image.fromarray(np.full((4, 4, 3), 100, np.uint8)).save(root / "JPEGImages" / f"{i}.jpg")
    if masks:
        (root / "SegmentationClass").mkdir()
        ma = np.zeros((4, 4), np.uint8)
        ma[:, :2] = 1  # cat on the left half
        mb = np.zeros((4, 4), np.uint8)
        mb[:, 0] = 2  # dog in the first column
        mb[0, 3] = 255  # one ignored pixel
        save_label_png(root / "SegmentationClass/a.png", ma)
        save_label_png(root / "SegmentationClass/b.png", mb)
    else:
        (root / "labels.json").write_text(json.dumps({"a": ["cat"], "b": ["dog"]}))


def make_seeds(work: Path) -> None:
    d = work / "seeds/maps"
    # a: cat columns 0.8, 0.361, 0.302, 0  -> perfect only for 0.302 <= t < 0.361, i.e. t = 0.35 of the sweep
    save_seeds(d / "a.npz", [0], _columns([204, 92, 77, 0])[None][:, ::4, ::4], _columns([204, 92, 77, 0])[None])
    # b: dog columns 0.6, 0.2, 0, 0 -> perfect for 0.2 <= t < 0.6
    save_seeds(d / "b.npz", [1], _columns([153, 51, 0, 0])[None][:, ::4, ::4], _columns([153, 51, 0, 0])[None])


def make_ctx(tmp: Path, bao: bool = False, workers: int = 1, masks: bool = True, **section) -> StageContext:
    root, work = tmp / "data", tmp / "work"
    if not root.exists():
        make_dataset(root, masks)
        make_seeds(work)
    ds = dict(type="custom", root=str(root), cache_dir=str(tmp / "cache"))
    if not masks:
        ds.update(mask_dir=None, label_file="labels.json")
    cfg = Config(dict(dataset=ds, eval_seeds=dict(threshold_range=(0.05, 0.60, 0.05), **section),
                      bao=dict(enabled=bao), runtime=dict(workers=workers)))
    return StageContext(name="eval_seeds", cfg=cfg, work_dir=work, log=logging.getLogger("test"))


def test_thresholds_from():
    assert eval_seeds.thresholds_from(dict(threshold_range=(0.05, 0.60, 0.05))) == pytest.approx(
        [0.05 * k for k in range(1, 13)])
    assert eval_seeds.thresholds_from(dict(thresholds=[0.3, 0.1])) == [0.1, 0.3]
    with pytest.raises(ValueError, match="threshold"):
        eval_seeds.thresholds_from(dict(thresholds=[1.5]))


def test_inputs_follow_bao_flag():
    assert eval_seeds.inputs(Config(dict(bao=dict(enabled=True)))) == ("seeds", "bao")
    assert eval_seeds.inputs(Config(dict(bao=dict(enabled=False)))) == ("seeds",)


@pytest.mark.parametrize("workers", [1, 2])
def test_exact_miou_best_threshold_plot_json(tmp_path, workers):
    ctx = make_ctx(tmp_path, workers=workers)
    res = eval_seeds.run(ctx)
    ths = res["thresholds"]
    assert len(ths) == 12 and ths[0] == pytest.approx(0.05) and ths[-1] == pytest.approx(0.60)
    # t = 0.10: a predicts cat on 3 columns (12 px, 8 right), b predicts dog on 2 columns (8 px, 4 right);
    # background: tp 4 + 7 = 11, gt 8 + 11 = 19, pred 4 + 7 = 11 -> IoU 11/19; cat 8/12; dog 4/8.
    k = ths.index(pytest.approx(0.10))
    assert res["miou_per_threshold"][k] == pytest.approx(100 * (11 / 19 + 8 / 12 + 4 / 8) / 3, abs=1e-9)
    assert res["best_threshold"] == pytest.approx(0.35)
    assert res["best_miou"] == pytest.approx(100.0)
    assert "ground truth" in res["best_threshold_note"]
    assert res["bao_miou"] is None
    assert res["num_images"] == 2
    png = ctx.out_dir / "miou_vs_threshold.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    detail = json.loads((ctx.out_dir / "eval.json").read_text())
    assert detail["best_threshold"] == pytest.approx(0.35)
    assert detail["best"]["confusion_matrix"]["matrix"] == [[19, 0, 0], [0, 8, 0], [0, 0, 4]]
    assert detail["per_threshold"][k]["iou"] == pytest.approx([100 * 11 / 19, 100 * 8 / 12, 50.0])
    assert detail["best"]["precision"] == [100.0, 100.0, 100.0]


def test_bao_result_beside_the_sweep(tmp_path):
    ctx = make_ctx(tmp_path, bao=True)
    labels = ctx.work_dir / "bao/labels"
    ma = np.zeros((4, 4), np.uint8)
    ma[:, :2] = 1
    save_label_png(labels / "a.png", ma)  # perfect
    save_label_png(labels / "b.png", np.zeros((4, 4), np.uint8))  # misses the dog
    res = eval_seeds.run(ctx)
    # background: tp 8 + 11, gt 19, pred 8 + 15 -> 19/23; cat 1; dog 0
    assert res["bao_miou"] == pytest.approx(100 * (19 / 23 + 1 + 0) / 3, abs=1e-9)
    assert json.loads((ctx.out_dir / "eval.json").read_text())["bao"]["iou"][2] == 0.0


def test_missing_bao_labels_are_listed(tmp_path):
    ctx = make_ctx(tmp_path, bao=True)
    with pytest.raises(FileNotFoundError, match=r"2 of 2 BAO label maps missing.*'a', 'b'"):
        eval_seeds.run(ctx)


def test_missing_seed_files_are_listed(tmp_path):
    ctx = make_ctx(tmp_path)
    (ctx.work_dir / "seeds/maps/b.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 seed files missing.*\['b'\]"):
        eval_seeds.run(ctx)


def test_seeds_from_another_class_list(tmp_path):
    ctx = make_ctx(tmp_path)
    save_seeds(ctx.work_dir / "seeds/maps/a.npz", [5], np.zeros((1, 1, 1)), np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="different class list"):
        eval_seeds.run(ctx)
    save_seeds(ctx.work_dir / "seeds/maps/a.npz", [1], np.zeros((1, 1, 1)), np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match=r"a.npz: seed keys \[1\] differ from the image's labels \[0\]"):
        eval_seeds.run(ctx)


def test_no_masks_is_skipped_not_faked(tmp_path):
    ctx = make_ctx(tmp_path, masks=False)
    res = eval_seeds.run(ctx)
    assert res["skipped"] is True and "no ground-truth masks" in res["reason"]
    assert not (ctx.out_dir / "eval.json").exists()


def test_threshold_chosen_on_calib_and_reported_without_it(tmp_path):
    """A declared calibration split chooses the threshold; the reported number is on the other images only."""
    ctx = make_ctx(tmp_path)
    (tmp_path / "data/ImageSets/Segmentation/calib.txt").write_text("a\n")
    ctx.cfg.calib = dict(split="calib")
    res = eval_seeds.run(ctx)
    assert res["num_images"] == 1 and res["num_calib_images"] == 1 and res["calib_excluded"]
    # a alone is perfect only for 0.302 <= t < 0.361 -> t = 0.35; b (reported) is perfect there too
    assert res["calib_threshold"] == pytest.approx(0.35) and res["best_threshold"] == pytest.approx(0.35)
    assert res["best_miou"] == pytest.approx(100.0)
    assert res["best_kind"] == eval_seeds.TUNED and "calibration split (1 images)" in res["best_threshold_note"]
    # the oracle (b's own best: the first perfect threshold, 0.20) is kept apart, for reference only
    assert res["oracle"]["threshold"] == pytest.approx(0.20)
    kinds = {r["kind"] for r in res["rows"]}
    assert kinds == {eval_seeds.TUNED, eval_seeds.ORACLE}
    # b's numbers alone: t = 0.10 predicts dog on 2 columns (4 right of 8): bg 7/11, dog 4/8 (no cat anywhere)
    k = res["thresholds"].index(pytest.approx(0.10))
    assert res["miou_per_threshold"][k] == pytest.approx(100 * (7 / 11 + 4 / 8) / 2, abs=1e-9)
    detail = json.loads((ctx.out_dir / "eval.json").read_text())
    assert detail["calib_ids"] == ["a"]


def test_without_calib_the_best_threshold_is_an_oracle(tmp_path):
    res = eval_seeds.run(make_ctx(tmp_path))
    assert res["calib_threshold"] is None and res["best_kind"] == eval_seeds.ORACLE and res["num_calib_images"] == 0


def test_learned_background_against_the_seed_maps(tmp_path):
    """The refinement stages' default labels, argmax [BAO background map, seed maps], are scored beside BAO."""
    from pipeline.cache import atomic_save_npz

    ctx = make_ctx(tmp_path, bao=True)
    for id_, cols in (("a", [0.1, 0.1, 0.5, 0.5]), ("b", [0.1, 0.5, 0.5, 0.5])):
        save_label_png(ctx.work_dir / f"bao/labels/{id_}.png", np.zeros((4, 4), np.uint8))
        atomic_save_npz(ctx.work_dir / f"bao/bg/{id_}.npz", bg=np.tile(np.float32(cols), (4, 1)).astype(np.float16))
    res = eval_seeds.run(ctx)
    assert res["learned_bg_seeds_miou"] == pytest.approx(100.0)
    assert {"name": "seeds, learned background map vs the seed maps", "mIoU": pytest.approx(100.0),
            "kind": eval_seeds.GT_FREE} in res["rows"]
