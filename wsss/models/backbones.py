"""Backbones for the classifiers: torchvision ResNets and MobileNetV2 at output stride 16, split at a mid level.

BAS needs two pieces of one network: ``mid`` (the features the foreground generator reads and the background
branch erases) and ``high`` (the later layers the erased features are re-run through). Both end at stride 16, so
the generator map and the classifier map share one grid.

- ResNet-18/34/50/101: mid = stem..layer3 (1024 ch for R50), high = layer4 with its stride replaced by
  dilation (``replace_stride_with_dilation=[False, False, True]``; 2048 ch for R50), as in the BAS/IRN code.
- MobileNetV2: mid = ``features[:14]`` (the last 96-channel block, stride 16: the deepest features before the
  final downsampling, the analogue of ResNet's layer3), high = ``features[14:]`` with block 14's depthwise
  stride set to 1 and the later 3x3 depthwise convs dilated by 2 (keeps the receptive field, as DeepLabV3's
  MobileNet does), ending in the 1280-channel conv. Stride 16 for both, 96 / 1280 channels.

ImageNet weights come through torchvision's own weights mechanism (see :func:`build_backbone`).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch  # (wsss/__init__ has applied pipeline.compat before torchvision)
import torchvision
from torch import Tensor, nn

from .atrous import use_space_to_batch

log = logging.getLogger("wsss.models")

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
BACKBONES = RESNETS + ("mobilenet_v2",)


class Backbone(nn.Module):
    """A network cut in two at stride 16: ``forward_mid`` then ``forward_high``; ``features`` gives all levels."""

    def __init__(self, name: str, stages: list[nn.Module], high: nn.Module, channels: list[int], high_channels: int):
        super().__init__()
        self.name = name
        self.stages = nn.ModuleList(stages)  # strides 4, 8, 16 (the last one is "mid")
        self.high = high
        self.stage_channels = list(channels)
        self.mid_channels = channels[-1]
        self.high_channels = high_channels
        self.stride = 16

    def forward_mid(self, x: Tensor) -> Tensor:
        for s in self.stages:
            x = s(x)
        return x

    def forward_high(self, mid: Tensor) -> Tensor:
        return self.high(mid)

    def features(self, x: Tensor) -> list[Tensor]:
        """Features at strides 4, 8, 16 (mid) and 16 (high), for dense heads such as the affinity net."""
        out = []
        for s in self.stages:
            x = s(x)
            out.append(x)
        out.append(self.high(x))
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_high(self.forward_mid(x))


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict from a local checkpoint: plain, or under 'state_dict'/'model'; DDP 'module.' prefixes dropped."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: backbone checkpoint file is missing")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: cannot read backbone checkpoint ({e})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path}: not a state dict of tensors")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def _torchvision_model(name: str, pretrained: bool | str | os.PathLike | None) -> nn.Module:
    """The torchvision model with ImageNet weights (offline), a local checkpoint, or random init."""
    # BasicBlock ResNets (18/34) reject torchvision's dilation flag: _basic_resnet_stride16 does it after build
    kwargs = dict(replace_stride_with_dilation=[False, False, True]) if name in ("resnet50", "resnet101") else {}
    if pretrained is True:
        from wsss.weights import cached_checkpoint

        weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
        cached_checkpoint(weights.url, "classify.pretrained")  # in torch.hub's cache, or a clear error
        return torchvision.models.get_model(name, weights=weights, **kwargs)  # torchvision finds it there
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    if pretrained in (False, None, ""):
        return model
    path = Path(pretrained).expanduser()
    state = _read_state_dict(path)
    own = model.state_dict()
    skip = ("fc.", "classifier.")  # the ImageNet head is not part of the backbone
    wanted = {k for k in own if not k.startswith(skip)}
    missing = sorted(wanted - set(state))
    bad_shape = [k for k in wanted & set(state) if tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or bad_shape:
        raise ValueError(f"{path}: not a {name} checkpoint: {len(missing)} missing key(s) {missing[:3]}, "
                         f"{len(bad_shape)} shape mismatch(es) {bad_shape[:3]}")
    model.load_state_dict({k: state[k] for k in wanted}, strict=False)
    log.info("backbone %s: loaded %d tensors from %s", name, len(wanted), path)
    return model


def check_pretrained(name: str, pretrained: bool | str | os.PathLike | None) -> None:
    """Fail now, with the file named, if the weights ``pretrained`` asks for are not available."""
    from wsss.weights import cached_checkpoint, resolve_checkpoint

    if pretrained is True:
        cached_checkpoint(torchvision.models.get_model_weights(name).IMAGENET1K_V1.url, "classify.pretrained")
    elif pretrained not in (False, None, ""):
        resolve_checkpoint(pretrained, "classify.pretrained")


def describe_init(pretrained: bool | str | os.PathLike | None, key: str) -> str:
    """How a backbone was initialised, for results and the report."""
    if pretrained is True:
        return "ImageNet (torchvision weights)"
    if pretrained in (False, None, ""):
        return f"random init ({key}=False)"
    return f"checkpoint {pretrained}"


def _mobilenet_stride16(m: nn.Module) -> None:
    """Block 14: depthwise stride 2 -> 1; blocks 15-17: depthwise 3x3 dilation 2 (keeps the receptive field)."""
    feats = m.features
    dw = feats[14].conv[1][0]
    dw.stride = (1, 1)
    for i in range(15, 18):
        dw = feats[i].conv[1][0] if len(feats[i].conv) == 4 else feats[i].conv[0][0]
        assert dw.kernel_size == (3, 3) and dw.groups == dw.in_channels, f"unexpected MobileNetV2 block {i}"
        dw.dilation, dw.padding = (2, 2), (2, 2)


def _basic_resnet_stride16(m: nn.Module) -> None:
    """ResNet-18/34: layer4 stride 2 -> 1, its later 3x3 convs dilated by 2 (what the flag does for R50)."""
    first = m.layer4[0]
    first.conv1.stride = (1, 1)
    if first.downsample is not None:
        first.downsample[0].stride = (1, 1)
    convs = [first.conv2] + [c for blk in list(m.layer4)[1:] for c in (blk.conv1, blk.conv2)]
    for c in convs:
        c.dilation, c.padding = (2, 2), (2, 2)


def build_backbone(name: str = "resnet50", pretrained: bool | str | os.PathLike | None = True) -> Backbone:
    """``pretrained``: True = torchvision's ImageNet weights (its weights API: torch.hub's cache, downloaded
    there when missing; unavailable -> wsss.weights.PretrainedWeightsError), False/None = random init, or a
    local checkpoint path (a torchvision state dict of that architecture; its classification head is ignored)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone '{name}'; choose one of {list(BACKBONES)}")
    m = _torchvision_model(name, pretrained)
    if name in ("resnet18", "resnet34"):
        _basic_resnet_stride16(m)
    elif name == "mobilenet_v2":
        _mobilenet_stride16(m)
    use_space_to_batch(m)  # the dilated convs just made: faster training on CPU, same products (wsss.models.atrous)
    if name in RESNETS:
        stem = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1)
        ch = [_out_ch(m.layer1), _out_ch(m.layer2), _out_ch(m.layer3)]
        return Backbone(name, [stem, m.layer2, m.layer3], m.layer4, ch, _out_ch(m.layer4))
    f = m.features
    return Backbone(name, [f[:4], f[4:7], f[7:14]], f[14:], [24, 32, 96], 1280)


def _out_ch(layer: nn.Sequential) -> int:
    block = layer[-1]
    last = block.conv3 if hasattr(block, "conv3") else block.conv2
    return last.out_channels
