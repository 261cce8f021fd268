#!/usr/bin/env python
"""Evaluate a folder of predicted label PNGs against a ground-truth folder: per-class table, mIoU, JSON.

Example::

    python tools/eval_miou.py --pred workdirs/voc/sem_seg --gt data/VOC2012/SegmentationClass \\
        --split-file data/VOC2012/ImageSets/Segmentation/train.txt --classes voc --json miou.json

PNGs are read as index maps (palette or greyscale); colour PNGs (RGB, on either side) are decoded with the VOC
colours of the classes, or with a CVAT / Datumaro ``--labelmap``; a colour that is no class is an error.
``<id>.png`` in --pred is compared with ``<id>.png`` in --gt. Ground-truth pixels equal to --ignore are skipped
(mmseg IoUMetric semantics, see wsss/metrics.py). A run on copies made by tools/downscale_dataset.py predicts at
the copies' size; ``--resize-pred`` scores such predictions on the full-size masks (each scaled to its mask's size
by nearest neighbour, as a user would scale it back).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cache import atomic_write_json  # noqa: E402
from wsss.datasets.colors import ColorTable, read_labelmap  # noqa: E402
from wsss.metrics import evaluate_folder, format_table, read_class_names, read_split_ids  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pred", required=True, help="folder of predicted label PNGs (<id>.png)")
    ap.add_argument("--gt", required=True, help="folder of ground-truth label PNGs (<id>.png)")
    ap.add_argument("--split-file", default=None, help="ids to evaluate, one per line (default: every PNG in --gt)")
    ap.add_argument("--classes", required=True, help="'voc', 'coco' or a classes.txt (one name per line)")
    ap.add_argument("--json", default=None, help="write the full summary (per-class numbers, confusion matrix) here")
    ap.add_argument("--ignore", type=int, default=255, help="ground-truth value to skip (default 255)")
    ap.add_argument("--labelmap", default=None,
                    help="CVAT / Datumaro labelmap.txt giving the colours of colour PNGs (default: VOC colours)")
    ap.add_argument("--resize-pred", action="store_true",
                    help="scale each prediction to its mask's size (nearest neighbour) when the sizes differ by a "
                         "common scale: predictions made on downscaled copies (tools/downscale_dataset.py)")
    args = ap.parse_args(argv)

    try:
        names = read_class_names(args.classes)
        ids = read_split_ids(args.split_file) if args.split_file else None
        colours = ColorTable.from_labelmap(read_labelmap(args.labelmap), list(names), Path(args.labelmap)) \
            if args.labelmap else ColorTable.voc(len(names))
        summary = evaluate_folder(args.pred, args.gt, ids, names, ignore_index=args.ignore, colours=colours,
                                  resize_pred=args.resize_pred)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_table(summary, names))
    print(f"images: {summary['num_images']}")
    if args.json:
        atomic_write_json(args.json, summary)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
