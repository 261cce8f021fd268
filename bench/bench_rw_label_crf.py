"""The random-walk labels of a finished run through the label CRF (`random_walk.label_crf`), for several CRF
settings: scores each on the reported train images (the train split minus the calibration images) next to the
run's own random-walk and CRF labels, and writes the labels of the first setting for DeepLab
(`segment.labels_from=<folder>`). The stage computes the same maps (wsss.crf.label_map_crf of its walked labels;
tests/stages/test_gtfree.py checks that), so this reruns no walk.

    python bench/bench_rw_label_crf.py --root /tmp/d/realcut_small --work W --settings 0.8:30,5,4 0.9:50,5,4 \\
        --out W_rwcrf_labels
    python -m pipeline.cli stage segment,eval_segment configs/custom/bas_irn_cpu.py --work-dir W2 \\
        --cfg-options dataset.root=/tmp/d/realcut_small segment.labels_from=W_rwcrf_labels

A setting is ``gt_prob:sxy,srgb,compat`` (the bilateral kernel; the Gaussian kernel (3, 3) and 10 iterations as
the crf stage's).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.finished_run import open_run
from wsss.crf import label_map_crf
from wsss.datasets import read_label_png
from wsss.maps import save_label_png
from wsss.metrics import ConfusionMatrix, summarize


def parse_setting(text: str) -> dict:
    """``'0.8:30,5,4'`` -> the label CRF's settings (random_walk.label_crf)."""
    gt_prob, bilateral = text.split(":")
    return dict(gt_prob=float(gt_prob), gaussian=(3, 3), bilateral=tuple(float(v) for v in bilateral.split(",")),
                iters=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--work", required=True, type=Path, help="work dir of a finished run (crf, random_walk)")
    ap.add_argument("--settings", nargs="+", default=["0.8:30,5,4"], help="gt_prob:sxy,srgb,compat ...")
    ap.add_argument("--out", type=Path, help="folder for the first setting's labels (<id>.png), every train image")
    ap.add_argument("--config", default="configs/custom/bas_irn_cpu.py")
    args = ap.parse_args()
    _, ds, calib = open_run(args.root, args.work, args.config)
    settings = {text: parse_setting(text) for text in args.settings}
    confs = {name: ConfusionMatrix(ds.num_classes) for name in ("crf", "random walk", *settings)}
    written = 0
    for id_ in ds.ids:
        keys = np.array(sorted(ds.label_set(id_)), np.int64)
        if not len(keys):
            continue  # background-only: no pseudo-labels, DeepLab trains on it as background
        scored = id_ not in calib and ds.has_masks
        if not scored and args.out is None:
            continue
        walk = read_label_png(args.work / "random_walk/labels" / f"{id_}.png")
        image = ds.image(id_)
        refined = {text: label_map_crf(image, walk, keys, p) for text, p in settings.items() if scored}
        if args.out is not None:
            first = refined.get(args.settings[0])
            if first is None:
                first = label_map_crf(image, walk, keys, settings[args.settings[0]])
            save_label_png(args.out / f"{id_}.png", first)
            written += 1
        if scored:
            gt = ds.mask(id_)
            confs["crf"].update(read_label_png(args.work / "crf/labels" / f"{id_}.png"), gt)
            confs["random walk"].update(walk, gt)
            for text, labels in refined.items():
                confs[text].update(labels, gt)
    if args.out is not None:
        print(f"{written} label maps of setting {args.settings[0]} in {args.out}")
    print("mIoU on the reported train images; IoU per class:", ", ".join(ds.classes))
    for name, conf in confs.items():
        s = summarize(conf, list(ds.classes))
        label = name if name in ("crf", "random walk") else f"random walk + label CRF {name}"
        print(f"{label:38s} {s['mIoU']:.2f}  {[None if v is None else round(v, 1) for v in s['iou']]}")


if __name__ == "__main__":
    main()
