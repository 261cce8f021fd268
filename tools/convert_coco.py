#!/usr/bin/env python
"""Convert MS COCO 2014 instance annotations into VOC-layout semantic masks and image-level labels.

Example::

    python tools/convert_coco.py --coco-root data/coco --split train2014 --split val2014

See docs/COCO.md for the layout, the overlap/crowd rules and what lands where.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsss.coco import CocoFormatError, convert_coco  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coco-root", required=True, help="folder with annotations/instances_<split>.json and <split>/")
    ap.add_argument("--split", action="append", dest="splits",
                    help="split to convert (repeatable; default: train2014 and val2014)")
    ap.add_argument("--out", default=None, help="output root (default: the COCO root)")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    ap.add_argument("--limit", type=int, default=None, help="convert only the first N images per split (smoke run)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    splits = args.splits or ["train2014", "val2014"]
    for split in splits:
        try:
            s = convert_coco(args.coco_root, split, out_root=args.out, workers=args.workers, limit=args.limit)
        except (FileNotFoundError, CocoFormatError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"[{split}] images: {s['images']}  in split list: {s['images_in_split']}  "
              f"without annotations: {s['images_without_annotations']}  crowd-only: {s['images_crowd_only']}  "
              f"(listed in ImageSets/{split}_unlabeled.txt)")
        print(f"[{split}] PNGs written: {s['pngs_written']}  kept (already there): {s['pngs_skipped_existing']}  "
              f"pixels ignored by crowd: {s['crowd_ignored_pixels']}  "
              f"images with crowd-only classes: {s['images_with_crowd_only_classes']}")
        print(f"[{split}] output: {s['out_root']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
