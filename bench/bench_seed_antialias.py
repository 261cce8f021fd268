"""Seeds of large photos with and without an antialiased downscale, same classifier.

The seeds stage shrinks a photo longer than ``seeds.max_image_side`` (and every scale below 1) with torch's
bilinear ``interpolate``, which samples without a low-pass filter; the classifier trained on PIL-resized crops,
which are filtered. This runs the stage's own ``image_seeds`` on every image of a split both ways and prints the
seed mIoU over a threshold sweep (the best threshold of each variant is chosen with the ground truth of the images
it reports: an oracle, fit to compare the two variants, not a result).

    python bench/bench_seed_antialias.py --root /tmp/d/rc1000 --classifier W/classify/model.pth [--images 96]
        [--config configs/custom/bas_irn_cpu.py]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
import stages  # noqa: F401  (registers the dataset hooks)
import wsss.transforms as transforms
from pipeline.config import load_config
from pipeline.stage import data_hooks
from stages.seeds import image_seeds
from wsss.maps import SeedMaps, seed_labels
from wsss.metrics import ConfusionMatrix, summarize
from wsss.models.classifier import load_classifier

THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 17))


def antialiased_batch(image: np.ndarray, scale: float, flip: bool = True) -> torch.Tensor:
    """``wsss.transforms.scaled_batch`` with torch's antialiased bilinear downscale (PIL's filter)."""
    x = transforms.to_tensor(image)
    if scale != 1.0:
        h, w = image.shape[:2]
        x = F.interpolate(x, (max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear",
                          align_corners=False, antialias=scale < 1.0)
    return torch.cat([x, x.flip(-1)], 0) if flip else x


def sweep(ds, model, ids, scales, max_side) -> list[float]:
    """Seed mIoU (bas+cam, multi-scale + flip) at each of THRESHOLDS over ``ids``."""
    confs = [ConfusionMatrix(ds.num_classes) for _ in THRESHOLDS]
    for id_ in ids:
        image, keys = ds.image(id_), ds.label_set(id_)
        s4, high = image_seeds(model, image, keys, transforms.bounded_scales(image.shape[:2], scales, max_side),
                               "bas+cam", True)
        maps, gt = SeedMaps(keys=np.asarray(keys), stride4=s4, high=high), ds.mask(id_)
        for conf, t in zip(confs, THRESHOLDS):
            conf.update(seed_labels(maps, t), gt)
    return [summarize(c, list(ds.classes))["mIoU"] for c in confs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--classifier", required=True)
    ap.add_argument("--config", default="configs/custom/bas_irn_cpu.py")
    ap.add_argument("--images", type=int, default=96)
    args = ap.parse_args()
    cfg = load_config(args.config, {"dataset.root": args.root})
    ds = data_hooks().dataset(cfg.dataset)
    model = load_classifier(args.classifier, cfg.classify, ds.num_fg).eval().to(memory_format=torch.channels_last)
    ids = ds.ids[:args.images]
    scales, max_side = tuple(cfg.seeds.scales), cfg.seeds.max_image_side
    print(f"{len(ids)} images of {args.root}, scales {scales}, max_image_side {max_side}")
    plain_batch, results = transforms.scaled_batch, {}
    for name, batch_fn in (("plain", plain_batch), ("antialias", antialiased_batch)):
        transforms.scaled_batch = batch_fn  # image_seeds looks it up at call time
        t0 = time.time()
        miou = sweep(ds, model, ids, scales, max_side)
        best = int(np.argmax(miou))
        results[name] = {"best_miou": miou[best], "best_threshold": THRESHOLDS[best],
                         "seconds": round(time.time() - t0, 1), "sweep": dict(zip(THRESHOLDS, miou))}
        print(f"{name:10s} best {miou[best]:.2f} at t={THRESHOLDS[best]} ({results[name]['seconds']} s)")
    transforms.scaled_batch = plain_batch
    print(json.dumps(results))


if __name__ == "__main__":
    main()
