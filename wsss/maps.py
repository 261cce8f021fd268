"""Map I/O: seed-map files (one ``.npz`` per image) and label PNGs with the VOC colour map.

Seed file format (``save_seeds`` / ``load_seeds``), one compressed ``.npz`` per image:
- ``keys``: int16 (K,) foreground class indices (0-based) of the classes present in the image;
- ``stride4_planar``: uint8 (K, ceil(H/4), ceil(W/4)) the maps on the stride-4 grid (IRN's ``cam``: each scale
  resized to the grid before summing; the random walk starts from them), quantised to 1/255, stored like
  ``high_planar``;
- ``high_planar``: uint8 (K, H, W) the full-resolution maps (IRN's ``high_res``) quantised to 1/255 (values in
  [0, 1] after loading), stored losslessly as their planar-prediction residual (``x - left - up + upleft``,
  modulo 256): smooth, upsampled maps leave mostly tiny residuals, which deflate far better than the plain maps;
  decoding is two cumulative sums (sizes and times: bench/README.md, "Seed files on disk");
- ``size``: int32 (2,) the image size (H, W);
- any extra arrays given to ``save_seeds`` (``SeedMaps.extra`` after loading).
"""
from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.cache import atomic_path, atomic_save_npz
from wsss.datasets.colors import voc_palette  # noqa: F401  (the one VOC colour map; re-exported here)

_PALETTE = voc_palette().flatten().tolist()


