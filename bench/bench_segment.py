#!/usr/bin/env python
"""Training speed and peak memory of the demo segmenter (DeepLabV3+ MobileNetV2, 128px crops) on CPU.

Runs the real segment stage (mmengine Runner) on the synthetic demo dataset and reports s/iter (mmengine's
``train/time`` of the steady-state iterations), iterations/s and peak RSS of the process.

    python bench/bench_segment.py --iters 30 --threads 2
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wsss  # noqa: E402,F401  (stack fixes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="configs/segment/mobilenetv2_deeplabv3plus_demo.py")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import torch
    from mmengine.config import Config

    from pipeline.stage import StageContext
    from stages import segment
    from tools.demo_data import make_demo_dataset

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_demo_dataset(tmp / "data", seed=0, n_train=32, n_val=4, size=128)
        cfg = Config(dict(
            dataset=dict(type="custom", root=str(tmp / "data"), cache_dir=str(tmp / "cache")),
            runtime=dict(device="cpu", seed=0, amp=False),
            segment=dict(model=args.model, labels_from="gt", iters=args.iters, batch_size=args.batch_size,
                         crop_size=args.crop, img_scale=(4 * args.crop, args.crop), val_interval=0,
                         checkpoint_interval=args.iters, log_interval=5, num_workers=0, tensorboard=False)))
        t0 = time.perf_counter()
        res = segment.run(StageContext(name="segment", cfg=cfg, work_dir=tmp / "wd"))
        wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = dict(model=Path(args.model).stem, iters=args.iters, batch_size=args.batch_size, crop=args.crop,
               threads=args.threads, s_per_iter=round(res["s_per_iter"], 3),
               iters_per_s=round(1.0 / res["s_per_iter"], 2), train_seconds=res["train_seconds"],
               stage_wall_s=round(wall, 1), peak_rss_mb=round(peak_mb), loss_first=round(res["loss_first"], 3),
               loss_last=round(res["loss_last"], 3))
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
