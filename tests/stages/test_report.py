"""The report stage on a small work dir holding the files the stages write: numbers, images, missing pieces,
and a headless-Chromium render check of the result."""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

import wsss  # noqa: F401  (stack fixes)
from pipeline.cache import atomic_write_json
from pipeline.stage import StageContext
from stages import report
from tests.helpers import blob_mask, make_voc_layout
from wsss.maps import load_seeds, save_label_png, save_seeds, seed_labels
from wsss.metrics import ConfusionMatrix, summarize
from wsss.report.examples import image_miou, pick_sample
from wsss.report.page import referenced_images

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["background", "cat", "dog"]
H, W = 24, 32
TRAIN = {f"t{k}": blob_mask(H, W, [(1 + k % 2, 4, 3 + k, 16, 14 + k)] + ([(2, 14, 20, 22, 30)] if k == 2 else []))
         for k in range(5)}
VAL = {f"v{k}": blob_mask(H, W, [(2 - k % 2, 6, 6, 20, 20 + k)]) for k in range(3)}
BAD = "t3"  # its random-walk pseudo-label is all background: it must be among the worst


def _summ(pairs):
    cm = ConfusionMatrix(len(CLASSES))
    for p, g in pairs:
        cm.update(p, g)
    return summarize(cm, CLASSES)


def _seeds_for(mask: np.ndarray) -> tuple[list[int], np.ndarray]:
    keys = sorted({int(v) - 1 for v in np.unique(mask) if 0 < v < 255})
    high = np.stack([np.where(mask == k + 1, 0.8, 0.1).astype(np.float32) for k in keys])
    return keys, high


