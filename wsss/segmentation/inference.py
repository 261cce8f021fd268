"""Load the trained model and predict class probabilities over scales and flips (mmseg's SegTTAModel arithmetic)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .checks import check_num_classes


# ------------------------------------------------------------------------------------------- inference
def load_model(out_dir: str | os.PathLike, device: Any = "cpu", num_classes: int | None = None) -> Any:
    """The trained segmentor from a segment stage's ``mmseg_config.py`` + ``model.pth`` (eval mode)."""
    import torch
    from mmengine.config import Config
    from mmengine.model.utils import revert_sync_batchnorm
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS

    import wsss.mmseg_ext  # noqa: F401

    out_dir = Path(out_dir)
    cfg_path, ckpt = out_dir / "mmseg_config.py", out_dir / "model.pth"
    for p in (cfg_path, ckpt):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing (run the segment stage first)")
    mm = Config.fromfile(str(cfg_path))
    if num_classes is not None:
        check_num_classes(mm, num_classes, str(cfg_path))
    mm.model.pretrained = None
    mm.model.train_cfg = None
    if mm.model.backbone.get("type") == "TVMobileNetV2":
        mm.model.backbone.tv_checkpoint = None  # the trained weights come from model.pth
    mm.model.backbone.init_cfg = None
    from mmengine.registry import init_default_scope

    init_default_scope("mmseg")
    model = MODELS.build(mm.model)
    if not torch.cuda.is_available() or torch.device(device).type == "cpu":
        model = revert_sync_batchnorm(model)
    load_checkpoint(model, str(ckpt), map_location="cpu", strict=True, logger="silent")
    model.cfg = mm
    return model.to(device).eval()


def _rescale_size(h: int, w: int, scale: Sequence[int]) -> tuple[int, int]:
    """mmcv ``rescale_size`` with keep_ratio: fit (long, short) = scale; returns (h, w)."""
    long_e, short_e = max(scale), min(scale)
    f = min(long_e / max(h, w), short_e / min(h, w))
    return int(h * f + 0.5), int(w * f + 0.5)


def predict_probs(model: Any, image: np.ndarray, img_scale: Sequence[int], scales: Sequence[float] = (1.0,),
                  flip: bool = False) -> np.ndarray:
    """Class probabilities (K, H, W) for an RGB image: per scale (relative to the single-scale size ``img_scale``)
    and flip, logits resized to the image and flipped back, softmax, averaged (mmseg ``SegTTAModel`` arithmetic;
    with one scale and no flip, exactly mmseg's single-scale test)."""
    import cv2
    import torch
    import torch.nn.functional as F

    h0, w0 = image.shape[:2]
    bh, bw = _rescale_size(h0, w0, img_scale)
    dev = next(model.parameters()).device
    prep = model.data_preprocessor
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    total = None
    n = 0
    with torch.no_grad():
        for s in scales:
            h, w = max(1, int(bh * s + 0.5)), max(1, int(bw * s + 0.5))
            img = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR) if (h, w) != (h0, w0) else bgr
            x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(dev)
            x = prep(dict(inputs=[x], data_samples=None), False)["inputs"]
            if flip:
                x = torch.cat([x, x.flip(-1)])
            metas = [dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w))] * x.shape[0]
            logits = model.inference(x, metas)[:, :, :h, :w]
            logits = F.interpolate(logits, size=(h0, w0), mode="bilinear", align_corners=False)
            if flip:
                logits[1] = logits[1].flip(-1)
            p = logits.softmax(dim=1).sum(0)
            total = p if total is None else total + p
            n += logits.shape[0]
    return (total / n).float().cpu().numpy()
