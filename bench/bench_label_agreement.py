"""The CRF and random-walk pseudo-labels of a finished run where they agree (255 = ignore where they do not):
writes them to a folder DeepLab can train on (`segment.labels_from=<folder>`) and scores both label sets and the
agreement on the reported train images (the train split minus the calibration images; the agreement's mIoU is
over the pixels it keeps, so it is not comparable with the others' as a label set).

    python bench/bench_label_agreement.py --root /tmp/d/realcut_small --work W --out W_agree_labels
    python -m pipeline.cli stage segment,eval_segment configs/custom/bas_irn_cpu.py --work-dir W2 \\
        --cfg-options dataset.root=/tmp/d/realcut_small segment.labels_from=W_agree_labels
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.finished_run import open_run, run_parser
from wsss.datasets import read_label_png
from wsss.maps import save_label_png
from wsss.metrics import ConfusionMatrix, summarize

IGNORE = 255


def main() -> None:
    ap = run_parser(__doc__, "crf, random_walk")
    ap.add_argument("--out", required=True, type=Path, help="folder for the agreement labels (<id>.png)")
    args = ap.parse_args()
    _, ds, calib = open_run(args.root, args.work, args.config)
    confs = {name: ConfusionMatrix(ds.num_classes) for name in ("crf", "random walk", "agreement")}
    ignored = pixels = 0
    for id_ in ds.ids:
        if not ds.label_set(id_):
            continue  # background-only: no pseudo-labels, DeepLab trains on it as background
        crf, walk = (read_label_png(args.work / stage / "labels" / f"{id_}.png") for stage in ("crf", "random_walk"))
        agreed = np.where(crf == walk, crf, IGNORE).astype(np.uint8)
        save_label_png(args.out / f"{id_}.png", agreed)
        ignored, pixels = ignored + int((agreed == IGNORE).sum()), pixels + agreed.size
        if id_ in calib or not ds.has_masks:
            continue
        gt = ds.mask(id_)
        confs["crf"].update(crf, gt)
        confs["random walk"].update(walk, gt)
        confs["agreement"].update(agreed, np.where(agreed == IGNORE, IGNORE, gt).astype(np.uint8))
    print(f"agreement labels in {args.out}: {100 * ignored / max(pixels, 1):.1f}% of the pixels ignored")
    for name, conf in confs.items():
        s = summarize(conf, list(ds.classes))
        print(f"{name:12s} mIoU {s['mIoU']:.2f}  IoU {[None if v is None else round(v, 1) for v in s['iou']]}")


if __name__ == "__main__":
    main()
