"""ctx.place: the stage's device and memory layout (runtime.channels_last); NHWC computes the same maps."""
from __future__ import annotations

import torch
from mmengine.config import Config

from pipeline.stage import StageContext
from wsss.models import build_classifier


def _convs(model: torch.nn.Module) -> list[torch.Tensor]:
    """Weights whose layout shows: a depthwise (C, 1, k, k) or a 1x1 weight is contiguous in both layouts."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return [m.weight for m in convs if m.weight.shape[1] > 1 and m.weight.shape[-1] > 1]


def test_place_follows_runtime_channels_last(tmp_path):
    torch.manual_seed(0)
    ref = build_classifier(dict(backbone="mobilenet_v2", method="bas", pretrained=False), 3).eval()
    x = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        want = ref.backbone(x)
    for flag in (True, False):
        ctx = StageContext(name="t", cfg=Config(dict(runtime=dict(device="cpu", channels_last=flag))),
                           work_dir=tmp_path)
        model = build_classifier(dict(backbone="mobilenet_v2", method="bas", pretrained=False), 3)
        model.load_state_dict(ref.state_dict())
        assert ctx.place(model) is model and ctx.channels_last is flag
        convs = _convs(model)
        assert convs and all(w.is_contiguous(memory_format=torch.channels_last) is flag for w in convs)
        with torch.no_grad():
            got = model.eval().backbone(x)
        assert got.is_contiguous(memory_format=torch.channels_last) is flag
        # the same maths summed in another order: equal to float rounding, not bit for bit
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), (got - want).abs().max()