def build_work(tmp: Path, full: bool = True) -> tuple[Path, Path]:
    """Dataset + work dir with what classify .. eval_segment write (only classify + seeds when not ``full``)."""
    root, work = tmp / "data", tmp / "work"
    make_voc_layout(root, TRAIN, "train", CLASSES)
    make_voc_layout(root, VAL, "val", CLASSES, seed=1)
    # classify: results + per-step log
    atomic_write_json(work / "classify/results.json", {"method": "bas", "epochs": 2, "iterations": 20,
                                                       "images_per_s": 41.5, "wall_s": 12.5, "peak_rss_mb": 987.0})
    with open(work / "classify/train_log.jsonl", "w") as f:
        for it in range(1, 21):
            f.write(json.dumps({"iter": it, "epoch": 1 + it // 11, "lr": 0.01 * (1 - it / 21), "loss": 2.0 / it,
                                "cls": 1.0 / it, "area": 0.3 + 0.01 * it}) + "\n")
        f.write('{"iter": 21, "loss"')  # a truncated last line (killed writer) must be ignored
    # seeds
    for id_, m in TRAIN.items():
        keys, high = _seeds_for(m)
        save_seeds(work / "seeds/maps" / f"{id_}.npz", keys, high[:, ::4, ::4], high)
    atomic_write_json(work / "seeds/results.json", {"source": "bas", "split": "train", "images": 5, "wall_s": 3.25,
                                                    "peak_rss_mb": 512.0})
    if not full:
        return root, work
    # eval_seeds: a real sweep over the seed files
    ths = [0.05, 0.25, 0.5]
    sums = [_summ([(seed_labels(load_seeds(work / "seeds/maps" / f"{i}.npz"), t), m) for i, m in TRAIN.items()])
            for t in ths]
    mious = [s["mIoU"] for s in sums]
    best = int(np.argmax(mious))
    res = {"split": "train", "num_images": 5, "thresholds": ths, "miou_per_threshold": mious,
           "best_threshold": ths[best], "best_miou": mious[best], "best_threshold_note": "chosen WITH the ground truth",
           "best_kind": "tuned with ground truth (on calib)", "calib_threshold": ths[best], "num_calib_images": 2,
           "bao_miou": None, "bao_note": "bao stage disabled"}
    atomic_write_json(work / "eval_seeds/eval.json", {**res, "best": sums[best], "bao": None})
    atomic_write_json(work / "eval_seeds/results.json", {**res, "wall_s": 1.5, "peak_rss_mb": 300.0})
    # crf / random_walk pseudo-labels: the mask with a shifted edge; BAD is all background in the random walk
    for id_, m in TRAIN.items():
        crf = m.copy()
        crf[crf == 255] = 0
        save_label_png(work / "crf/labels" / f"{id_}.png", crf)
        rw = np.roll(crf, 1, axis=1) if id_ != BAD else np.zeros_like(crf)
        save_label_png(work / "random_walk/labels" / f"{id_}.png", rw)
    for st in ("crf", "ir_labels", "random_walk"):
        atomic_write_json(work / st / "results.json", {"split": "train", "num_images": 5, "computed": 5,
                                                       "wall_s": 2.0, "peak_rss_mb": 256.0})
    hist = [{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.5}]
    atomic_write_json(work / "affinity/results.json", {"iterations": 8, "wall_s": 7.0, "peak_rss_mb": 700.0,
                                                       "history": hist})
    from wsss.datasets import read_label_png

    pseudo = {p: _summ([(read_label_png(work / p / "labels" / f"{i}.png"), m) for i, m in TRAIN.items()])
              for p in ("crf", "random_walk")}
    res = {"split": "train", "num_images": 5, "crf_miou": pseudo["crf"]["mIoU"],
           "random_walk_miou": pseudo["random_walk"]["mIoU"], "crf_kind": "ground-truth-free",
           "random_walk_kind": "ground-truth-free"}
    atomic_write_json(work / "summary.json", {"stages": [], "auto_settings": {
        "stats": {"num_images": 5}, "random_walk.exp_times": {"value": 4, "why": "2^4 steps spread ~20 cells"}}})
    atomic_write_json(work / "eval_pseudo/eval.json", {**res, **pseudo})
    atomic_write_json(work / "eval_pseudo/results.json", {**res, "wall_s": 0.8, "peak_rss_mb": 200.0})
    # segment: mmengine scalars of a run that was resumed once
    atomic_write_json(work / "segment/results.json", {"iters": 40, "wall_s": 99.0, "peak_rss_mb": 2048.0})
    for stamp, its in (("20250101_000000", range(10, 30, 10)), ("20250101_010000", range(20, 50, 10))):
        d = work / "segment/mmseg" / stamp / "vis_data"
        d.mkdir(parents=True)
        with open(d / "scalars.json", "w") as f:
            for it in its:
                f.write(json.dumps({"lr": 0.01, "loss": 3.0 / it, "decode.loss_ce": 2.5 / it,
                                    "decode.acc_seg": 50 + it, "time": 0.5, "iter": it, "step": it}) + "\n")
            f.write(json.dumps({"aAcc": 80.0, "mIoU": 40.0 + its[-1] / 10, "mAcc": 50.0, "step": its[-1]}) + "\n")
    # eval_segment on val: single scale and ms+flip (final -> pred/)
    preds = {"single_scale": "pred_ss", "ms_flip": "pred"}
    variants = {}
    for k, (var, folder) in enumerate(preds.items()):
        pairs = []
        for id_, m in VAL.items():
            p = m.copy()
            p[p == 255] = 0
            p = np.roll(p, k + 1, axis=0)
            save_label_png(work / "eval_segment" / folder / f"{id_}.png", p)
            pairs.append((p, m))
        s = _summ(pairs)
        variants[var] = {"mIoU": s["mIoU"], "per_class": dict(zip(CLASSES, s["iou"])),
                         "pred_dir": str(work / "eval_segment" / folder)}
    res = {"split": "val", "num_images": 3, **{f"mIoU_{v}": variants[v]["mIoU"] for v in variants}}
    atomic_write_json(work / "eval_segment/miou.json", {**res, "variants": variants})
    atomic_write_json(work / "eval_segment/results.json", {**res, "wall_s": 4.0, "peak_rss_mb": 1500.0})
    return root, work


def make_ctx(tmp: Path, work: Path, root: Path, **sections) -> StageContext:
    cfg = dict(dataset=dict(type="custom", root=str(root), cache_dir=str(tmp / "cache")),
               report=dict(num_examples=2, num_worst=2, thumb_height=48), runtime=dict(workers=1),
               bao=dict(enabled=False), eval_segment=dict(ms_flip=True, crf=False),
               segment=dict(labels_from="random_walk"), experiment="unit")
    cfg.update(sections)
    return StageContext(name="report", cfg=Config(cfg), work_dir=work, log=logging.getLogger("test"))


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report_full")
    root, work = build_work(tmp)
    ctx = make_ctx(tmp, work, root)
    metrics = report.run(ctx)
    return ctx, work, metrics


