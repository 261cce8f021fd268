"""tools/downscale_dataset.py: copies the pipeline reads as a dataset, masks resized without new values."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers import blob_mask, make_voc_layout
from tools.downscale_dataset import downscale_folder, scaled_size
from wsss.datasets import build_dataset
from wsss.metrics import evaluate_folder

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["background", "cat", "dog"]


def test_scaled_size():
    assert scaled_size((4000, 3000), 1024) == (1024, 768)
    assert scaled_size((3000, 4000), 1024) == (768, 1024)
    assert scaled_size((1023, 50), 1024) == (1023, 50)  # not longer: unchanged
    assert scaled_size((5000, 3), 1000) == (1000, 1)  # never a zero side


def test_copies_read_as_the_dataset(tmp_path):
    masks = {"big": blob_mask(300, 400, [(1, 30, 40, 200, 160), (2, 100, 220, 280, 380)]),
             "small": blob_mask(90, 120, [(2, 10, 10, 60, 80)])}
    root = make_voc_layout(tmp_path / "d", masks, classes=CLASSES)
    exif = Image.Exif()
    exif[0x0112] = 6  # an orientation tag: kept on the copy (the pipeline warns about tagged photos)
    with Image.open(root / "JPEGImages/big.jpg") as im:
        im.load()
        im.save(root / "JPEGImages/big.jpg", quality=95, exif=exif)
    Image.fromarray(masks["big"]).convert("RGB").save(root / "colour.png")  # an RGB mask: colours kept

    out = subprocess.run([sys.executable, str(ROOT / "tools/downscale_dataset.py"), "--root", str(root),
                          "--max-side", "200"], capture_output=True, text=True, check=True).stdout
    assert "dataset.img_dir=JPEGImages_200 dataset.mask_dir=SegmentationClass_200" in out
    with Image.open(root / "JPEGImages_200/big.jpg") as im:
        assert im.size == (200, 150) and im.getexif().get(0x0112) == 6
    with Image.open(root / "SegmentationClass_200/big.png") as m:
        assert m.size == (200, 150) and m.mode == "P" and m.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
        small = np.asarray(m)
    # nearest neighbour: the same values, no blend of neighbouring classes; each object keeps its place
    assert set(np.unique(small)) == {0, 1, 2, 255}
    assert np.array_equal(small, masks["big"][1::2, 1::2])  # PIL samples each 2x2 block's centre-most pixel
    # a photo already small enough is linked, not re-encoded
    assert os.path.samefile(root / "JPEGImages/small.jpg", root / "JPEGImages_200/small.jpg")
    # the copies are a valid dataset (every mask the size of its image)
    ds = build_dataset({"type": "custom", "root": str(root), "cache_dir": str(tmp_path / "cache"),
                        "img_dir": "JPEGImages_200", "mask_dir": "SegmentationClass_200"})
    assert ds.ids == ["big", "small"] and ds.label_set("big") == [0, 1]
    # a run on the copies scores at their size; the tool says how to score on the originals, and that scoring
    # (eval_miou --resize-pred) of the copies' own masks gives the originals back but for the blobs' rims
    assert f"--gt {root / 'SegmentationClass'} " in out and out.rstrip().endswith("--resize-pred")
    back = evaluate_folder(root / "SegmentationClass_200", root / "SegmentationClass", None, CLASSES,
                           resize_pred=True)
    assert 99.0 < back["mIoU"] < 100.0  # measured 99.72: the 2x copy of 'big' loses only rim pixels

    # rerun: nothing rewritten; an RGB colour mask keeps its colours
    assert downscale_folder(root / "SegmentationClass", root / "SegmentationClass_200", 200, True) == (0, 0)
    (tmp_path / "colour").mkdir()
    (root / "colour.png").rename(tmp_path / "colour/colour.png")
    assert downscale_folder(tmp_path / "colour", tmp_path / "colour_200", 200, True) == (1, 0)
    rgb = np.asarray(Image.open(tmp_path / "colour_200/colour.png"))
    assert rgb.shape == (150, 200, 3) and {tuple(c) for c in rgb.reshape(-1, 3)} <= {
        tuple(c) for c in np.asarray(Image.open(tmp_path / "colour/colour.png")).reshape(-1, 3)}


def test_sixteen_bit_grey_images_resize(tmp_path):
    (tmp_path / "img").mkdir()
    grey = (np.arange(400 * 300, dtype=np.uint16).reshape(300, 400) % 4000) * 16
    Image.fromarray(grey).save(tmp_path / "img/a.png")
    assert downscale_folder(tmp_path / "img", tmp_path / "img_100", 100, False) == (1, 0)
    with Image.open(tmp_path / "img_100/a.png") as im:
        assert im.size == (100, 75) and np.asarray(im).max() > 255  # still 16-bit values
