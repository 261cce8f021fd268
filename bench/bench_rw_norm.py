"""Random walk with the learned background: `random_walk.class_norm` 'global' (class maps divided by their global
max, IRN's rule) vs 'per_class' (each class by its own max), on the outputs of a finished run (its seeds, BAO
background and affinity net).

One walk per image (the stage's own `walk_scores`, with the config's random_walk section); both label maps
derived from the same walked scores; mIoU on the train images minus the calibration split (what eval_pseudo
reports), with per-class IoU and recall. The row of the run's own class_norm must equal its random_walk labels
('stored'), which checks the reproduction.

    python bench/bench_rw_norm.py --root /tmp/d/realcut_480 --work W [--config configs/custom/bas_irn_cpu.py]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.finished_run import open_run, reported_ids
from stages.random_walk import walk_scores
from wsss.background import load_background
from wsss.maps import load_image_seeds
from wsss.metrics import ConfusionMatrix, summarize
from wsss.models.affinity_net import load_affinity_net
from wsss.random_walk import scores_to_labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--work", required=True, type=Path, help="work dir of a finished run (learned background)")
    ap.add_argument("--config", default="configs/custom/bas_irn_cpu.py")
    args = ap.parse_args()
    cfg, ds, calib = open_run(args.root, args.work, args.config)
    ids = reported_ids(ds, calib)
    rw_cfg = dict(cfg.random_walk)  # its 'auto' values resolved from the same data, as in the run
    model = load_affinity_net(args.work / "affinity/model.pth", dict(cfg.classify), ds.num_fg).eval()
    confs = {name: ConfusionMatrix(ds.num_classes) for name in ("global", "per_class", "stored")}
    t0 = time.time()
    for id_ in ids:
        image, seeds = load_image_seeds(ds, id_, args.work / "seeds/maps")
        background = load_background(args.work / "bao", id_, seeds.size)
        with torch.no_grad():
            walked, walked_size = walk_scores(model, image, seeds, rw_cfg, torch.device("cpu"), background)
        gt = ds.mask(id_)
        for name in ("global", "per_class"):
            confs[name].update(scores_to_labels(walked, seeds.keys, walked_size, model.grid_stride, "learned",
                                                0.0, None, seeds.size, class_norm=name), gt)
        confs["stored"].update(np.asarray(Image.open(args.work / "random_walk/labels" / f"{id_}.png")), gt)
    print(f"{len(ids)} images, {time.time() - t0:.0f} s; classes {list(ds.classes)}")
    for name, conf in confs.items():
        s = summarize(conf, list(ds.classes))
        print(f"{name:9s} mIoU {s['mIoU']:.2f}  IoU {[round(x, 1) for x in s['iou']]}  "
              f"recall {[round(x, 1) for x in s['recall']]}")


if __name__ == "__main__":
    main()