def save_label_png(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write a uint8 label map as a palette PNG (VOC colours), atomically."""
    if labels.ndim != 2:
        raise ValueError(f"{path}: label map must be HxW, got shape {labels.shape}")
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    im.putpalette(_PALETTE)
    with atomic_path(path, suffix=".png") as tmp:
        im.save(tmp, format="PNG")


def colorize(labels: np.ndarray) -> np.ndarray:
    """RGB uint8 rendering of a label map with the VOC colours."""
    return voc_palette()[labels.astype(np.uint8)]


@dataclass
class SeedMaps:
    keys: np.ndarray  # (K,) int: foreground class indices
    stride4: np.ndarray  # (K, ceil(H/4), ceil(W/4)) float32 in [0, 1]
    high: np.ndarray  # (K, H, W) float32 in [0, 1]
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # further arrays given to save_seeds

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.high.shape[1:])  # type: ignore[return-value]


SEED_FIELDS = ("keys", "stride4_planar", "size", "high", "high_planar")  # names extra arrays may not take


def stride4_size(size: tuple[int, int]) -> tuple[int, int]:
    """The stride-4 grid of an image of ``size`` (H, W): IRN's ``strided_size``."""
    return -(-int(size[0]) // 4), -(-int(size[1]) // 4)


def quantize(maps: np.ndarray) -> np.ndarray:
    """Maps in [0, 1] -> uint8 in steps of 1/255 (what a seed file stores)."""
    return np.clip(np.rint(np.asarray(maps, np.float32) * 255.0), 0, 255).astype(np.uint8)


def encode_planar(q: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W) -> its planar-prediction residual (uint8, same shape, modulo 256); lossless."""
    zero = np.uint8(0)
    return np.diff(np.diff(np.asarray(q, np.uint8), axis=-1, prepend=zero), axis=-2, prepend=zero)


def decode_planar(residual: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_planar`."""
    return np.cumsum(np.cumsum(residual, axis=-2, dtype=np.uint8), axis=-1, dtype=np.uint8)


def save_seeds(path: str | os.PathLike, keys: np.ndarray, stride4: np.ndarray, high: np.ndarray,
               **extra: np.ndarray) -> None:
    """Write one image's seed maps atomically (see the module docstring for the format); ``extra`` arrays are
    stored as given and come back in ``SeedMaps.extra``."""
    keys = np.asarray(keys, np.int16)
    if stride4.shape[0] != len(keys) or high.shape[0] != len(keys):
        raise ValueError(f"{path}: {len(keys)} keys but maps of shape {stride4.shape} / {high.shape}")
    if tuple(stride4.shape[1:]) != stride4_size(high.shape[1:]):
        raise ValueError(f"{path}: stride-4 maps are {stride4.shape[1:]} but an image of {high.shape[1:]} needs "
                         f"{stride4_size(high.shape[1:])} (ceil(H/4), ceil(W/4))")
    taken = sorted(set(extra) & set(SEED_FIELDS))
    if taken:
        raise ValueError(f"{path}: extra arrays may not be named {taken} (the seed file's own fields)")
    atomic_save_npz(path, keys=keys, stride4_planar=encode_planar(quantize(stride4)),
                    high_planar=encode_planar(quantize(high)),
                    size=np.asarray(high.shape[1:], np.int32), **{k: np.asarray(v) for k, v in extra.items()})


def load_seeds(path: str | os.PathLike) -> SeedMaps:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: seed file is missing")
    try:
        with np.load(path) as z:
            if "stride4_planar" in z.files and "high_planar" in z.files:
                extra = {k: z[k] for k in z.files if k not in SEED_FIELDS}
                return SeedMaps(keys=z["keys"].astype(np.int64),
                                stride4=decode_planar(z["stride4_planar"]).astype(np.float32) / 255.0,
                                high=decode_planar(z["high_planar"]).astype(np.float32) / 255.0, extra=extra)
            found = sorted(z.files)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: damaged seed file ({type(e).__name__}: {e}); rerun the seeds stage, which "
                         "recomputes damaged files: python -m pipeline.cli run <config>") from None
    raise ValueError(f"{path}: seed file of an older layout (arrays {found}; this version writes "
                     "'stride4_planar' and 'high_planar'); re-run the seeds stage")


def label_values(keys: Any) -> np.ndarray:
    """The label value of each channel of ``[background] + keys`` (uint8: 0, then ``key + 1``): maps an argmax over
    those channels, or a CRF's label index, to the label map's values."""
    return np.concatenate([[0], np.asarray(keys, np.int64) + 1]).astype(np.uint8)


def seeds_background(high: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The (H, W) float32 background map ``1 - max_c`` of an image's full-resolution seed maps ``high`` (K, H, W),
    each in [0, 1] (the seeds stage divides each by its max); all ones for an image without a seeded class. BAO's
    first teacher labels and the random walk's ``background='seeds'`` use it."""
    if len(high) == 0:
        return np.ones(tuple(size), np.float32)
    return 1.0 - np.asarray(high, np.float32).max(0)


def seed_labels(seeds: SeedMaps, bg_threshold: float, background: np.ndarray | None = None) -> np.ndarray:
    """Label map from seed maps: argmax over [background, classes] (labels = key + 1).

    The background score is the constant ``bg_threshold`` (the usual sweep) or a learned map (BAO).
    """
    h, w = seeds.size
    bg = np.full((1, h, w), bg_threshold, np.float32) if background is None else background[None].astype(np.float32)
    scores = np.concatenate([bg, seeds.high], 0)
    return label_values(seeds.keys)[scores.argmax(0)]


# ---------------------------------------------------------------- seed folders: which split, complete, same classes
def seed_split(cfg: Mapping[str, Any], section: str) -> str | None:
    """The split to evaluate: the section's own ``split``, else the one the seeds were made for."""
    return cfg.get(section, {}).get("split", None) or cfg.get("seeds", {}).get("split", None)


def check_seed_files(seed_dir: Path, ids: list[str], what: str = "seed") -> None:
    """Every id needs its seed file; list the missing ones (a partial folder must not give a number)."""
    missing = [i for i in ids if not (seed_dir / f"{i}.npz").is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(ids)} {what} files missing in {seed_dir}: {missing[:20]}"
                                + (" ..." if len(missing) > 20 else "") + " (run the seeds stage to completion)")


def check_seed_keys(path: Path, keys: np.ndarray, label_set: list[int], classes: list[str]) -> None:
    """Seed keys must be the image's foreground labels of this dataset's class list."""
    num_fg = len(classes) - 1
    bad = [int(k) for k in keys if not 0 <= int(k) < num_fg]
    if bad:
        raise ValueError(f"{path}: seed keys {bad} are outside the {num_fg} foreground classes of this dataset "
                         f"({classes[1:6]}...): seeds from a different class list? Re-run the seeds stage.")
    if sorted(int(k) for k in keys) != sorted(label_set):
        raise ValueError(f"{path}: seed keys {sorted(int(k) for k in keys)} differ from the image's labels "
                         f"{sorted(label_set)} in this dataset: seeds from a different class list or dataset? "
                         "Re-run the seeds stage.")


def label_progress(ctx: Any, section: str) -> tuple[int, int]:
    """(done, total) of a stage that writes ``labels/<id>.png`` for every image of the seed split."""
    from pipeline.parallel import count_done

    out = ctx.out_dir / "labels"
    return count_done(ctx.dataset(seed_split(ctx.cfg, section)).ids, lambda i: out / f"{i}.png")


def label_outputs(ctx: Any, section: str, **extra: str) -> dict[Path, str]:
    """The outputs of a stage writing ``labels/<id>.png`` (and ``<name>/<id>.npz`` for each ``name=kind`` in
    ``extra``) over the seed split, for ``pipeline.verify``."""
    out: dict[Path, str] = {}
    for i in ctx.dataset(seed_split(ctx.cfg, section)).ids:
        out.update({ctx.out_dir / name / f"{i}.npz": kind for name, kind in extra.items()})
        out[ctx.out_dir / "labels" / f"{i}.png"] = "png"
    return out


def open_seed_folder(ctx: Any, section: str) -> tuple[Any, list[str], Path]:
    """For a stage reading the seeds: the dataset split (``section.split``, else the seeds'), its ids, and the
    seed folder, in which every seed file must exist."""
    ds = ctx.dataset(seed_split(ctx.cfg, section))
    seed_dir = ctx.input_dir("seeds") / "maps"
    check_seed_files(seed_dir, list(ds.ids))
    return ds, list(ds.ids), seed_dir


def load_image_seeds(ds: Any, id_: str, seed_dir: Path) -> tuple[np.ndarray, SeedMaps]:
    """(image, seeds) of one image; clear errors for a foreign class list or a size mismatch."""
    path = seed_dir / f"{id_}.npz"
    seeds = load_seeds(path)
    check_seed_keys(path, seeds.keys, ds.label_set(id_), ds.classes)
    image = ds.image(id_)
    if tuple(seeds.size) != image.shape[:2]:
        raise ValueError(f"{path}: seed maps are {seeds.size[1]}x{seeds.size[0]} but the image {ds.image_path(id_)} "
                         f"is {image.shape[1]}x{image.shape[0]}: seeds from another dataset or resized images? "
                         "Re-run the seeds stage.")
    return image, seeds
