"""Seeds from any method: import per-image class maps made elsewhere and write this pipeline's seed files.

One file per image of the seed split in ``seeds.external_dir``, either

- ``<id>.npy``: IRN's format (``make_cam.py``), a pickled dict saved with ``np.save``:
  ``keys`` (K,) int, the 0-based foreground class indices of the maps (background excluded);
  ``high_res`` (K, H, W) float, the maps at the image's full resolution, in [0, 1];
  optionally ``cam`` (K, h, w) float (numpy or torch), the same maps at stride 4 or 16;
- ``<id>.npz``: a seed file of this pipeline (``wsss.maps.save_seeds``: ``keys``, ``stride4_planar``, ``high_planar``),
  or an ``.npz`` with IRN's fields (``keys``, ``high_res``, optionally ``cam``).

Checks, each failure a ``ValueError`` naming the file: the keys are integer, unique, and exactly the image's
foreground labels in this dataset's class list; the full-resolution maps are (K, H, W) with (H, W) the image size,
finite, and in [0, 1] (``seeds.external_normalize='max'`` instead applies relu and per-class max-normalisation,
as the seeds stage does, for methods that store raw scores); a ``cam`` map is (K, ceil or floor of H/s, W/s) for
s = 4 or 16, finite. The stride-4 maps the random walk starts from are ``cam`` when it is on IRN's stride-4 grid
(ceil(H/4), ceil(W/4)), ``cam`` resized to it otherwise, or, without ``cam``, the full-resolution maps
area-averaged onto it. ``.npy`` files are unpickled: import only files you trust.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

NORMALIZE = ("none", "max")
MAP_KEYS = ("high_res", "high")  # the full-resolution maps: IRN's name, then ours
RANGE_TOLERANCE = 1e-3  # values this far outside [0, 1] (float rounding of a max-normalisation) are clipped


def _to_numpy(x: Any) -> np.ndarray:
    """A numpy array from a numpy array, a torch tensor (IRN stores ``cam`` as one) or a list."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def read_external(path: Path) -> dict[str, np.ndarray]:
    """The fields of one external file as arrays: ``keys``, ``high`` (full resolution), optionally
    ``cam`` / ``stride4``."""
    try:
        if path.suffix == ".npy":
            obj = np.load(path, allow_pickle=True)
            if obj.dtype != object or obj.shape != ():
                raise ValueError(f"an array of shape {obj.shape} dtype {obj.dtype}, not a dict (IRN's format is "
                                 "np.save(path, {'keys': ..., 'high_res': ..., 'cam': ...}))")
            raw = obj.item()
            if not isinstance(raw, dict):
                raise ValueError(f"a pickled {type(raw).__name__}, not a dict")
        else:
            with np.load(path, allow_pickle=False) as z:
                files = list(z.files)
                raw = {k: z[k] for k in files if k != "high_planar"}
            if "high_res" not in files and "stride4_planar" in files:  # a seed file of this pipeline
                from wsss.maps import load_seeds

                seeds = load_seeds(path)
                return {"keys": seeds.keys, "high": seeds.high, "stride4": seeds.stride4}
    except ValueError as e:
        raise ValueError(f"{path}: not a seed map file ({e})") from None
    except Exception as e:  # noqa: BLE001  (unpickling can fail in many ways: name them, with the file)
        raise ValueError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if "keys" not in raw:
        raise ValueError(f"{path}: no 'keys' field (fields: {sorted(raw)}); expected IRN's dict with 'keys' and "
                         "'high_res'")
    name = next((k for k in MAP_KEYS if k in raw), None)
    if name is None:
        raise ValueError(f"{path}: no full-resolution maps (fields: {sorted(raw)}); expected 'high_res' (IRN) or "
                         "'high' (this pipeline)")
    out = {"keys": _to_numpy(raw["keys"]).reshape(-1), "high": _to_numpy(raw[name])}
    for extra in ("cam", "stride4"):
        if extra in raw:
            out[extra] = _to_numpy(raw[extra])
    return out


