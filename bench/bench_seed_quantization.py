"""What storing seed maps as uint8 (steps of 1/255, wsss.maps.quantize) costs, on a finished run's real seeds.

For every reported train image (the train split minus the calibration images, as eval_seeds reports) the seed
maps are computed again in float32 with the run's classifier and the seeds stage's own function and settings
(`stages.seeds.image_seeds`, scales bounded by `seeds.max_image_side`, NHWC as the stage runs them); then:
- reproduction: the stored uint8 maps (stride-4 and full-resolution) must equal the quantised float maps;
- seed labels over the threshold sweep t = 0.05..0.95 and with the run's learned background (BAO), float vs
  uint8: mIoU and the share of pixels whose label changes;
- the CRF stage's and the random walk stage's pseudo-labels (learned background, the config's crf and
  random_walk sections, the run's affinity net), float vs uint8.

    python bench/bench_seed_quantization.py --root /tmp/d/rc_s3 --work W [--config configs/custom/bas_irn_cpu.py]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.finished_run import open_run, reported_ids
from stages.random_walk import walk_image
from stages.seeds import image_seeds
from wsss.background import load_background
from wsss.crf import crf_params, seed_label_crf
from wsss.maps import SeedMaps, load_seeds, quantize, seed_labels
from wsss.metrics import ConfusionMatrix, summarize
from wsss.models.affinity_net import load_affinity_net
from wsss.models.classifier import load_classifier
from wsss.transforms import bounded_scales

STORED = {"crf": "crf/labels", "random walk": "random_walk/labels"}
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--work", required=True, type=Path, help="work dir of a finished run (classify, seeds, bao)")
    ap.add_argument("--config", default="configs/custom/bas_irn_cpu.py")
    ap.add_argument("--images", type=int, default=0, help="first N reported images (0: all)")
    args = ap.parse_args()
    cfg, ds, calib = open_run(args.root, args.work, args.config)  # 'auto' values resolved from the same data
    ids = reported_ids(ds, calib, args.images)
    scfg = dict(cfg.seeds)
    torch.set_num_threads(1)  # as each of the seeds stage's worker processes runs (one core per worker)
    model = load_classifier(args.work / "classify/model.pth", dict(cfg.classify), ds.num_fg).eval()
    if cfg.get("runtime", {}).get("channels_last", True):
        model.to(memory_format=torch.channels_last)
    affinity = load_affinity_net(args.work / "affinity/model.pth", dict(cfg.classify), ds.num_fg).eval()
    rw_cfg = dict(cfg.random_walk)
    params = crf_params(cfg.crf, (50, 5, 10))
    params["gt_prob"] = float(cfg.crf.get("gt_prob", 0.7))
    names = [f"t={t:.2f}" for t in THRESHOLDS] + ["learned", "crf", "random walk"]
    confs = {(n, kind): ConfusionMatrix(ds.num_classes) for n in names for kind in ("float", "uint8")}
    changed = dict.fromkeys(names, 0)
    unreproduced = dict.fromkeys(STORED, 0)
    pixels, values, differing = 0, 0, 0
    t0 = time.time()
    for id_ in ids:
        image, keys, gt = ds.image(id_), np.asarray(ds.label_set(id_)), ds.mask(id_)
        scales = bounded_scales(image.shape[:2], tuple(scfg["scales"]), scfg.get("max_image_side"))
        s4, high = image_seeds(model, image, keys, scales, scfg.get("source", "bas"), bool(scfg.get("flip", True)))
        stored = load_seeds(args.work / "seeds/maps" / f"{id_}.npz")
        for computed, kept in ((s4, stored.stride4), (high, stored.high)):
            values += computed.size
            differing += int((np.rint(kept * 255).astype(np.uint8) != quantize(computed)).sum())
        maps = {"float": SeedMaps(keys, s4, high), "uint8": stored}
        background = load_background(args.work / "bao", id_, stored.size)
        pixels += gt.size
        for name in names:
            labels = {}
            for kind, seeds in maps.items():
                if name == "crf":
                    labels[kind] = seed_label_crf(image, seeds.high, seeds.keys, background, params)
                elif name == "random walk":
                    with torch.no_grad():
                        labels[kind] = walk_image(affinity, image, seeds, rw_cfg, torch.device("cpu"), background)
                elif name == "learned":
                    labels[kind] = seed_labels(seeds, 0.0, background=background)
                else:
                    labels[kind] = seed_labels(seeds, float(name[2:]))
                confs[(name, kind)].update(labels[kind], gt)
            changed[name] += int((labels["float"] != labels["uint8"]).sum())
            if name in STORED:  # the uint8 row must be the stage's own output
                stored_png = np.asarray(Image.open(args.work / STORED[name] / f"{id_}.png"))
                unreproduced[name] += int((stored_png != labels["uint8"]).sum())
    print(f"{len(ids)} images, {time.time() - t0:.0f} s; stored uint8 maps vs quantised float maps: "
          f"{differing} of {values} values differ ({100 * differing / max(values, 1):.4f} %)")
    print("uint8 labels vs the run's stored labels, pixels differing: " +
          ", ".join(f"{name} {n}" for name, n in unreproduced.items()))
    print(f"{'labels':11s} {'float':>7s} {'uint8':>7s} {'diff':>6s} {'pixels changed %':>17s}")
    for name in names:
        f, u = (summarize(confs[(name, k)], list(ds.classes))["mIoU"] for k in ("float", "uint8"))
        print(f"{name:11s} {f:7.2f} {u:7.2f} {u - f:+6.2f} {100 * changed[name] / pixels:17.3f}")


if __name__ == "__main__":
    main()