def _assert_local_pngs(html_text: str, folder: Path) -> list[str]:
    srcs = referenced_images(html_text)
    assert srcs, "the report shows no image"
    for s in srcs:
        assert "/" not in s and not s.startswith(("http", "data:", "file:")), s
        p = folder / s
        assert p.is_file() and p.suffix == ".png", f"{s} is not a PNG next to index.html"
        with Image.open(p) as im:
            assert im.size[0] > 50 and im.size[1] > 50
    # self-contained: no network reference of any kind
    assert not re.search(r"(https?:)?//[a-z0-9]", html_text, re.I), "the report references the network"
    assert "<script" not in html_text.lower() and "<link" not in html_text.lower()
    return srcs


def test_inputs_are_the_enabled_stages():
    cfg = Config(dict(bao=dict(enabled=False)))
    ins = report.inputs(cfg)
    assert {"eval_seeds", "eval_pseudo", "eval_segment", "classify", "segment"} <= set(ins)
    assert "bao" not in ins and "report" not in ins
    assert "bao" in report.inputs(Config(dict(bao=dict(enabled=True))))
    assert "eval_segment" not in report.inputs(Config(dict(eval_segment=dict(enabled=False))))


def test_pick_sample_is_deterministic():
    ids = ["c", "a", "d", "b", "e"]
    scores = {"a": 10.0, "b": 90.0, "c": 5.0, "d": 5.0, "e": None}
    assert pick_sample(ids, scores, 2, 2) == (["a", "b"], ["c", "d"])
    assert pick_sample(ids, {}, 3, 2) == (["a", "b", "c"], [])
    gt = np.array([[1, 1], [0, 255]], np.uint8)
    assert image_miou(gt.copy(), gt, 3) == pytest.approx(100.0)
    assert image_miou(np.zeros_like(gt), gt, 3) == pytest.approx(100 * (1 / 3 + 0) / 2)


def test_report_full(full_report):
    ctx, work, metrics = full_report
    out = work / "report"
    text = (out / "index.html").read_text(encoding="utf-8")
    srcs = _assert_local_pngs(text, out)
    for png in ("per_class_iou.png", "seed_miou_vs_threshold.png", "curves_classify.png", "curves_affinity.png",
                "curves_segment.png", "examples_pseudo.png", "examples_pred.png"):
        assert png in srcs, f"{png} missing from the report"
    # every headline number, as the stages recorded it
    for stage, keys in (("eval_seeds", ("best_miou",)), ("eval_pseudo", ("crf_miou", "random_walk_miou")),
                        ("eval_segment", ("mIoU_single_scale", "mIoU_ms_flip"))):
        res = json.loads((work / stage / "results.json").read_text())
        for k in keys:
            assert f"<b>{res[k]:.2f}</b>" in text, f"{stage}.{k} = {res[k]:.2f} not in the report"
    seeds = json.loads((work / "eval_seeds/results.json").read_text())
    assert f"t={seeds['best_threshold']:.2f}" in text and "chosen WITH the ground truth" in text
    # ground-truth-free and tuned-with-ground-truth results in separate, labelled tables, GT-free first
    free, tuned = text.index("<h3>Ground-truth-free</h3>"), text.index("<h3>Tuned with ground truth (on calib)</h3>")
    assert free < text.index(f"<b>{json.loads((work / 'eval_pseudo/results.json').read_text())['crf_miou']:.2f}")
    assert free < tuned and f"<b>{seeds['best_miou']:.2f}</b>" in text[tuned:text.index("</table>", tuned)]
    assert "2 calibration images excluded" in text
    assert "random_walk.exp_times" in text and "2^4 steps spread ~20 cells" in text  # derived settings + why
    assert "12.5" in text and "987" in text and "2048" in text  # wall time / peak memory of the stages
    # disabled / absent things are said to be missing, with why
    assert "not available: stage &#x27;bao&#x27; is disabled (bao.enabled = False)" in text
    assert "eval_segment.crf = False" in text
    assert any("bao" in m for m in metrics["not_available"])
    # fixed sample + worst pseudo-labels (random walk: the one segment trained on)
    sample = json.loads((out / "sample.json").read_text())
    assert sample["sample_ids"] == ["t0", "t1"] and BAD in sample["worst_ids"]
    assert sample["worst_source"] == "random_walk" and sample["seed_threshold"] == seeds["best_threshold"]
    assert sample["pred_split"] == "val" and sample["pred_sample_ids"] == ["v0", "v1"]
    assert metrics["worst_ids"] == sample["worst_ids"]