def _check_keys(path: Path, keys: np.ndarray, label_set: Sequence[int], classes: Sequence[str]) -> np.ndarray:
    if keys.size and not np.issubdtype(keys.dtype, np.integer):
        if not np.issubdtype(keys.dtype, np.floating) or not np.array_equal(keys, np.round(keys)):
            raise ValueError(f"{path}: 'keys' must be integer class indices, got {keys.dtype} {keys[:5].tolist()}")
    keys = keys.astype(np.int64)
    have, want = sorted(keys.tolist()), sorted(int(k) for k in label_set)
    if len(set(have)) != len(have):
        raise ValueError(f"{path}: 'keys' {keys.tolist()} repeat a class")
    if have != want:
        names = lambda ks: [classes[k + 1] if 0 <= k < len(classes) - 1 else f"#{k}" for k in ks]  # noqa: E731
        hint = (" They look 1-based (background = 0): IRN's keys are 0-based foreground indices."
                if sorted(k - 1 for k in have) == want else "")
        raise ValueError(f"{path}: 'keys' {have} {names(have)} are not the image's foreground labels {want} "
                         f"{names(want)} (0-based foreground indices of {len(classes) - 1} classes).{hint}")
    return keys


def _check_maps(path: Path, what: str, maps: np.ndarray, k: int) -> np.ndarray:
    if maps.ndim == 2 and k == 1:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[0] != k:
        raise ValueError(f"{path}: '{what}' must be (K, H, W) with K = {k} keys, got shape {maps.shape}")
    if not np.issubdtype(maps.dtype, np.floating) and not np.issubdtype(maps.dtype, np.integer):
        raise ValueError(f"{path}: '{what}' must be numeric, got dtype {maps.dtype}")
    maps = maps.astype(np.float32)
    if not np.isfinite(maps).all():
        raise ValueError(f"{path}: '{what}' has {int((~np.isfinite(maps)).sum())} non-finite values (nan/inf)")
    return maps


def _in_range(path: Path, what: str, maps: np.ndarray, normalize: str) -> np.ndarray:
    if normalize == "max":
        maps = np.maximum(maps, 0)
        return maps / (maps.reshape(len(maps), -1).max(1)[:, None, None] + 1e-5)
    lo, hi = (float(maps.min()), float(maps.max())) if maps.size else (0.0, 0.0)
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise ValueError(f"{path}: '{what}' values span [{lo:.4g}, {hi:.4g}], outside [0, 1]; max-normalised maps "
                         "are expected (set seeds.external_normalize='max' to apply relu + per-class "
                         "max-normalisation)")
    return np.clip(maps, 0, 1)


