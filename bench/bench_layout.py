"""Training-step time of the pipeline's conv nets in NCHW vs NHWC (``runtime.channels_last``), on CPU or CUDA.

Two models, the demo's sizes: the BAS classifier (MobileNetV2, batch 16, 128 px; the classify / bao / affinity
backbone) and mmseg's DeepLabV3+ MobileNetV2 (batch 8, 128 px crop; the segment stage). One step = forward,
backward and SGD update, median of ``--repeats`` after two warm-up steps; both layouts alternate on the same
weights and batch. ``--bf16`` adds rows with CPU bfloat16 autocast (not used by the pipeline: measured only).

Usage: python bench/bench_layout.py [--repeats 6] [--threads 2] [--bf16]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
import wsss  # noqa: E402,F401  (compat before torchvision)


def classifier_step(device: torch.device):
    from wsss.models import build_classifier

    model = build_classifier(dict(backbone="mobilenet_v2", method="bas", pretrained=False), 5).to(device).train()
    x, y = torch.randn(16, 3, 128, 128, device=device), (torch.rand(16, 5, device=device) > 0.6).float()
    y[torch.arange(16), torch.randint(0, 5, (16,))] = 1.0  # BAS needs a positive class in every image
    return model, lambda m: m(x, y)["loss"]


def deeplab_step(device: torch.device):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    import wsss.mmseg_ext  # noqa: F401

    init_default_scope("mmseg")
    cfg = Config.fromfile(str(ROOT / "configs/segment/mobilenetv2_deeplabv3plus_demo.py"))
    cfg.model.backbone.tv_checkpoint = None
    cfg.model.data_preprocessor = None
    cfg.model.decode_head.num_classes = cfg.model.auxiliary_head.num_classes = 6
    model = MODELS.build(cfg.model).to(device).train()
    x = torch.randn(8, 3, 128, 128, device=device)
    samples = []
    for _ in range(8):
        s = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 6, (1, 128, 128), device=device)))
        s.set_metainfo(dict(img_shape=(128, 128), pad_shape=(128, 128), ori_shape=(128, 128)))
        samples.append(s)
    return model, lambda m: sum(v for k, v in m(x, samples, mode="loss").items() if "loss" in k)


def time_steps(model, loss_fn, layout: torch.memory_format, bf16: bool, repeats: int) -> float:
    model.to(memory_format=layout)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    device = next(model.parameters()).device
    times = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model)
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="also time CPU bfloat16 autocast")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print("| model (training step) | NCHW ms | NHWC ms | NCHW / NHWC |" + (" NHWC + bf16 ms |" if args.bf16 else ""))
    print("|---|---|---|---|" + ("---|" if args.bf16 else ""))
    for name, build in (("BAS classifier, MobileNetV2, batch 16, 128 px", classifier_step),
                        ("DeepLabV3+ MobileNetV2 (mmseg), batch 8, 128 px", deeplab_step)):
        torch.manual_seed(0)
        model, loss_fn = build(device)
        nchw = time_steps(model, loss_fn, torch.contiguous_format, False, args.repeats)
        nhwc = time_steps(model, loss_fn, torch.channels_last, False, args.repeats)
        row = f"| {name} | {1000 * nchw:.0f} | {1000 * nhwc:.0f} | {nchw / nhwc:.2f}x |"
        if args.bf16:
            row += f" {1000 * time_steps(model, loss_fn, torch.channels_last, True, args.repeats):.0f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