def test_report_is_deterministic(full_report, tmp_path):
    ctx, work, metrics = full_report
    again = report.run(ctx)
    assert again["sample_ids"] == metrics["sample_ids"] and again["worst_ids"] == metrics["worst_ids"]


def test_report_partial_run_says_what_is_missing(tmp_path):
    root, work = build_work(tmp_path, full=False)
    ctx = make_ctx(tmp_path, work, root, segment=dict(enabled=False, labels_from="random_walk"))
    m = report.run(ctx)
    text = (work / "report/index.html").read_text(encoding="utf-8")
    _assert_local_pngs(text, work / "report")
    assert "<b>" not in text, "a number was shown for a stage that did not run"
    assert text.count("not available:") >= 8
    assert "stage &#x27;eval_seeds&#x27; has not finished" in text
    assert "stage &#x27;segment&#x27; is disabled (segment.enabled = False)" in text
    assert m["worst_ids"] == [] and m["sample_ids"] == ["t0", "t1"]
    assert (work / "report/curves_classify.png").is_file() and (work / "report/examples_pseudo.png").is_file()


def test_unscored_val_predictions_are_shown_with_the_reason(tmp_path):
    """A val split without masks: eval_segment writes predictions and no score. The report shows them (it used
    to show nothing of a skipped eval_segment) and says why there is no mIoU."""
    root, work = build_work(tmp_path)
    (work / "eval_segment/miou.json").unlink()
    reason = "split 'val' has no ground-truth masks: the 3 predictions are in .../pred, not scored"
    atomic_write_json(work / "eval_segment/results.json", {"skipped": True, "reason": reason, "split": "val",
                                                           "num_images": 3, "pred_dir": str(work / "eval_segment/pred"),
                                                           "wall_s": 4.0, "peak_rss_mb": 1500.0})
    m = report.run(make_ctx(tmp_path, work, root))
    text = (work / "report/index.html").read_text(encoding="utf-8")
    assert (work / "report/examples_pred.png").is_file() and m["pred_sample_ids"] == ["v0", "v1"]
    assert "not scored" in text and "final DeepLab, multi-scale + flip: stage 'eval_segment' skipped" in " ".join(
        m["not_available"])


def test_unreadable_pseudo_labels_are_counted_not_dropped(tmp_path):
    """A damaged label file used to vanish from the worst-images ranking; now it is counted and named."""
    root, work = build_work(tmp_path)
    (work / "random_walk/labels/t1.png").write_bytes(b"garbage")
    (work / "random_walk/labels/t2.png").unlink()
    report.run(make_ctx(tmp_path, work, root))
    text = (work / "report/index.html").read_text(encoding="utf-8")
    assert "2 of 5 images could not be scored" in text and "t2.png missing" in text and "t1.png" in text
    assert "(3 of 5 images scored)" in text


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (Debian package 'chromium'; "
                                                   "CI installs it)")
def test_render_check(full_report, tmp_path):
    _, work, _ = full_report
    shot = tmp_path / "shot.png"
    cmd = [sys.executable, str(REPO / "tools/render_check.py"), str(work / "report/index.html"), "--out", str(shot)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout and shot.is_file()
    with Image.open(shot) as im:
        assert im.size == (1200, 1600)
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body style='background:#fff'></body></html>")
    proc = subprocess.run([sys.executable, str(REPO / "tools/render_check.py"), str(blank)], capture_output=True,
                          text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BLANK" in proc.stdout
