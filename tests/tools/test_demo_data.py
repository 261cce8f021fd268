"""The synthetic demo dataset: determinism, VOC layout, label ranges, ignore band, class coverage, resume."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.demo_data import (
    CLASSES,
    IGNORE,
    demo_dataset_complete,
    ensure_demo_dataset,
    make_demo_dataset,
    render_demo_image,
)
from wsss.maps import voc_palette

SMALL = dict(n_train=12, n_val=4, size=64)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _ids(root: Path, split: str) -> list[str]:
    return (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()


def _mask(root: Path, iid: str) -> np.ndarray:
    return np.asarray(Image.open(root / "SegmentationClass" / f"{iid}.png"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo") / "seed0"
    return root, make_demo_dataset(root, seed=0, **SMALL)


def test_voc_palette_known_entries() -> None:
    pal = voc_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert pal[0].tolist() == [0, 0, 0]
    assert pal[1].tolist() == [128, 0, 0]
    assert pal[2].tolist() == [0, 128, 0]
    assert pal[15].tolist() == [192, 128, 128]  # VOC 'person'
    assert pal[255].tolist() == [224, 224, 192]  # VOC ignore colour


def test_same_seed_same_bytes_other_seed_differs(built: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = built
    again = make_demo_dataset(tmp_path / "again", seed=0, **SMALL)
    a, b = _files(root), _files(tmp_path / "again")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert again["splits"]["train"]["images"] == 12

    make_demo_dataset(tmp_path / "seed1", seed=1, **SMALL)
    c = _files(tmp_path / "seed1")
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert len(jpgs) == 16
    assert sum(a[k] != c[k] for k in jpgs) == len(jpgs)

    # each image has its own generator: a smaller build is a prefix of a larger one
    make_demo_dataset(tmp_path / "small", seed=0, n_train=5, n_val=2, size=64)
    d = _files(tmp_path / "small")
    shared = [k for k in d if k.startswith(("JPEGImages", "SegmentationClass"))]
    assert len(shared) == 14
    assert all(d[k] == a[k] for k in shared)


def test_layout_and_label_ranges(built: tuple[Path, dict]) -> None:
    root, summary = built
    names = (root / "classes.txt").read_text().split()
    assert names[0] == "background" and names == list(CLASSES) and len(names) == 6
    assert (root / "README.txt").read_text().startswith("Synthetic")
    assert (root / "demo_meta.json").is_file()
    train, val = _ids(root, "train"), _ids(root, "val")
    assert len(train) == 12 and len(val) == 4 and not set(train) & set(val)
    n_fg = len(CLASSES) - 1
    sizes, seen = set(), np.zeros(n_fg + 1, int)
    for iid in train + val:
        im = Image.open(root / "JPEGImages" / f"{iid}.jpg")
        assert im.mode == "RGB"
        m = Image.open(root / "SegmentationClass" / f"{iid}.png")
        assert m.mode == "P"
        assert np.array_equal(np.array(m.getpalette()[:768], np.uint8).reshape(256, 3), voc_palette())
        lab = np.asarray(m)
        assert lab.dtype == np.uint8 and lab.shape == (im.height, im.width)
        assert 56 <= im.height <= 72 and 56 <= im.width <= 80
        sizes.add(lab.shape)
        vals = set(np.unique(lab).tolist())
        assert vals <= set(range(n_fg + 1)) | {IGNORE}, (iid, vals)
        fg = [v for v in vals if 1 <= v <= n_fg]
        assert fg, f"{iid} has no object"
        if iid in train:
            seen[fg] = 1
    assert seen[1:].all(), "every class must appear in train"
    assert len(sizes) > 1, "image sizes should vary"
    # the summary agrees with the masks on disk
    for split, ids in (("train", train), ("val", val)):
        counts = {c: 0 for c in CLASSES[1:]}
        for iid in ids:
            for v in np.unique(_mask(root, iid)):
                if 1 <= v <= n_fg:
                    counts[CLASSES[v]] += 1
        assert counts == summary["splits"][split]["images_per_class"]


def test_ignore_band_separates_every_boundary(built: tuple[Path, dict]) -> None:
    root, _ = built
    for iid in _ids(root, "train"):
        lab = _mask(root, iid)
        ign = lab == IGNORE
        assert 0 < ign.mean() < 0.3
        # no two different real labels touch: every boundary runs through the ignore band
        for a, b in ((lab[:, 1:], lab[:, :-1]), (lab[1:], lab[:-1])):
            touch = (a != b) & (a != IGNORE) & (b != IGNORE)
            assert not touch.any(), iid
        # and the band is thin: almost every ignore pixel has a non-ignore pixel within 1 px, all within 2 px
        # (only slivers narrower than the band, like star tips, are wholly ignore)
        assert _near_valid(ign, 1)[ign].mean() > 0.95, iid
        assert _near_valid(ign, 2)[ign].all(), iid


def _near_valid(ign: np.ndarray, r: int) -> np.ndarray:
    h, w = ign.shape
    pad = np.pad(~ign, r, constant_values=False)
    near = np.zeros_like(ign)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            near |= pad[r + dy:r + dy + h, r + dx:r + dx + w]
    return near


def test_objects_overlap_and_stay_visible() -> None:
    infos = [render_demo_image(0, "train", i, size=96)[1:] for i in range(40)]
    overlapping = [info for _, info in infos if info["overlap"]]
    assert len(overlapping) >= 3
    counts = [len(info["objects"]) for _, info in infos]
    assert min(counts) >= 1 and max(counts) == 3
    for lab, info in infos:
        for o in info["objects"]:
            assert o["visible"] >= 60
            assert (lab == o["label"]).sum() > 0
    radii = [o["radius"] for _, info in infos for o in info["objects"]]
    assert max(radii) > 1.8 * min(radii), "object scale should vary"


def test_objects_are_textured_not_flat() -> None:
    rgb, lab, _ = render_demo_image(3, "train", 0, size=128)
    for k in np.unique(lab):
        if 1 <= k < len(CLASSES):
            pix = rgb[lab == k].astype(float)
            assert pix.std(axis=0).max() > 12, CLASSES[k]


def test_ensure_skips_complete_and_rebuilds_otherwise(tmp_path: Path) -> None:
    root = tmp_path / "d"
    kw = dict(seed=2, n_train=6, n_val=2, size=48)
    first = ensure_demo_dataset(root, **kw)
    assert first["skipped"] is False and first["seconds"] >= 0
    assert ensure_demo_dataset(root, **kw)["skipped"] is True
    assert demo_dataset_complete(root, **{**kw, "seed": 3}) is None
    (root / "SegmentationClass" / "train_00003.png").unlink()
    assert demo_dataset_complete(root, **kw) is None
    again = ensure_demo_dataset(root, **kw)
    assert again["skipped"] is False and (root / "SegmentationClass" / "train_00003.png").is_file()
    bigger = ensure_demo_dataset(root, **{**kw, "n_train": 7})
    assert bigger["skipped"] is False and len(_ids(root, "train")) == 7


@pytest.mark.parametrize("bad", [dict(n_train=0), dict(n_val=-1), dict(size=16), dict(seed=-1), dict(ignore_width=9)])
def test_bad_arguments_are_rejected(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError):
        make_demo_dataset(tmp_path / "x", **{**SMALL, **bad})
    assert not (tmp_path / "x").exists()


def test_cli_builds_then_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "tools" / "make_demo_data.py"
    spec = importlib.util.spec_from_file_location("make_demo_data", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = ["--out", str(tmp_path / "cli"), "--seed", "4", "--n-train", "5", "--n-val", "1", "--size", "48"]
    assert mod.main(args) == 0
    out = capsys.readouterr().out
    assert "built in" in out and "[train] images 5" in out
    assert mod.main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert mod.main(args[:-2] + ["--size", "8"]) == 1
    assert "size must be at least" in capsys.readouterr().err
