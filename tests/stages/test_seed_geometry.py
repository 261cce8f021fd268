"""Seed maps have IRN's ``make_cam`` geometry (the BAS WSSS code uses the same): checked on a 500x375 image
against a direct reimplementation of that code, for the three seed sources."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import wsss  # noqa: F401  (compat before torchvision)
from stages.seeds import image_seeds
from wsss.models import build_classifier
from wsss.transforms import scaled_batch

H, W = 375, 500
SCALES = (1.0, 0.5)
KEYS = [1, 3]


@pytest.fixture(scope="module")
def model_and_image():
    torch.manual_seed(0)
    model = build_classifier(dict(backbone="mobilenet_v2", pretrained=False, method="bas"), 4).eval()
    with torch.no_grad():  # an untrained model's maps are nearly flat; large head weights give them structure
        model.generator.weight.mul_(1e6)
        model.head.weight.mul_(1e9)
    rng = np.random.default_rng(0)
    image = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    image[100:250, 200:420] = (230, 40, 40)  # a structure the maps respond to, away from the borders
    return model, image


def irn_make_cam(model, image, keys, source: str):
    """IRN / BAS-Extension ``step/make_cam.py``, written out: per scale the map of the image plus its flipped
    mirror; ``cam`` = each resized straight to ``strided_size`` (stride 4) and summed; ``high_res`` = each
    resized to ``strided_up_size`` (the padded stride-16 multiple), summed, cropped to the image; both
    max-normalised per class; BAS + CAM: normalised, summed, normalised again."""
    strided_size = ((H + 3) // 4, (W + 3) // 4)
    strided_up_size = (math.ceil(H / 16) * 16, math.ceil(W / 16) * 16)

    def maps(name):
        outs = []
        with torch.no_grad():
            for s in SCALES:
                x = model.class_maps(scaled_batch(image, s, True))[name]
                outs.append(x[0] + x[1].flip(-1))
        strided = torch.sum(torch.stack([F.interpolate(o[None], strided_size, mode="bilinear",
                                                       align_corners=False)[0] for o in outs]), 0)
        high = torch.sum(torch.stack([F.interpolate(o[:, None], strided_up_size, mode="bilinear",
                                                    align_corners=False) for o in outs]), 0)[:, 0, :H, :W]
        strided, high = strided[keys], high[keys]
        strided = strided / (F.adaptive_max_pool2d(strided, (1, 1)) + 1e-5)
        high = high / (F.adaptive_max_pool2d(high, (1, 1)) + 1e-5)
        return strided, high

    if source != "bas+cam":
        return maps(source)
    (s_bas, h_bas), (s_cam, h_cam) = maps("bas"), maps("cam")
    s, h = s_bas + s_cam, h_bas + h_cam
    return s / (F.adaptive_max_pool2d(s, (1, 1)) + 1e-5), h / (F.adaptive_max_pool2d(h, (1, 1)) + 1e-5)


@pytest.mark.parametrize("source", ["bas", "cam", "bas+cam"])
def test_seeds_match_irn_make_cam_geometry(model_and_image, source):
    model, image = model_and_image
    stride4, high = image_seeds(model, image, KEYS, SCALES, source, flip=True)
    ref_stride4, ref_high = irn_make_cam(model, image, KEYS, source)
    assert stride4.shape == (2, 94, 125) and high.shape == (2, H, W)
    np.testing.assert_allclose(stride4, ref_stride4.numpy(), atol=1e-5)
    np.testing.assert_allclose(high, ref_high.numpy(), atol=1e-5)
    assert np.allclose(high.reshape(2, -1).max(1), 1.0, atol=1e-3)  # every source peaks at 1 (bas+cam too)
    assert high.std() > 0.05  # maps with structure: the geometry matters


def test_direct_resize_to_the_image_is_not_the_reference(model_and_image):
    """What the seeds stage did before: each stride-16 map resized straight to (H, W). On 500x375 (24x32
    cells for 384x512 px) that stretches the grid over 375 rows and shifts boundaries toward the top-left."""
    model, image = model_and_image
    _, ref_high = irn_make_cam(model, image, KEYS, "bas")
    with torch.no_grad():
        direct = sum(F.interpolate((lambda x: x[:1] + x[1:].flip(-1))(model.class_maps(scaled_batch(image, s))["bas"]),
                                   (H, W), mode="bilinear", align_corners=False)[0, KEYS] for s in SCALES)
    direct = direct / (direct.flatten(1).max(1).values[:, None, None] + 1e-5)
    assert float((direct - ref_high).abs().max()) > 0.02
