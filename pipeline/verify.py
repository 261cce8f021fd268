"""Checks of a stage's finished outputs before they are reused.

A stage may declare ``outputs(ctx) -> {path: kind}``: every file it promises, with its kind:

- ``"npz:key1,key2"``: a numpy ``.npz`` holding at least those arrays;
- ``"png"``: an image (label maps);
- ``"torch"``: a ``torch.save`` checkpoint;
- ``"json"``: a JSON file.

``quick`` checks (every plan: ``run``, ``status``) read only what is cheap: the file exists and is not
empty, a zip (npz, checkpoint) ends with its central directory and an npz lists the keys, a PNG ends with its
IEND chunk. ``deep`` checks (``status --verify``, ``run --verify``) decode everything: the arrays, the
pixels, the checkpoint (``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
ZIP_END = b"PK\x05\x06"


def _tail(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - n))
        return f.read()


def check_file(path: Path, kind: str, deep: bool = False) -> str | None:
    """None if ``path`` is a readable output of ``kind``, else what is wrong with it."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    if size == 0:
        return "empty file"
    try:
        if kind.startswith("npz"):
            return _check_npz(path, [k for k in kind.partition(":")[2].split(",") if k], deep)
        if kind == "png":
            return _check_png(path, deep)
        if kind == "torch":
            return _check_torch(path, deep)
        if kind == "json":
            json.loads(path.read_text(encoding="utf-8"))
            return None
    except Exception as e:  # noqa: BLE001  (whatever fails to read is damaged: zlib, zip, PIL, pickle errors)
        return f"unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    raise ValueError(f"unknown output kind {kind!r} for {path}")


def _check_npz(path: Path, keys: list[str], deep: bool) -> str | None:
    import numpy as np

    if ZIP_END not in _tail(path, 1024):
        return "truncated (no zip directory at the end)"
    with np.load(path) as z:
        missing = [k for k in keys if k not in z.files]
        if missing:
            return f"lacks the arrays {missing} (has {z.files})"
        if deep:
            for k in z.files:
                z[k]
    return None


def _check_png(path: Path, deep: bool) -> str | None:
    if not _tail(path, len(PNG_END)).endswith(PNG_END):
        return "truncated (no PNG end chunk)"
    if deep:
        from PIL import Image

        with Image.open(path) as im:
            im.load()
    return None


def _check_torch(path: Path, deep: bool) -> str | None:
    if ZIP_END not in _tail(path, 4096):
        return "truncated or not a torch checkpoint (no zip directory at the end)"
    if deep:
        import pickle

        import torch

        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError) as e:
            return f"unreadable checkpoint ({str(e).splitlines()[0]})"
    return None


def damaged_outputs(outputs: Mapping[Path, str], deep: bool = False, limit: int | None = None) -> dict[Path, str]:
    """``{path: problem}`` of the outputs that do not verify (at most ``limit``)."""
    bad: dict[Path, str] = {}
    for path, kind in outputs.items():
        problem = check_file(Path(path), kind, deep)
        if problem:
            bad[Path(path)] = problem
            if limit and len(bad) >= limit:
                break
    return bad


def describe(bad: Mapping[Path, Any], n: int = 3) -> str:
    items = [f"{p} ({why})" for p, why in list(bad.items())[:n]]
    return f"{len(bad)} output(s) damaged or missing: " + ", ".join(items) + (" ..." if len(bad) > n else "")
