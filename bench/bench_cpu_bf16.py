"""Training-step time on CPU, float32 vs bfloat16 autocast (``runtime.cpu_bf16``), for the models the stages train.

    python bench/bench_cpu_bf16.py

One forward + backward per call on random inputs (2 threads, NHWC as the stages run them), float32 and bfloat16
alternately, best of two rounds. bench/README.md, "bfloat16 training on CPU", has this machine's table.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
import torch  # noqa: E402

import stages  # noqa: E402, F401  (imports pipeline.compat before torchvision)
import wsss.mmseg_ext  # noqa: E402, F401  (registers TVMobileNetV2)
from wsss.auto_settings import cpu_bf16_hardware  # noqa: E402
from wsss.models import build_classifier  # noqa: E402
from wsss.models.atrous import use_space_to_batch  # noqa: E402
from wsss.segmentation.mmseg_config import _replace_type  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def best_time(step: Callable[[bool], None], bf16: bool, repeats: int) -> float:
    step(bf16)  # warm-up (oneDNN primitive creation)
    t0 = time.perf_counter()
    for _ in range(repeats):
        step(bf16)
    return (time.perf_counter() - t0) / repeats


def classifier_step(backbone: str, crop: int, batch: int) -> Callable[[bool], None]:
    torch.manual_seed(0)
    net = build_classifier(dict(backbone=backbone, pretrained=False, method="bas"), 20).train()
    net.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, crop, crop).contiguous(memory_format=torch.channels_last)
    y = torch.zeros(batch, 20)
    y[:, 0] = 1

    def step(bf16: bool) -> None:
        net.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = net(x, y)["loss"]
        loss.float().backward()
    return step


def deeplab_step(crop: int, batch: int) -> Callable[[bool], None]:
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(str(ROOT / "configs/segment/mobilenetv2_deeplabv3plus_demo.py"))
    cfg.model.backbone.tv_checkpoint = None
    cfg.model.decode_head.num_classes = cfg.model.auxiliary_head.num_classes = 6
    net = MODELS.build(_replace_type(cfg.model.to_dict(), "SyncBN", "BN")).train()
    net.to(memory_format=torch.channels_last)
    use_space_to_batch(net)
    x = torch.randn(batch, 3, crop, crop).contiguous(memory_format=torch.channels_last)

    def step(bf16: bool) -> None:
        net.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            feats = net.extract_feat(x)
            loss = net.decode_head(feats).float().square().mean() + net.auxiliary_head(feats).float().square().mean()
        loss.backward()
    return step


def main() -> None:
    torch.set_num_threads(2)
    print(f"bfloat16 units of this CPU: {cpu_bf16_hardware() or 'none (bfloat16 is emulated: expect it slower)'}")
    cases = [("classifier BAS mobilenet_v2, crop 128, batch 16", lambda: classifier_step("mobilenet_v2", 128, 16), 5),
             ("classifier BAS mobilenet_v2, crop 288, batch 16", lambda: classifier_step("mobilenet_v2", 288, 16), 3),
             ("classifier BAS resnet50, crop 288, batch 8", lambda: classifier_step("resnet50", 288, 8), 2),
             ("DeepLabV3+ mobilenet_v2 OS8, crop 128, batch 8", lambda: deeplab_step(128, 8), 5),
             ("DeepLabV3+ mobilenet_v2 OS8, crop 288, batch 8", lambda: deeplab_step(288, 8), 3)]
    print("| step | float32 (s) | bfloat16 autocast (s) | ratio |\n|---|---|---|---|")
    for name, build, repeats in cases:
        step = build()
        times = {False: [], True: []}
        for _ in range(2):
            for bf16 in (False, True):
                times[bf16].append(best_time(step, bf16, repeats))
        fp32, bf16 = min(times[False]), min(times[True])
        print(f"| {name} | {fp32:.3f} | {bf16:.3f} | {bf16 / fp32:.2f} |", flush=True)


if __name__ == "__main__":
    main()
