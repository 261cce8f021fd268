"""Dilated (atrous) convolutions trained as space-to-batch on CPU: the same products, 2.5-5x faster depthwise training.

PyTorch's CPU kernels (oneDNN) compute the backward of a *dilated depthwise* 3x3 conv much slower than the
undilated one (about 10x; bench/README "Dilated convolutions on CPU"); MobileNetV2 at output stride 16 (our classifiers,
the BAO student) and DeepLab's stride-8 backbone and ASPP are built of them. A stride-1 conv with dilation ``d``
and padding ``d * (k - 1) / 2`` equals an undilated conv with padding ``(k - 1) / 2`` run on each of the ``d x d``
interleaved sub-grids of the input (TensorFlow's ``space_to_batch`` atrous conv): the same products, summed in
another order where the kernels differ (outputs and gradients agree to float rounding, as with NHWC).

:func:`use_space_to_batch` swaps the class of every eligible ``nn.Conv2d`` in a model (parameters, state-dict
keys and hooks unchanged). The swapped conv takes the space-to-batch path only when it helps: on CPU, with
gradients to compute, and when each sub-grid is at least 3 x 3 (smaller ones, e.g. ASPP's dilation 18 on a
16-cell map, are slower that way); otherwise it is the plain conv.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MIN_SUBGRID = 3  # sub-grids smaller than this (per side) run the plain dilated conv (measured slower below)


def _eligible(conv: nn.Module) -> bool:
    """A 2-D conv whose dilation can move into the batch: stride 1, equal dilation > 1, 'same' zero padding."""
    if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or conv.stride != (1, 1):
        return False
    (dh, dw), (kh, kw) = conv.dilation, conv.kernel_size
    return dh == dw > 1 and kh % 2 == 1 and kw % 2 == 1 and conv.padding == (dh * (kh // 2), dw * (kw // 2))


def atrous_space_to_batch(x: Tensor, weight: Tensor, bias: Tensor | None, dilation: int, groups: int) -> Tensor:
    """``conv2d(x, weight, bias, padding=d*(k//2), dilation=d, groups)`` computed on the ``d x d`` sub-grids.
    Works in the NHWC order (channels-last tensors need no extra transposes; NCHW ones are transposed once)."""
    n, c, h, w = x.shape
    d = dilation
    hp, wp = -(-h // d) * d, -(-w // d) * d
    if (hp, wp) != (h, w):  # zeros below/right stand for the conv's own zero padding there
        x = F.pad(x, (0, wp - w, 0, hp - h))
    sh, sw = hp // d, wp // d
    sub = (x.permute(0, 2, 3, 1).reshape(n, sh, d, sw, d, c).permute(0, 2, 4, 1, 3, 5)
           .reshape(n * d * d, sh, sw, c).permute(0, 3, 1, 2))
    kh, kw = weight.shape[-2:]
    y = F.conv2d(sub, weight, bias, padding=(kh // 2, kw // 2), groups=groups)
    co = y.shape[1]
    y = (y.permute(0, 2, 3, 1).reshape(n, d, d, sh, sw, co).permute(0, 3, 1, 4, 2, 5)
         .reshape(n, hp, wp, co).permute(0, 3, 1, 2))
    return y[:, :, :h, :w] if (hp, wp) != (h, w) else y


class SpaceToBatchConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that trains its dilation as space-to-batch on CPU (see the module docstring)."""

    def forward(self, x: Tensor) -> Tensor:
        d = self.dilation[0]
        if (x.device.type == "cpu" and torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
                and -(-x.shape[-2] // d) >= MIN_SUBGRID and -(-x.shape[-1] // d) >= MIN_SUBGRID):
            return atrous_space_to_batch(x, self.weight, self.bias, d, self.groups)
        return super().forward(x)


def use_space_to_batch(model: nn.Module) -> int:
    """Make every eligible dilated conv of ``model`` a :class:`SpaceToBatchConv2d` (in place); returns how many."""
    n = 0
    for m in model.modules():
        if _eligible(m):
            m.__class__ = SpaceToBatchConv2d
            n += 1
    return n


def use_plain_convs(model: nn.Module) -> int:
    """Undo :func:`use_space_to_batch` (in place): every :class:`SpaceToBatchConv2d` back to ``nn.Conv2d``, for
    comparisons (bench/bench_atrous.py, the tests); returns how many."""
    swapped = [m for m in model.modules() if type(m) is SpaceToBatchConv2d]
    for m in swapped:
        m.__class__ = nn.Conv2d
    return len(swapped)
