"""mIoU: hand-computed answers, agreement with mmseg's IoUMetric, folder evaluation and its CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import wsss  # noqa: F401  (stack fixes before mmseg / torch)
from wsss.datasets.colors import ColorTable, read_labelmap
from wsss.metrics import (
    COCO_CLASSES,
    VOC_CLASSES,
    ConfusionMatrix,
    evaluate_folder,
    format_table,
    read_class_names,
    read_split_ids,
    summarize,
)

REPO = Path(__file__).resolve().parents[2]
NAMES4 = ("background", "a", "b", "c")

# gt / pred pair whose numbers are worked out by hand in test_known_answer
GT = np.array([[0, 0, 1, 1],
               [0, 0, 1, 1],
               [2, 2, 255, 255],
               [2, 2, 1, 1]], dtype=np.uint8)
PRED = np.array([[0, 1, 1, 1],
                 [0, 0, 1, 1],
                 [2, 0, 0, 2],
                 [255, 2, 1, 1]], dtype=np.uint8)


def test_known_answer() -> None:
    # 14 valid gt pixels. class 0: gt 4, pred 4 (3 hits + one gt-2 pixel), union 5 -> 60 %
    # class 1: gt 6, pred 7 (one gt-0 pixel), hits 6 -> 6/7. class 2: gt 4 (one predicted 255), pred 2
    # (the pred-2 on an ignore pixel does not count), hits 2 -> 50 %. class 3: absent -> undefined, not averaged.
    cm = ConfusionMatrix(4)
    cm.update(PRED, GT)
    np.testing.assert_array_equal(cm.matrix, [[3, 1, 0, 0], [0, 6, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm.unpredicted, [0, 0, 1, 0])
    s = summarize(cm, NAMES4)
    assert s["iou"][:3] == pytest.approx([60.0, 600 / 7, 50.0])
    assert s["iou"][3] is None
    assert s["mIoU"] == pytest.approx((60.0 + 600 / 7 + 50.0) / 3)  # 65.238
    assert s["precision"][:3] == pytest.approx([75.0, 600 / 7, 100.0])
    assert s["recall"][:3] == pytest.approx([75.0, 100.0, 50.0])
    assert s["pixel_accuracy"] == pytest.approx(100 * 11 / 14)
    assert s["num_pixels"] == 14 and s["num_classes_evaluated"] == 3
    json.dumps(s)  # JSON-ready as is (no NaN, no numpy types)
    table = format_table(s, NAMES4)
    assert "65.24" in table and "85.71" in table and table.splitlines()[5].split("|")[1].strip() == "-"


def test_perfect_and_all_wrong() -> None:
    cm = ConfusionMatrix(4)
    cm.update(GT, GT)
    s = summarize(cm, NAMES4)
    assert s["mIoU"] == pytest.approx(100.0) and s["pixel_accuracy"] == pytest.approx(100.0)
    cm = ConfusionMatrix(4)
    wrong = np.where(GT == 255, 255, (GT + 1) % 3).astype(np.uint8)
    cm.update(wrong, GT)
    s = summarize(cm, NAMES4)
    assert s["mIoU"] == 0.0 and s["pixel_accuracy"] == 0.0
    # class present only in the prediction counts with IoU 0 (union > 0), as in mmseg
    cm = ConfusionMatrix(4)
    cm.update(np.full((2, 2), 3, np.uint8), np.zeros((2, 2), np.uint8))
    s = summarize(cm, NAMES4)
    assert s["iou"] == [0.0, None, None, 0.0] and s["mIoU"] == 0.0


def test_merge_and_dict_roundtrip() -> None:
    rng = np.random.default_rng(1)
    a, b, total = ConfusionMatrix(4), ConfusionMatrix(4), ConfusionMatrix(4)
    for cm in (a, b):
        p, g = rng.integers(0, 4, (2, 7, 9)).astype(np.uint8)
        g[0, :3] = 255
        p[1, :2] = 255
        cm.update(p, g)
        total.update(p, g)
    a.merge(b)
    np.testing.assert_array_equal(a.matrix, total.matrix)
    np.testing.assert_array_equal(a.unpredicted, total.unpredicted)
    back = ConfusionMatrix.from_dict(json.loads(json.dumps(a.to_dict())))
    np.testing.assert_array_equal(back.matrix, a.matrix)
    assert summarize(back, NAMES4) == summarize(a, NAMES4)
    with pytest.raises(ValueError, match="merge"):
        a.merge(ConfusionMatrix(5))


def test_bad_input_errors() -> None:
    cm = ConfusionMatrix(4)
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        cm.update(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match=r"prediction has values \[7\]"):
        cm.update(np.full((2, 2), 7, np.uint8), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"ground truth has values \[9\]"):
        cm.update(np.zeros((2, 2), np.uint8), np.full((2, 2), 9, np.uint8))
    with pytest.raises(ValueError, match="integer"):
        cm.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="class names"):
        summarize(cm, NAMES4[:3])
    with pytest.raises(ValueError, match="collides"):
        ConfusionMatrix(300, ignore_index=255)


def test_matches_mmseg_iou_metric() -> None:
    """Same random predictions (ignore pixels in gt and pred, a class only predicted, a class nowhere)."""
    import torch
    from mmseg.evaluation.metrics import IoUMetric

    names = ("background", "a", "b", "c", "only_pred", "nowhere")
    rng = np.random.default_rng(0)
    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = {"classes": names}
    cm = ConfusionMatrix(len(names))
    for h, w in ((31, 40), (17, 23), (50, 12)):
        gt = rng.integers(0, 4, (h, w)).astype(np.uint8)  # classes 0..3
        gt[rng.random((h, w)) < 0.15] = 255
        # a noisy copy of gt: mostly right, some confusions, some class-4 and some 255 predictions
        pred = np.where(gt == 255, rng.integers(0, 4, (h, w)), gt).astype(np.uint8)
        flip = rng.random((h, w)) < 0.3
        pred[flip] = rng.integers(0, 5, flip.sum())
        pred[rng.random((h, w)) < 0.05] = 255
        sample = {"pred_sem_seg": {"data": torch.from_numpy(pred)[None]},
                  "gt_sem_seg": {"data": torch.from_numpy(gt)[None]}}
        metric.process({}, [sample])
        cm.update(pred, gt)
    ours = summarize(cm, names)
    # per-class, unrounded: mmseg's own total_area_to_metrics on its accumulated areas
    inter, union, area_pred, area_gt = (sum(r[i] for r in metric.results) for i in range(4))
    ref = IoUMetric.total_area_to_metrics(inter, union, area_pred, area_gt, ["mIoU"])
    ref_iou = [None if np.isnan(v) else 100 * float(v) for v in ref["IoU"]]
    assert ref_iou[5] is None and ref_iou[4] == 0.0  # the case set-up really has both special classes
    assert ours["iou"] == pytest.approx(ref_iou)
    summary = metric.compute_metrics(metric.results)  # rounded to 2 decimals by mmseg
    print("mmseg", dict(summary), "ours mIoU", ours["mIoU"])
    assert ours["mIoU"] == pytest.approx(float(summary["mIoU"]), abs=0.0051)
    assert ours["pixel_accuracy"] == pytest.approx(float(summary["aAcc"]), abs=0.0051)
    assert ours["mean_recall"] == pytest.approx(float(summary["mAcc"]), abs=0.0051)
    assert ours["mIoU"] == pytest.approx(100 * float(np.nanmean(ref["IoU"])))


def test_class_names() -> None:
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person"
    assert len(COCO_CLASSES) == 81 and COCO_CLASSES[1] == "person" and COCO_CLASSES[80] == "toothbrush"
    assert len(set(COCO_CLASSES)) == 81
    assert read_class_names("voc") is VOC_CLASSES and read_class_names("COCO") is COCO_CLASSES


def test_read_class_names_and_split(tmp_path: Path) -> None:
    f = tmp_path / "classes.txt"
    f.write_text("background\ncat\n\ndog  # comment\n")
    assert read_class_names(f) == ("background", "cat", "dog")
    f.write_text("__ignore__\n_background_\ncat\n")  # labelme layout
    assert read_class_names(f) == ("_background_", "cat")
    f.write_text("cat\ndog\n")  # foreground only: background is label 0 by convention
    assert read_class_names(f) == ("background", "cat", "dog")
    f.write_text("cat\ncat\n")
    with pytest.raises(ValueError, match="duplicate"):
        read_class_names(f)
    with pytest.raises(FileNotFoundError, match="neither"):
        read_class_names(tmp_path / "nope.txt")
    s = tmp_path / "split.txt"
    s.write_text("2007_000032\n\n/JPEGImages/2007_000039.jpg /SegmentationClassAug/2007_000039.png\n")
    assert read_split_ids(s) == ["2007_000032", "2007_000039"]


def _palette_png(arr: np.ndarray, path: Path) -> None:
    im = Image.fromarray(arr, mode="P")
    im.putpalette([v for i in range(256) for v in (i * 3 % 256, i * 7 % 256, i * 11 % 256)])
    im.save(path)


def _make_folders(tmp_path: Path, n: int = 5) -> tuple[Path, Path, ConfusionMatrix]:
    """Palette-mode predictions, greyscale ground truth, plus the ConfusionMatrix of the same pairs."""
    rng = np.random.default_rng(3)
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    cm = ConfusionMatrix(len(VOC_CLASSES))
    for i in range(n):
        h, w = 20 + i, 30 - i
        gt = rng.choice([0, 0, 0, 8, 15, 255], (h, w)).astype(np.uint8)
        pred = np.where(rng.random((h, w)) < 0.7, np.where(gt == 255, 0, gt), rng.choice([0, 8, 12], (h, w)))
        pred = pred.astype(np.uint8)
        _palette_png(pred, pred_dir / f"img_{i}.png")
        Image.fromarray(gt, mode="L").save(gt_dir / f"img_{i}.png")
        cm.update(pred, gt)
    return pred_dir, gt_dir, cm


def test_evaluate_folder(tmp_path: Path) -> None:
    pred_dir, gt_dir, cm = _make_folders(tmp_path)
    (gt_dir / "._img_1.png").write_bytes(b"\x00\x05\x16\x07")  # a macOS resource fork: not an image to score
    expected = summarize(cm, VOC_CLASSES)
    out = evaluate_folder(pred_dir, gt_dir, None, VOC_CLASSES)
    assert out["num_images"] == 5
    assert out["mIoU"] == pytest.approx(expected["mIoU"]) and 0 < out["mIoU"] < 100
    assert out["confusion_matrix"] == expected["confusion_matrix"]
    sub = evaluate_folder(pred_dir, gt_dir, ["img_1", "img_3"], VOC_CLASSES)
    assert sub["num_images"] == 2 and sub["num_pixels"] < out["num_pixels"]

    (pred_dir / "img_2.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 5 predictions missing.*img_2"):
        evaluate_folder(pred_dir, gt_dir, None, VOC_CLASSES)
    _palette_png(np.zeros((5, 5), np.uint8), pred_dir / "img_2.png")
    with pytest.raises(ValueError, match=r"img_2\.png: prediction size \(5, 5\) != ground-truth size \(22, 28\)"):
        evaluate_folder(pred_dir, gt_dir, None, VOC_CLASSES)
    Image.fromarray(np.zeros((22, 28, 3), np.uint8)).save(pred_dir / "img_2.png")
    with pytest.raises(ValueError, match=r"img_2\.png: label PNG is a colour image \(mode RGB\)"):
        evaluate_folder(pred_dir, gt_dir, None, VOC_CLASSES)
    _palette_png(np.full((22, 28), 40, np.uint8), pred_dir / "img_2.png")
    with pytest.raises(ValueError, match=r"img_2\.png.*prediction has values \[40\]"):
        evaluate_folder(pred_dir, gt_dir, None, VOC_CLASSES)


def test_eval_tool_cli(tmp_path: Path) -> None:
    pred_dir, gt_dir, cm = _make_folders(tmp_path)
    expected = summarize(cm, VOC_CLASSES)["mIoU"]
    split = tmp_path / "split.txt"
    split.write_text("img_0\nimg_1\nimg_2\nimg_3\nimg_4\n")
    out_json = tmp_path / "res" / "miou.json"
    cmd = [sys.executable, str(REPO / "tools" / "eval_miou.py"), "--pred", str(pred_dir), "--gt", str(gt_dir),
           "--split-file", str(split), "--classes", "voc", "--json", str(out_json)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"mIoU {expected:.2f}" in r.stdout and "diningtable" in r.stdout
    data = json.loads(out_json.read_text())
    assert data["mIoU"] == pytest.approx(expected) and data["num_images"] == 5
    # a missing prediction: non-zero exit and the name in the message
    split.write_text("img_0\nimg_1\n")
    (pred_dir / "img_1.png").unlink()
    out_json.unlink()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "img_1" in r.stderr and "1 of 2 predictions missing" in r.stderr
    assert not out_json.exists()


def test_predictions_made_on_downscaled_copies_score_at_the_masks_size(tmp_path: Path) -> None:
    """A run on tools/downscale_dataset.py's copies predicts at their size: --resize-pred scales each prediction
    to its mask's size by nearest neighbour (PIL's, bit for bit) before scoring; without it the size error names
    the flag; a prediction of another aspect (a turned image) is an error, never stretched."""
    from wsss.metrics import scaled_to

    rng = np.random.default_rng(0)
    small = rng.integers(0, 4, (67, 100)).astype(np.uint8)
    assert np.array_equal(scaled_to(small, (104, 156)),
                          np.asarray(Image.fromarray(small).resize((156, 104), Image.NEAREST)))
    assert scaled_to(small, (100, 67)) is None
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir(), gt_dir.mkdir()
    gt = np.kron(small, np.ones((2, 2), np.uint8))  # 134 x 200: each predicted pixel a 2x2 block of the mask
    gt[0, 0] = 255
    _palette_png(gt, gt_dir / "a.png")
    _palette_png(small, pred_dir / "a.png")
    with pytest.raises(ValueError, match=r"a\.png: prediction size \(67, 100\) != ground-truth size \(134, 200\) "
                       r".*\(predictions made on downscaled copies: tools/eval_miou.py --resize-pred"):
        evaluate_folder(pred_dir, gt_dir, None, NAMES4)
    out = evaluate_folder(pred_dir, gt_dir, None, NAMES4, resize_pred=True)
    assert out["mIoU"] == 100.0 and out["num_pixels"] == 134 * 200 - 1
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(NAMES4) + "\n")
    r = subprocess.run([sys.executable, str(REPO / "tools" / "eval_miou.py"), "--pred", str(pred_dir), "--gt",
                        str(gt_dir), "--classes", str(names), "--resize-pred"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "mIoU 100.00" in r.stdout, r.stderr
    _palette_png(small.T.copy(), pred_dir / "a.png")  # turned: 100 x 67 against 134 x 200
    with pytest.raises(ValueError, match=r"prediction size \(100, 67\) is not a scaled copy of the ground-truth "
                       r"size \(134, 200\)"):
        evaluate_folder(pred_dir, gt_dir, None, NAMES4, resize_pred=True)


def test_eval_tool_decodes_colour_masks_with_the_voc_colours_or_a_labelmap(tmp_path: Path) -> None:
    """Ground truth exported in colours (VOC colours, or a CVAT labelmap) scores as its index version."""
    from wsss.maps import voc_palette

    pred_dir, gt_dir, cm = _make_folders(tmp_path)
    expected = summarize(cm, VOC_CLASSES)["mIoU"]
    colour_gt, cvat_gt = tmp_path / "gt_rgb", tmp_path / "gt_cvat"
    colour_gt.mkdir(), cvat_gt.mkdir()
    cvat = np.array([(0, 0, 0)] + [(10 * i, 255 - 10 * i, 7) for i in range(1, 21)] + [(0, 0, 0)] * 234 +
                    [(255, 255, 255)], np.uint8)  # the labelmap's colours by index; 255 (ignore) white
    for f in sorted(gt_dir.glob("*.png")):
        index = np.asarray(Image.open(f))
        Image.fromarray(voc_palette()[index]).save(colour_gt / f.name)
        Image.fromarray(cvat[index]).save(cvat_gt / f.name)
    labelmap = tmp_path / "labelmap.txt"
    labelmap.write_text("".join(f"{n}:{','.join(map(str, cvat[i]))}::\n" for i, n in enumerate(VOC_CLASSES))
                        + "ignore:255,255,255::\n")
    base = [sys.executable, str(REPO / "tools" / "eval_miou.py"), "--pred", str(pred_dir), "--classes", "voc"]
    r = subprocess.run(base + ["--gt", str(colour_gt)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"mIoU {expected:.2f}" in r.stdout
    Image.fromarray(np.full((22, 28, 3), (1, 2, 3), np.uint8)).save(colour_gt / "img_1.png")
    r = subprocess.run(base + ["--gt", str(colour_gt)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "img_1.png: colour mask has 1 colour(s) that are not classes" in r.stderr
    assert "(1,2,3) x 616 px" in r.stderr
    out = evaluate_folder(pred_dir, cvat_gt, None, VOC_CLASSES,
                          colours=ColorTable.from_labelmap(read_labelmap(labelmap), list(VOC_CLASSES), labelmap))
    assert out["mIoU"] == pytest.approx(expected) and out["confusion_matrix"] == summarize(cm, VOC_CLASSES)[
        "confusion_matrix"]
