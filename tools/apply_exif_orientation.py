#!/usr/bin/env python
"""Upright copies of a folder of images: each image turned as its EXIF orientation tag says (what viewers and
many annotation tools show), the tag dropped. For masks drawn on that view; the pipeline reads stored pixels.

    python tools/apply_exif_orientation.py --images data/my_dataset/JPEGImages
    # then: --cfg-options dataset.img_dir=JPEGImages_upright

Images without a tag (or with orientation 1) are linked (hard links where possible, else copied) unchanged;
turned JPEGs are re-encoded at --quality (JPEG cannot be turned losslessly by PIL); other formats keep theirs.
Writes are atomic, so an interrupted run can be rerun.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cache import atomic_path, link_or_copy  # noqa: E402
from wsss.datasets.files import image_header  # noqa: E402
from wsss.datasets.layout import IMAGE_SUFFIXES  # noqa: E402


def upright_copies(images: Path, out: Path, quality: int = 95) -> tuple[int, int]:
    """Write ``out/<name>`` for every image in ``images``; returns (turned, unchanged) counts."""
    out.mkdir(parents=True, exist_ok=True)
    turned = unchanged = 0
    for path in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        target = out / path.name
        if target.exists():
            continue
        if image_header(path)[2] == 1:
            link_or_copy(path, target)
            unchanged += 1
            continue
        with Image.open(path) as im:
            upright = ImageOps.exif_transpose(im)
            kind = im.format
        with atomic_path(target, suffix=path.suffix) as tmp:
            upright.save(tmp, format=kind, **({"quality": quality} if kind == "JPEG" else {}))
        turned += 1
    return turned, unchanged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, required=True, help="a folder of images (e.g. <root>/JPEGImages)")
    ap.add_argument("--out", type=Path, default=None, help="default: <images>_upright beside it")
    ap.add_argument("--quality", type=int, default=95, help="JPEG quality of the turned images (default 95)")
    args = ap.parse_args()
    out = args.out or args.images.with_name(f"{args.images.name}_upright")
    turned, unchanged = upright_copies(args.images, out, args.quality)
    print(f"{out}: {turned} image(s) turned upright, {unchanged} without a tag linked; set "
          f"dataset.img_dir={out.name} (relative to the dataset root) to use them")


if __name__ == "__main__":
    main()
