#!/usr/bin/env python
"""A one-class variant of a VOC-layout dataset: one class kept, every other class made background.

Images without the kept class become background-only images (negatives); the split files are copied, so a
train split holds positives and negatives in the source's proportion (realcut's `person`: 71 of its first 300
train images). Images are linked (hard links where possible, else copied); masks are rewritten; ignore (255)
stays ignore. Used by bench/README.md "One class with background-only images".

    python tools/one_class_dataset.py --src data/realcut_small --out data/realcut_person --keep person
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cache import link_or_copy  # noqa: E402
from wsss.datasets import IGNORE, read_classes, read_label_png  # noqa: E402
from wsss.maps import save_label_png  # noqa: E402


def make_one_class(src: Path, out: Path, keep: str) -> dict[str, int]:
    """Write the variant; returns {split: number of images with the kept class} per split file."""
    classes = read_classes(src / "classes.txt")
    if keep not in classes[1:]:
        raise SystemExit(f"{src / 'classes.txt'}: no class '{keep}' (classes: {classes[1:]})")
    k = classes.index(keep)
    (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (out / "SegmentationClass").mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "ImageSets", out / "ImageSets", dirs_exist_ok=True)
    (out / "classes.txt").write_text(f"background\n{keep}\n")
    positives: dict[str, int] = {}
    for split_file in sorted((src / "ImageSets" / "Segmentation").glob("*.txt")):
        ids = [ln.split()[0] for ln in split_file.read_text().splitlines() if ln.strip()]
        n = 0
        for i in ids:
            img, dst = src / "JPEGImages" / f"{i}.jpg", out / "JPEGImages" / f"{i}.jpg"
            if not dst.exists():
                link_or_copy(img, dst)
            mask = read_label_png(src / "SegmentationClass" / f"{i}.png")
            one = np.where(mask == IGNORE, IGNORE, (mask == k).astype(np.uint8)).astype(np.uint8)
            save_label_png(out / "SegmentationClass" / f"{i}.png", one)
            n += bool((one == 1).any())
        positives[split_file.stem] = n
    return positives


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", required=True, help="a VOC-layout dataset with classes.txt")
    ap.add_argument("--out", required=True)
    ap.add_argument("--keep", required=True, help="the class to keep")
    args = ap.parse_args(argv)
    for split, n in make_one_class(Path(args.src), Path(args.out), args.keep).items():
        total = sum(1 for ln in (Path(args.out) / "ImageSets/Segmentation" / f"{split}.txt").read_text().splitlines()
                    if ln.strip())
        print(f"{split}: {n} of {total} images have '{args.keep}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
