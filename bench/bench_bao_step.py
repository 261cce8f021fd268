"""One BAO training step with the EMA teacher's labels (bao.teacher_from_epoch on), on CPU: the whole-backbone and
the 'mid' student, and for 'mid' the teacher's labels computed from their own frozen pass (the former code) vs from
the student's (now). The former is reproduced exactly: the teacher's labels first, then the losses on them.

Usage: python bench/bench_bao_step.py [--batch 16] [--size 128] [--repeats 8] [--threads 2]
Prints the median step time (bench_layout.time_steps: forward, backward, SGD; NHWC) of each variant.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.bench_layout import time_steps  # noqa: E402
from wsss.models import build_classifier  # noqa: E402
from wsss.models.bao import BAOModel, BAOStudent  # noqa: E402


def step_ms(freeze: str, teacher_own_pass: bool, batch: int, size: int, repeats: int) -> float:
    torch.manual_seed(0)
    classifier = build_classifier(dict(backbone="mobilenet_v2", method="bas", pretrained=False), 5)
    model = BAOModel(BAOStudent.from_classifier(classifier, frozen_backbone=freeze), ema_momentum=0.99).train()
    images = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    labels = torch.zeros(batch, 5)
    labels[torch.arange(batch), torch.randint(0, 5, (batch,))] = 1.0
    seed_targets = torch.randint(0, 2, (batch, size, size))

    def loss(m: BAOModel) -> torch.Tensor:
        m.update_teacher()
        if teacher_own_pass:  # the former step: the teacher runs its own frozen part
            return m(images, labels, m.teacher_targets(images, labels, seed_targets))["loss"]
        return m(images, labels, seed_targets, use_teacher=True)["loss"]

    return 1000 * time_steps(model, loss, torch.channels_last, False, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"BAO step, batch {args.batch}, {args.size} px, {args.threads} threads, median of {args.repeats}")
    for name, freeze, own in (("whole backbone learns", "none", False),
                              ("'mid', teacher's own frozen pass (former)", "mid", True),
                              ("'mid', one frozen pass for both (now)", "mid", False)):
        print(f"  {name:45s} {step_ms(freeze, own, args.batch, args.size, args.repeats):7.0f} ms")


if __name__ == "__main__":
    main()
