"""Dilated convs as space-to-batch (``wsss.models.atrous``) vs PyTorch's dilated conv, on CPU: layers and steps.

Part 1, one layer (forward + backward, NHWC, median of ``--repeats``): the dilated convs of the pipeline's nets at
the demo's sizes (MobileNetV2 OS16 classifier / BAO student: 960-ch depthwise at 8x8, dilation 2; mmseg's
DeepLabV3+ MobileNetV2 OS8: depthwise at 16x16, dilations 2 and 4, ASPP depthwise 6 / 12 / 18) and a ResNet
layer4 3x3 conv. Part 2, training steps (forward, backward, SGD; NHWC; the two paths alternate on the same weights
and batch): the BAS classifier and DeepLabV3+, as in bench/bench_layout.py.

Usage: python bench/bench_atrous.py [--repeats 8] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.bench_layout import classifier_step, deeplab_step, time_steps  # noqa: E402
from wsss.models.atrous import atrous_space_to_batch, use_plain_convs, use_space_to_batch  # noqa: E402

# (what, input N C H W, out channels, groups, dilation)
LAYERS = [
    ("classifier / BAO: block 15-17 depthwise", (16, 960, 8, 8), 960, 960, 2),
    ("DeepLab OS8: layer4 depthwise", (8, 192, 16, 16), 192, 192, 2),
    ("DeepLab OS8: layer7 depthwise", (8, 960, 16, 16), 960, 960, 4),
    ("DeepLab ASPP depthwise d6", (8, 320, 16, 16), 320, 320, 6),
    ("DeepLab ASPP depthwise d12 (sub-grid 2: plain conv)", (8, 320, 16, 16), 320, 320, 12),
    ("ResNet layer4 3x3 (dense)", (2, 512, 32, 32), 512, 1, 2),
]


def layer_ms(shape: tuple, cout: int, groups: int, d: int, space_to_batch: bool, repeats: int) -> float:
    x = torch.randn(*shape).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(cout, shape[1] // groups, 3, 3, requires_grad=True)
    grad = torch.randn(shape[0], cout, *shape[2:]).contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        y = (atrous_space_to_batch(x, w, None, d, groups) if space_to_batch
             else F.conv2d(x, w, padding=d, dilation=d, groups=groups))
        y.backward(grad)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print("| layer (forward + backward) | input | dilation | dilated conv ms | space-to-batch ms | ratio |")
    print("|---|---|---|---|---|---|")
    for what, shape, cout, groups, d in LAYERS:
        base = layer_ms(shape, cout, groups, d, False, args.repeats)
        s2b = layer_ms(shape, cout, groups, d, True, args.repeats)
        print(f"| {what} | {'x'.join(map(str, shape))} | {d} | {base:.1f} | {s2b:.1f} | {base / s2b:.2f}x |",
              flush=True)
    print("\n| model (training step, NHWC) | dilated convs | plain ms | space-to-batch ms | ratio |")
    print("|---|---|---|---|---|")
    for name, build in (("BAS classifier, MobileNetV2, batch 16, 128 px", classifier_step),
                        ("DeepLabV3+ MobileNetV2 (mmseg), batch 8, 128 px", deeplab_step)):
        torch.manual_seed(0)
        model, loss_fn = build(torch.device("cpu"))
        use_space_to_batch(model)  # the classifier's backbone has them from its build already
        n, base, s2b = use_plain_convs(model), [], []
        for _ in range(2):  # alternate: plain, space-to-batch, plain, space-to-batch
            use_plain_convs(model)
            base.append(time_steps(model, loss_fn, torch.channels_last, False, args.repeats))
            use_space_to_batch(model)
            s2b.append(time_steps(model, loss_fn, torch.channels_last, False, args.repeats))
        b, s = min(base), min(s2b)
        print(f"| {name} | {n} | {1000 * b:.0f} | {1000 * s:.0f} | {b / s:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
