"""Seed emission speed: images/s with each scale's image and its flip in one forward pass (what the seeds stage
does) vs one forward pass per (scale, flip). Also checks both give the same maps.

Usage: python bench/bench_seeds.py [--backbone mobilenet_v2] [--size 128] [--images 8]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
import wsss  # noqa: F401
from stages.seeds import image_seeds
from tools.demo_data import make_demo_dataset
from wsss.datasets import build_dataset
from wsss.models import build_classifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--source", default="bas+cam")
    ap.add_argument("--scales", default="1.0,0.5,1.5,2.0")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scales = tuple(float(s) for s in args.scales.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        make_demo_dataset(f"{tmp}/data", seed=0, n_train=args.images, n_val=1, size=args.size)
        ds = build_dataset(dict(type="custom", root=f"{tmp}/data", cache_dir=f"{tmp}/cache"))
        images = [(ds.image(i), ds.label_set(i)) for i in ds.ids]
        torch.manual_seed(0)
        model = build_classifier(dict(backbone=args.backbone, pretrained=False), ds.num_fg).to(args.device).eval()
        image_seeds(model, images[0][0], images[0][1], scales, args.source)  # warm-up
        res, maps = {}, {}
        for name, batched in (("batched_flip", True), ("one_pass_each", False)):
            t = time.perf_counter()
            maps[name] = [image_seeds(model, im, keys, scales, args.source, batched=batched) for im, keys in images]
            dt = time.perf_counter() - t
            res[name] = {"seconds": round(dt, 3), "images_per_s": round(len(images) / dt, 3)}
        diff = max(float(np.abs(a[1] - b[1]).max()) for a, b in zip(maps["batched_flip"], maps["one_pass_each"]))
    res["speedup"] = round(res["one_pass_each"]["seconds"] / res["batched_flip"]["seconds"], 3)
    res["max_abs_diff"] = diff
    res["setup"] = dict(vars(args), threads=torch.get_num_threads())
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
