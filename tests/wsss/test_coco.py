"""COCO instances JSON -> VOC-layout masks: pixel-exact against pycocotools' annToMask + the documented rule."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from tools.convert_coco import main as cli_main
from wsss.coco import CocoFormatError, convert_coco
from wsss.maps import voc_palette


def _voc_palette() -> list[int]:
    return voc_palette().flatten().tolist()

H, W = 30, 40
SPLIT = "val2014"
# Non-contiguous ids listed out of order: contiguous labels follow id order -> 1:person 3:car 18:dog 90:toothbrush.
CATEGORIES = [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"},
              {"id": 90, "name": "toothbrush"}, {"id": 3, "name": "car"}]
LABEL = {1: 1, 3: 2, 18: 3, 90: 4}


def _box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _rle_compressed(m: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(m))
    return {"size": list(r["size"]), "counts": r["counts"].decode("ascii")}


def _rle_uncompressed(m: np.ndarray) -> dict:
    flat = m.flatten(order="F")
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    counts.append(run)
    return {"size": [H, W], "counts": [int(c) for c in counts]}


def _poly(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _name(i: int) -> str:
    return f"COCO_{SPLIT}_{i:012d}"


def _dataset() -> dict:
    images = [{"id": i, "file_name": _name(i) + ".jpg", "height": H, "width": W} for i in (42, 7, 100, 5)]
    anns = [
        # image 42: big person, overlapping smaller dog (different class), car RLE over both, a crowd person
        # region partly covered by the dog, and a second, smaller person on top of the car.
        {"id": 1, "image_id": 42, "category_id": 1, "iscrowd": 0, "segmentation": [_poly(2, 2, 30, 26)]},
        {"id": 2, "image_id": 42, "category_id": 18, "iscrowd": 0, "segmentation": [_poly(20, 10, 37, 28)]},
        {"id": 3, "image_id": 42, "category_id": 3, "iscrowd": 0, "segmentation": _rle_compressed(_box(0, 0, 12, 8))},
        {"id": 4, "image_id": 42, "category_id": 1, "iscrowd": 1,
         "segmentation": _rle_uncompressed(_box(25, 20, 40, 30))},
        {"id": 9, "image_id": 42, "category_id": 1, "iscrowd": 0, "segmentation": [_poly(4, 3, 8, 6)]},
        # image 7: two-part car polygon + a crowd-only toothbrush region; a degenerate 2-point polygon is dropped.
        {"id": 5, "image_id": 7, "category_id": 3, "iscrowd": 0,
         "segmentation": [_poly(1, 1, 10, 10), [30, 20, 38, 20, 34, 28]]},
        {"id": 6, "image_id": 7, "category_id": 90, "iscrowd": 1,
         "segmentation": _rle_uncompressed(_box(5, 15, 25, 29))},
        {"id": 7, "image_id": 7, "category_id": 18, "iscrowd": 0, "segmentation": [[3.0, 3.0, 5.0, 5.0]]},
        # image 5: only a crowd region; image 100: no annotations at all.
        {"id": 8, "image_id": 5, "category_id": 1, "iscrowd": 1, "segmentation": _rle_compressed(_box(0, 0, 20, 15))},
    ]
    for a in anns:
        a["area"] = 0.0
        a["bbox"] = [0, 0, 1, 1]
    return {"images": images, "annotations": anns, "categories": CATEGORIES}


def _make_root(root: Path, data: dict | None = None) -> Path:
    data = _dataset() if data is None else data
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / f"instances_{SPLIT}.json").write_text(json.dumps(data))
    (root / SPLIT).mkdir()
    rng = np.random.default_rng(0)
    for im in data["images"]:
        arr = rng.integers(0, 255, (im["height"], im["width"], 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / SPLIT / im["file_name"], quality=90)
    return root


def _expected(ann_file: Path) -> dict[str, np.ndarray]:
    """Independent reference: pycocotools annToMask per instance, crowd 255 first, then by decreasing area."""
    coco = COCO(str(ann_file))
    out = {}
    for img_id, im in coco.imgs.items():
        m = np.zeros((im["height"], im["width"]), np.uint8)
        anns = [a for a in coco.imgToAnns.get(img_id, []) if isinstance(a["segmentation"], dict)
                or any(len(p) >= 6 for p in a["segmentation"])]
        for a in anns:
            if a["iscrowd"]:
                m[coco.annToMask(a) > 0] = 255
        things = [(coco.annToMask(a), a) for a in anns if not a["iscrowd"]]
        for am, a in sorted(things, key=lambda t: (-int(t[0].sum()), t[1]["id"])):
            m[am > 0] = LABEL[a["category_id"]]
        out[Path(im["file_name"]).stem] = m
    return out


def _read(p: Path) -> np.ndarray:
    with Image.open(p) as im:
        assert im.mode == "P"
        return np.asarray(im).copy()


def test_voc_palette_standard_entries():
    pal = np.asarray(_voc_palette(), np.uint8).reshape(256, 3)
    assert pal[0].tolist() == [0, 0, 0]
    assert pal[1].tolist() == [128, 0, 0]
    assert pal[15].tolist() == [192, 128, 128]  # VOC 'person'
    assert pal[20].tolist() == [0, 64, 128]
    assert pal[255].tolist() == [224, 224, 192]


def test_convert_pixel_exact_labels_lists(tmp_path):
    root = _make_root(tmp_path / "coco")
    out = tmp_path / "out"
    s = convert_coco(root, SPLIT, out_root=out, workers=2)

    expected = _expected(root / "annotations" / f"instances_{SPLIT}.json")
    total_ignored = 0
    for stem, exp in expected.items():
        png = out / "SegmentationClass" / SPLIT / f"{stem}.png"
        got = _read(png)
        np.testing.assert_array_equal(got, exp, err_msg=stem)
        total_ignored += int((exp == 255).sum())
        with Image.open(png) as im:
            assert im.getpalette()[: 3 * 4] == _voc_palette()[: 3 * 4]

    # Hand-checked pixels of the rule (not just agreement with the reference above).
    m42 = expected[_name(42)]
    assert m42[15, 25] == LABEL[18]  # dog (smaller) over person (larger)
    assert m42[5, 5] == LABEL[1]  # small person over the car RLE that covers the big person's corner
    assert m42[5, 10] == LABEL[3]  # car (smaller than the big person) over person
    assert m42[25, 30] == LABEL[18]  # crowd pixel covered by a non-crowd instance takes the instance
    assert m42[28, 38] == 255  # crowd pixel outside every instance is ignored
    assert m42[29, 0] == 0
    assert set(np.unique(m42).tolist()) == {0, 1, 2, 3, 255}
    m7 = expected[_name(7)]
    assert m7[24, 34] == LABEL[3] and m7[5, 5] == LABEL[3] and m7[20, 10] == 255
    assert int((expected[_name(5)] == 255).sum()) == 20 * 15
    assert not expected[_name(100)].any()

    assert (out / "classes.txt").read_text().splitlines() == ["background", "person", "car", "dog", "toothbrush"]
    assert (out / "ImageSets" / f"{SPLIT}.txt").read_text().splitlines() == [_name(7), _name(42)]
    assert (out / "ImageSets" / f"{SPLIT}_unlabeled.txt").read_text().splitlines() == [_name(5), _name(100)]
    labels = json.loads((out / f"labels_{SPLIT}.json").read_text())
    assert labels == {_name(7): [1], _name(42): [0, 1, 2]}  # crowd-only toothbrush and degenerate dog left out
    crowd_only = json.loads((out / f"crowd_only_{SPLIT}.json").read_text())
    assert crowd_only == {_name(7): [3], _name(5): [0]}

    assert s["images"] == 4 and s["images_in_split"] == 2
    assert s["images_without_annotations"] == 1 and s["images_crowd_only"] == 1
    assert s["pngs_written"] == 4 and s["pngs_skipped_existing"] == 0
    assert s["crowd_ignored_pixels"] == total_ignored > 0
    assert not list((root / SPLIT).glob("*.png"))  # images are not copied, nothing written next to them
    assert not list((out / "SegmentationClass" / SPLIT).glob(".*"))  # no temp files left


def test_resume_rewrites_only_missing_png(tmp_path):
    root = _make_root(tmp_path / "coco")
    s1 = convert_coco(root, SPLIT, workers=2)  # out_root defaults to the COCO root
    mask_dir = root / "SegmentationClass" / SPLIT
    pngs = sorted(mask_dir.glob("*.png"))
    assert len(pngs) == 4
    old = 1_000_000_000
    for p in pngs:
        os.utime(p, (old, old))
    victim = mask_dir / f"{_name(42)}.png"
    ref = _read(victim)
    victim.unlink()
    s2 = convert_coco(root, SPLIT, workers=2)
    assert s2["pngs_written"] == 1 and s2["pngs_skipped_existing"] == 3
    assert s2["crowd_ignored_pixels"] == s1["crowd_ignored_pixels"]
    for p in pngs:
        if p == victim:
            assert p.stat().st_mtime > old
        else:
            assert p.stat().st_mtime == old, p.name
    np.testing.assert_array_equal(_read(victim), ref)


def test_limit_and_cli(tmp_path, capsys):
    root = _make_root(tmp_path / "coco")
    out = tmp_path / "out"
    rc = cli_main(["--coco-root", str(root), "--split", SPLIT, "--out", str(out), "--workers", "1", "--limit", "2"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "images: 2" in text and "without annotations: 0" in text and "crowd-only: 1" in text
    # first two stems in sorted order: ..._000000000005 (crowd-only, 300 ignored px) and ..._000000000007
    assert "pixels ignored by crowd: 580" in text  # 300 + 280 (toothbrush crowd: 20 x 14)
    assert sorted(p.stem for p in (out / "SegmentationClass" / SPLIT).glob("*.png")) == [_name(5), _name(7)]
    rc = cli_main(["--coco-root", str(tmp_path / "nowhere"), "--split", SPLIT])
    assert rc == 1
    assert "instances_val2014.json" in capsys.readouterr().err


def test_missing_annotation_file_named(tmp_path):
    (tmp_path / "annotations").mkdir()
    with pytest.raises(FileNotFoundError, match=r"annotations/instances_train2014\.json"):
        convert_coco(tmp_path, "train2014")


@pytest.mark.parametrize("breakage, pattern", [
    (lambda d: d.pop("categories"), r"instances_val2014\.json: missing or non-list 'categories'"),
    (lambda d: [a.pop("segmentation") for a in d["annotations"][:1]], r"annotation id 1 has no 'segmentation'"),
    (lambda d: d["annotations"][0].update(category_id=2), r"unknown category id 2"),
    (lambda d: d["annotations"][0].update(image_id=999), r"unknown image id 999"),
])
def test_not_instances_format(tmp_path, breakage, pattern):
    data = _dataset()
    breakage(data)
    root = _make_root(tmp_path / "coco", data)
    with pytest.raises(CocoFormatError, match=pattern):
        convert_coco(root, SPLIT, workers=1)
    (root / "annotations" / f"instances_{SPLIT}.json").write_text("[1, 2")
    with pytest.raises(CocoFormatError, match="not valid JSON"):
        convert_coco(root, SPLIT, workers=1)


def test_size_disagreements(tmp_path):
    # RLE drawn for a different image size than the JSON gives.
    data = _dataset()
    data["images"][0]["height"] = 31
    root = _make_root(tmp_path / "a", data)
    with pytest.raises(CocoFormatError, match=r"annotation id 3 RLE size \[30, 40\].*31x40"):
        convert_coco(root, SPLIT, workers=2)
    # Polygon far outside the image the JSON describes (width/height swapped).
    data = _dataset()
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] == 7 and isinstance(a["segmentation"], list)]
    data["images"][1].update(height=W, width=H)
    root = _make_root(tmp_path / "b", data)
    with pytest.raises(CocoFormatError, match=r"annotation id 5 polygon.*disagree"):
        convert_coco(root, SPLIT, workers=1)
    # Image file whose real size differs from the JSON.
    root = _make_root(tmp_path / "c")
    Image.new("RGB", (50, 30)).save(root / SPLIT / f"{_name(100)}.jpg")
    with pytest.raises(CocoFormatError, match=rf"{_name(100)}\.jpg is 50x30 \(WxH\) but .* 40x30"):
        convert_coco(root, SPLIT, workers=2)
    # Missing image file.
    root = _make_root(tmp_path / "d")
    (root / SPLIT / f"{_name(7)}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=rf"image file not found: .*{_name(7)}\.jpg"):
        convert_coco(root, SPLIT, workers=1)


def test_classes_txt_conflict(tmp_path):
    root = _make_root(tmp_path / "coco")
    convert_coco(root, SPLIT, workers=1, limit=1)
    data = copy.deepcopy(_dataset())
    data["categories"][0]["name"] = "hound"
    (root / "annotations" / f"instances_{SPLIT}.json").write_text(json.dumps(data))
    with pytest.raises(CocoFormatError, match="classes.txt already lists different classes"):
        convert_coco(root, SPLIT, workers=1, limit=1)