def _grid_stride(shape: tuple[int, int], size: tuple[int, int]) -> int | None:
    """4 or 16 when ``shape`` is the ceil or floor grid of ``size`` at that stride, else None."""
    for s in (16, 4):
        if all(n in (math.ceil(d / s), d // s) for n, d in zip(shape, size)):
            return s
    return None


def area_pool(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(K, H, W) -> (K, *grid) by area averaging (the full-resolution maps onto the stride-4 grid)."""
    import torch
    import torch.nn.functional as F

    return F.adaptive_avg_pool2d(torch.from_numpy(np.ascontiguousarray(maps))[None], grid)[0].numpy()


def resize_maps(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(K, h, w) -> (K, *grid), bilinear (a stride-16 ``cam`` onto the stride-4 grid)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(maps, np.float32))[None]
    return F.interpolate(x, grid, mode="bilinear", align_corners=False)[0].numpy()


def convert_one(path: Path, label_set: Sequence[int], classes: Sequence[str], size: tuple[int, int],
                normalize: str = "none") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, stride4, high) of one external file, checked against the image's labels and size (H, W)."""
    if normalize not in NORMALIZE:
        raise ValueError(f"seeds.external_normalize must be one of {NORMALIZE}, got {normalize!r}")
    raw = read_external(path)
    keys = _check_keys(path, raw["keys"], label_set, classes)
    high = _check_maps(path, "high_res", raw["high"], len(keys))
    if tuple(high.shape[1:]) != tuple(size):
        raise ValueError(f"{path}: maps are {high.shape[2]}x{high.shape[1]} (WxH) but the image is {size[1]}x{size[0]}:"
                         " 'high_res' must be at the image's full resolution (maps of resized images?)")
    high = _in_range(path, "high_res", high, normalize)
    from wsss.maps import stride4_size

    grid = stride4_size(size)
    stride4 = None
    for name in ("cam", "stride4"):
        if name not in raw:
            continue
        coarse = _check_maps(path, name, raw[name], len(keys))
        if _grid_stride(tuple(coarse.shape[1:]), size) is None:
            raise ValueError(f"{path}: '{name}' is {tuple(coarse.shape[1:])}, not the stride-4 or stride-16 grid of "
                             f"the {size[0]}x{size[1]} (HxW) image")
        coarse = _in_range(path, name, coarse, normalize)
        stride4 = coarse if tuple(coarse.shape[1:]) == grid else resize_maps(coarse, grid)
        break
    if stride4 is None:
        stride4 = area_pool(high, grid)
    return keys, np.clip(stride4, 0, 1).astype(np.float32), high


def external_files(src: Path, ids: Sequence[str]) -> dict[str, Path]:
    """``id -> file`` for every id (``.npy`` first, then ``.npz``); an error listing the ids without one."""
    if not src.is_dir():
        raise FileNotFoundError(f"seeds.external_dir {src} is not a folder")
    found: dict[str, Path] = {}
    missing = []
    for id_ in ids:
        path = next((p for p in (src / f"{id_}.npy", src / f"{id_}.npz") if p.is_file()), None)
        if path is None:
            missing.append(id_)
        else:
            found[id_] = path
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(ids)} images have no <id>.npy / <id>.npz in {src}: "
                                f"{missing[:20]}" + (" ..." if len(missing) > 20 else ""))
    return found


def import_seeds(ds: Any, scfg: Any, out_dir: Path, workers: int = 1,
                 log: logging.Logger | None = None) -> dict[str, Any]:
    """The seeds stage for ``seeds.source='external'``: check and convert every image's external maps into
    ``out_dir/<id>.npz`` (wsss.maps.save_seeds), resumable; returns the stage's metrics."""
    from pipeline.parallel import exists, for_each_item
    from wsss.maps import save_seeds

    src = scfg.get("external_dir", None)
    if not src:
        raise ValueError("seeds.source='external' needs seeds.external_dir (a folder of <id>.npy / <id>.npz maps)")
    src = Path(src).expanduser()
    normalize = str(scfg.get("external_normalize", "none"))
    if normalize not in NORMALIZE:
        raise ValueError(f"seeds.external_normalize must be one of {NORMALIZE}, got {normalize!r}")
    ids = list(ds.ids)
    empty = [i for i in ids if not ds.label_set(i)]
    if empty:
        raise ValueError(f"{len(empty)} image(s) of split '{ds.split}' have no foreground class, so no seed maps "
                         f"can be imported for them, e.g. {empty[:5]}; use a split whose images all have labels")
    files = external_files(src, ids)
    out_dir.mkdir(parents=True, exist_ok=True)
    path_for: Callable[[str], Path] = lambda i: out_dir / f"{i}.npz"  # noqa: E731

    def work(id_: str) -> int:
        size = ds.image(id_).shape[:2]
        keys, stride4, high = convert_one(files[id_], ds.label_set(id_), ds.classes, size, normalize)
        save_seeds(path_for(id_), keys, stride4, high)
        return 1

    t0 = time.time()
    done = for_each_item(ids, work, done=exists(path_for), workers=max(1, workers), desc="seeds (external)",
                         log=log or logging.getLogger("wsss.seeds"))
    seconds = time.time() - t0
    sizes = [path_for(i).stat().st_size for i in ids if path_for(i).is_file()]
    return {"source": "external", "external_dir": str(src), "normalize": normalize, "split": ds.split,
            "images": len(ids), "computed": len(done), "seconds": round(seconds, 3),
            "formats": sorted({p.suffix for p in files.values()}),
            "bytes_per_image": round(sum(sizes) / len(sizes)) if sizes else None}
