"""The stack fixes: torchvision on CPU torch, mmseg without mmcv's compiled ops, weights-only checkpoint loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import pipeline.compat as compat


def test_torchvision_models_build_and_run():
    import torchvision

    model = torchvision.models.mobilenet_v2(weights=None).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 1000)


def test_mmseg_imports_and_missing_compiled_ops_fail_clearly():
    import mmseg.models  # noqa: F401  (imports mmcv.ops unconditionally)

    ext = __import__("sys").modules["mmcv._ext"]
    if isinstance(ext, compat._MissingExt):
        with pytest.raises(RuntimeError, match="mmcv compiled op 'nms' is not available"):
            ext.nms(None)


def test_mmengine_style_checkpoint_loads_with_weights_only(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer

    buf = HistoryBuffer()
    buf.update(1.5)
    ckpt = {"meta": {"hist": buf, "arr": np.arange(3, dtype=np.float32), "f": np.float64(2.0)},
            "state_dict": {"w": torch.ones(2)}}
    torch.save(ckpt, tmp_path / "c.pth")
    with pytest.raises(Exception, match="getattr"):  # not allowed globally: it would allow arbitrary code
        torch.load(tmp_path / "c.pth", weights_only=True)
    with compat.trusted_checkpoints():
        out = torch.load(tmp_path / "c.pth", weights_only=True)
    assert out["meta"]["hist"].current() == 1.5 and out["meta"]["arr"].tolist() == [0.0, 1.0, 2.0]
