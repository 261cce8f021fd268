#!/usr/bin/env python
"""One training step of BAO's multi-level student (``bao.head_levels``) on cached frozen levels, on CPU: the step
time at a crop size, and a torch.profiler table of its operators.

Usage: python bench/bench_bao_head_step.py [--crop 208] [--classes 8] [--hidden 256] [--nhwc] [--threads 2]
Random images through an untrained MobileNetV2 (the cost does not depend on the weights); the step is the bao
stage's (EMA update, the teacher's labels, the student's losses), timed with backward and SGD by
bench_layout.time_steps like the other step benchmarks. bench/README.md ("A frozen student
on several backbone levels") has its numbers.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
import stages  # noqa: E402,F401  (stack fixes before torchvision)
from bench.bench_layout import time_steps  # noqa: E402  (the timing loop of the other step benchmarks)


def main() -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from wsss.models import build_classifier
    from wsss.models.bao import BAOModel, BAOStudent

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=208)
    ap.add_argument("--classes", type=int, default=8, help="foreground classes")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--nhwc", action="store_true", help="the model in channels-last layout, as the stage places it")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    classifier = build_classifier(dict(backbone="mobilenet_v2", method="bas", pretrained=False), args.classes)
    student = BAOStudent.from_classifier(classifier, hidden=args.hidden, frozen_backbone=True,
                                         head_levels=(0, 1, 2, 3), head_dims=(32, 32, 64, 64))
    model = BAOModel(student, ema_momentum=0.99).train()
    images = torch.randn(args.batch, 3, args.crop, args.crop)
    with torch.no_grad():  # the cache stores float16 and serves float32
        levels = [f.half().float() for f in student.features(images)]
    labels = torch.zeros(args.batch, args.classes)
    labels[:, 0] = 1.0
    labels[::2, 1] = 1.0
    target = torch.randint(0, 3, (args.batch, args.crop, args.crop))
    layout = torch.channels_last if args.nhwc else torch.contiguous_format

    def loss(m: BAOModel) -> torch.Tensor:
        m.update_teacher()
        return m(levels, labels, target, use_teacher=True)["loss"]

    ms = 1000 * time_steps(model, loss, layout, False, args.repeats)
    print(f"crop {args.crop}, {args.classes} classes, hidden {args.hidden}, {'NHWC' if args.nhwc else 'NCHW'}, "
          f"batch {args.batch}, {args.threads} threads: {ms:.0f} ms a step (median of {args.repeats})")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        time_steps(model, loss, layout, False, 1)  # 3 steps
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))

if __name__ == "__main__":
    main()
