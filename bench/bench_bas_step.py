"""Time one training step (forward + backward + SGD) of BAS vs the CAM baseline on the same batch, and BAS with
the public code's per-step deepcopy of the high layers + head instead of our functional call.

Target: BAS <= 1.3x CAM. Usage: python bench/bench_bas_step.py [--backbone mobilenet_v2] [--size 128] [--batch 8]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
import wsss  # noqa: F401  (compat before torchvision)
from wsss.models import build_classifier


def make_step(model):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)

    def step(x, y):
        out = model(x, y)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        if x.is_cuda:
            torch.cuda.synchronize()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g).to(dev)
    y = (torch.rand(args.batch, args.classes, generator=g) < 0.15).float()
    y[torch.arange(args.batch), torch.arange(args.batch) % args.classes] = 1
    y = y.to(dev)
    variants = {"cam": dict(method="cam"), "bas": dict(method="bas"), "bas_deepcopy": dict(method="bas",
                                                                                          bg_branch="deepcopy")}
    steps = {}
    for name, kw in variants.items():
        torch.manual_seed(0)
        steps[name] = make_step(build_classifier(dict(backbone=args.backbone, pretrained=False, **kw),
                                                 args.classes).to(dev))
    # interleaved (cam, bas, deepcopy, cam, ...) so a busy machine slows every variant alike
    times: dict[str, list[float]] = {n: [] for n in steps}
    for i in range(args.warmup + args.iters):
        for name, step in steps.items():
            t = time.perf_counter()
            step(x, y)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t)
    res = {n: {"median_s": round(statistics.median(t), 4), "min_s": round(min(t), 4)} for n, t in times.items()}
    for n in ("bas", "bas_deepcopy"):
        res[f"{n}_over_cam_median"] = round(res[n]["median_s"] / res["cam"]["median_s"], 3)
        res[f"{n}_over_cam_min"] = round(res[n]["min_s"] / res["cam"]["min_s"], 3)
    res["setup"] = dict(vars(args), threads=torch.get_num_threads())
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
