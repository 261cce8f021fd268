#!/usr/bin/env python
"""Downscaled copies of a dataset's images and masks, for photos far larger than the pipeline needs (phone photos
of 3000-4000 px). The CRF, affinity-label, random-walk and evaluation stages work at each photo's own size
(as IRN does; VOC's photos are <= 500 px): at 3760 px they took ~140 s per training image on 2 CPU cores and 15 GB
of memory (bench/README.md, "Photos of 3760 px").

    python tools/downscale_dataset.py --root data/my_dataset --max-side 1024
    # then: --cfg-options dataset.img_dir=JPEGImages_1024 dataset.mask_dir=SegmentationClass_1024

Each image whose long side exceeds --max-side is resized to it (Lanczos; stored pixels as they are, an EXIF tag
kept), each mask to the same size with nearest neighbour (class indices and colours unchanged; a palette kept).
Smaller files are linked (hard links where possible, else copied). Split files, classes.txt and label files stay
as they are. Val masks are downscaled too, so the mIoU of a run on the copies is measured at the smaller size;
``tools/eval_miou.py --resize-pred`` scores its predictions on the full-size masks.
Writes are atomic and a file already written is kept, so an interrupted run can be rerun.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cache import atomic_path, link_or_copy  # noqa: E402
from wsss.datasets.layout import IMAGE_SUFFIXES  # noqa: E402

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


def scaled_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(w, h) with the long side ``max_side`` (ratio kept); ``size`` itself when it is not longer."""
    w, h = size
    if max(w, h) <= max_side:
        return w, h
    s = max_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def downscale_folder(folder: Path, out: Path, max_side: int, masks: bool) -> tuple[int, int]:
    """Write ``out/<name>`` for every image (``masks``: mask) file in ``folder``; returns (resized, linked)."""
    suffixes = MASK_SUFFIXES if masks else IMAGE_SUFFIXES
    out.mkdir(parents=True, exist_ok=True)
    resized = linked = 0
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                       and not p.name.startswith(".")):
        target = out / path.name
        if target.exists():
            continue
        with Image.open(path) as im:
            size = scaled_size(im.size, max_side)
            if size == im.size:
                link_or_copy(path, target)
                linked += 1
                continue
            kind, exif = im.format, im.info.get("exif")
            if masks:
                small = im.resize(size, Image.NEAREST)  # keeps the mode and a palette
            else:
                small = (im if im.mode in ("RGB", "L", "I;16", "I", "F") else im.convert("RGB")).resize(
                    size, Image.LANCZOS)
        extra = {"quality": 95, **({"exif": exif} if exif else {})} if kind == "JPEG" else {}
        with atomic_path(target, suffix=path.suffix) as tmp:
            small.save(tmp, format=kind, **extra)
        resized += 1
    return resized, linked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="the dataset root (VOC layout)")
    ap.add_argument("--max-side", type=int, default=1024, help="the long side of the copies (default 1024)")
    ap.add_argument("--img-dir", default="JPEGImages", help="image folder under the root (default JPEGImages)")
    ap.add_argument("--mask-dir", default="SegmentationClass",
                    help="mask folder under the root (default SegmentationClass; skipped when absent)")
    args = ap.parse_args()
    if args.max_side < 32:
        ap.error(f"--max-side must be at least 32 pixels, got {args.max_side}")
    images = args.root / args.img_dir
    if not images.is_dir():
        ap.error(f"{images}: image folder is missing (--root, --img-dir)")
    keys = []
    for folder, is_mask, key in ((images, False, "img_dir"), (args.root / args.mask_dir, True, "mask_dir")):
        if not folder.is_dir():
            print(f"{folder}: no such folder, skipped")
            continue
        out = folder.with_name(f"{folder.name}_{args.max_side}")
        resized, linked = downscale_folder(folder, out, args.max_side, is_mask)
        print(f"{out}: {resized} file(s) downscaled to a long side of {args.max_side} px, {linked} linked (already "
              "that small)")
        keys.append(f"dataset.{key}={out.name}")
    print(f"use them with --cfg-options {' '.join(keys)}")
    if any(k.startswith("dataset.mask_dir") for k in keys):
        print("that run's mIoUs are at this size; to score its val predictions on the original masks: python "
              f"tools/eval_miou.py --pred <work dir>/eval_segment/pred --gt {args.root / args.mask_dir} --split-file "
              f"{args.root}/ImageSets/Segmentation/val.txt --classes {args.root}/classes.txt --resize-pred")


if __name__ == "__main__":
    main()
