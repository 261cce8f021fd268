"""Pretrained weights: torch.hub's cache, a download when missing, a clear error when that fails (offline), and
random init only when a config says ``pretrained=False``. No test touches the network: downloads are made to
fail (the machine is offline) or are replaced by a local copy."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

import wsss  # noqa: F401  (compat before torchvision)
from wsss.models import build_backbone
from wsss.weights import PretrainedWeightsError, cached_checkpoint, mmengine_url, resolve_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch.hub cache and a network that refuses every download."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    calls = []

    def offline(url, dst, *a, **k):
        calls.append(url)
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    yield tmp_path / "hub" / "checkpoints", calls
    torch.hub.set_dir(old)


def test_missing_classifier_weights_are_an_error_naming_the_file(empty_hub):
    folder, calls = empty_hub
    with pytest.raises(PretrainedWeightsError) as e:
        build_backbone("resnet18", True)
    msg = str(e.value)
    assert "classify.pretrained" in msg and "resnet18-f37072fd.pth" in msg and str(folder) in msg
    assert "classify.pretrained=False" in msg  # how to get random init on purpose
    assert calls == ["https://download.pytorch.org/models/resnet18-f37072fd.pth"]  # the standard download was tried


def test_cached_weights_load_through_torchvision_and_a_download_fills_the_cache(empty_hub, monkeypatch):
    import torchvision

    folder, _ = empty_hub
    torch.manual_seed(7)
    ref = torchvision.models.resnet18()
    source = folder.parent / "elsewhere.pth"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(ref.state_dict(), source)
    # a connected machine: torch.hub downloads into its cache (here: a copy of a local file)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, **k: Path(dst).write_bytes(
        source.read_bytes()))
    bb = build_backbone("resnet18", True)
    assert (folder / "resnet18-f37072fd.pth").is_file()
    assert torch.equal(bb.high[0].conv1.weight, ref.layer4[0].conv1.weight)
    assert torch.equal(bb.stages[0][1].running_mean, ref.bn1.running_mean)


def test_explicit_random_init_needs_no_file(empty_hub):
    _, calls = empty_hub
    a, b = build_backbone("resnet18", False), build_backbone("resnet18", None)
    assert a.high_channels == b.high_channels == 512 and calls == []


def test_mmengine_names_resolve_to_the_hub_cache(empty_hub):
    folder, _ = empty_hub
    assert mmengine_url("open-mmlab://resnet101_v1c").endswith("/resnet101_v1c-e67eebb6.pth")
    assert mmengine_url("torchvision://resnet50").startswith("https://download.pytorch.org/models/resnet50-")
    assert mmengine_url("/local/file.pth") is None
    with pytest.raises(PretrainedWeightsError, match="resnet101_v1c-e67eebb6.pth"):
        resolve_checkpoint("open-mmlab://resnet101_v1c", "segment.pretrained")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "resnet101_v1c-e67eebb6.pth").write_bytes(b"placed by hand")
    assert resolve_checkpoint("open-mmlab://resnet101_v1c", "segment.pretrained") == folder / \
        "resnet101_v1c-e67eebb6.pth"
    with pytest.raises(PretrainedWeightsError, match="segment.pretrained: checkpoint file .*nope.pth not found"):
        resolve_checkpoint(folder / "nope.pth", "segment.pretrained")
    with pytest.raises(PretrainedWeightsError, match="x.pth"):
        cached_checkpoint("https://example.invalid/x.pth", "k")


@pytest.mark.parametrize("config, file", [("deeplabv3plus_r101-d8_voc.py", "resnet101_v1c-e67eebb6.pth"),
                                          ("mobilenetv2_deeplabv3plus_demo.py", "mobilenet_v2-b0353104.pth")])
def test_deeplab_backbone_uses_the_recipe_weights_or_says_why_not(empty_hub, config, file):
    from mmengine.config import Config

    from wsss.segmentation import apply_backbone_weights

    folder, _ = empty_hub
    path = str(REPO / "configs/segment" / config)
    with pytest.raises(PretrainedWeightsError, match=file) as e:
        apply_backbone_weights(Config.fromfile(path), True, path)
    # the MobileNetV2 file can be placed offline by our script: the error says how
    assert ("tools/get_pretrained.py" in str(e.value)) == (file == "mobilenet_v2-b0353104.pth")
    mm = Config.fromfile(path)
    assert apply_backbone_weights(mm, False, path) == "random init (segment.pretrained=False)"
    assert mm.model.pretrained is None and mm.model.backbone.init_cfg is None
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file).write_bytes(b"x")
    mm = Config.fromfile(path)
    assert apply_backbone_weights(mm, True, path) == f"checkpoint {folder / file}"
    assert mm.model.pretrained is None  # mmseg reads the local file, never a URL
    if "mobilenet" in config:
        assert mm.model.backbone.tv_checkpoint == str(folder / file)
    else:
        assert mm.model.backbone.init_cfg == dict(type="Pretrained", checkpoint=str(folder / file))


def test_cli_stops_before_any_stage_when_weights_are_missing(tmp_path):
    """A full run whose classifier wants ImageNet weights that are not there: exit 2 before classify starts."""
    from tools.demo_data import make_demo_dataset

    data = tmp_path / "data"
    make_demo_dataset(data, seed=0, n_train=4, n_val=2, size=48)
    work = tmp_path / "work"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TORCH_HOME": str(tmp_path / "torch"),
           "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}  # any download fails
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(REPO / "configs/demo/demo.py"),
                          "--work-dir", str(work), "--cfg-options", f"dataset.root={data}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "mobilenet_v2-b0353104.pth" in out.stderr and str(tmp_path / "torch") in out.stderr
    assert "Traceback" not in out.stderr
    assert not (work / "classify").exists()  # nothing ran
