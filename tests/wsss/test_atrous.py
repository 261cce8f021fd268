"""Dilated convs as space-to-batch (wsss.models.atrous): same outputs and gradients, taken only where it helps."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wsss.models import atrous, build_backbone
from wsss.models.atrous import SpaceToBatchConv2d, atrous_space_to_batch, use_plain_convs, use_space_to_batch


@pytest.mark.parametrize("n,c,h,w,cout,groups,d,k,channels_last", [
    (2, 8, 16, 16, 8, 8, 2, 3, True),  # depthwise, sizes divisible by the dilation
    (2, 8, 13, 11, 8, 8, 2, 3, True),  # sizes not divisible: padded below / right, cropped back
    (2, 6, 13, 11, 12, 1, 3, 3, False),  # dense, NCHW input
    (1, 4, 9, 20, 4, 2, 2, 5, True),  # grouped, 5x5 kernel
    (2, 5, 16, 16, 5, 5, 6, 3, True),  # ASPP-like: 16 cells, dilation 6 -> 3x3 sub-grids
])
def test_space_to_batch_equals_the_dilated_conv(n, c, h, w, cout, groups, d, k, channels_last):
    torch.manual_seed(0)
    x = torch.randn(n, c, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    weight = torch.randn(cout, c // groups, k, k, requires_grad=True)
    bias = torch.randn(cout, requires_grad=True)
    want = F.conv2d(x, weight, bias, padding=d * (k // 2), dilation=d, groups=groups)
    got = atrous_space_to_batch(x, weight, bias, d, groups)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(want)
    want_grads = torch.autograd.grad(want, (x, weight, bias), grad_out)
    got_grads = torch.autograd.grad(got, (x, weight, bias), grad_out)
    for name, g, wg in zip(("input", "weight", "bias"), got_grads, want_grads):
        torch.testing.assert_close(g, wg, rtol=1e-4, atol=1e-4, msg=lambda m, name=name: f"grad {name}: {m}")


def test_only_stride1_same_padded_dilated_convs_are_swapped():
    model = nn.Sequential(
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4),  # yes
        nn.Conv2d(4, 4, 3, padding=1),  # no dilation
        nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2),  # strided
        nn.Conv2d(4, 4, 3, padding=1, dilation=2),  # not 'same' padding
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, padding_mode="reflect"),  # not zero padding
    )
    assert use_space_to_batch(model) == 1
    assert [type(m) is SpaceToBatchConv2d for m in model] == [True, False, False, False, False]
    assert use_space_to_batch(model) == 0  # already swapped


def test_mobilenet_backbone_trains_its_dilated_convs_as_space_to_batch(monkeypatch):
    """build_backbone swaps blocks 15-17's dilated depthwise convs; the state dict is unchanged; training on CPU
    takes the space-to-batch path with the plain model's outputs and gradients, inference the plain conv itself."""
    torch.manual_seed(0)
    bb = build_backbone("mobilenet_v2", pretrained=False)
    swapped = [name for name, m in bb.named_modules() if type(m) is SpaceToBatchConv2d]
    assert len(swapped) == 3 and all(m.dilation == (2, 2) for m in bb.modules() if type(m) is SpaceToBatchConv2d)
    reference = copy.deepcopy(bb)
    assert use_plain_convs(reference) == 3 and not any(type(m) is SpaceToBatchConv2d for m in reference.modules())
    assert list(bb.state_dict()) == list(reference.state_dict())

    calls = []
    real = atrous.atrous_space_to_batch
    monkeypatch.setattr(atrous, "atrous_space_to_batch", lambda *a: calls.append(a[3]) or real(*a))
    x = torch.randn(2, 3, 96, 96)  # stride 16: 6x6 cells, dilation 2 -> 3x3 sub-grids
    bb.eval(), reference.eval()
    out = bb.forward_high(bb.forward_mid(x))
    ref = reference.forward_high(reference.forward_mid(x))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert calls == [2, 2, 2]  # grad enabled on CPU: all three took it
    grads = torch.autograd.grad(out.square().mean(), [p for p in bb.parameters()])
    ref_grads = torch.autograd.grad(ref.square().mean(), [p for p in reference.parameters()])
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=1e-3, atol=1e-5)

    calls.clear()
    with torch.no_grad():  # inference: the plain conv, bit for bit
        assert torch.equal(bb.forward_high(bb.forward_mid(x)), reference.forward_high(reference.forward_mid(x)))
    assert calls == []
    with torch.enable_grad():  # 64 px: 4x4 cells, sub-grids of 2 are slower than the plain conv
        bb.forward_high(bb.forward_mid(torch.randn(1, 3, 64, 64)))
    assert calls == []
