"""Dense CRF on the seeds -> pseudo-labels (the CRF-only refinement path).

Two unary modes (``crf.mode``):
- ``'labels'`` (IRN's ``crf_inference_label``): seed label map = argmax over [``bg_threshold``, class maps],
  refined by the label-unary CRF (trust ``gt_prob`` in each seed label);
- ``'probs'`` (PSA family): background score = ``bg_threshold`` (``bg='threshold'``) or ``(1 - max_k s_k) **
  bg_power`` (``bg='power'``); scores normalised to sum 1 per pixel, softmax-unary CRF, argmax.
Writes ``labels/<id>.png`` (VOC palette; 0 = background, key + 1 = class) per image; resumable.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

NAME = "crf"
INPUTS = ("seeds",)
CONFIG_KEYS = ("dataset", "crf", "seeds.split")
CODE = ("wsss.crf", "wsss.maps")


def crf_params(scfg: Any, default_bilateral: tuple) -> dict[str, Any]:
    """The CRF kernel settings of a config section (``gaussian``, ``bilateral``, ``iters``)."""
    return dict(gaussian=tuple(scfg.get("gaussian", (3, 3))), bilateral=tuple(scfg.get("bilateral", default_bilateral)),
                iters=int(scfg.get("iters", 10)))


def seed_items(ctx, section: str) -> tuple[Any, list[str], Path]:
    """The dataset split the seeds were made for, its ids, and the seed folder; every seed file must exist."""
    from wsss.maps import check_seed_files, seed_split

    ds = ctx.dataset(seed_split(ctx.cfg, section))
    seed_dir = ctx.input_dir("seeds") / "maps"
    check_seed_files(seed_dir, list(ds.ids))
    return ds, list(ds.ids), seed_dir


def load_checked(ds, id_: str, seed_dir: Path):
    """(image, seeds) of one image; clear errors for a foreign class list or a size mismatch."""
    from wsss.maps import check_seed_keys, load_seeds

    path = seed_dir / f"{id_}.npz"
    seeds = load_seeds(path)
    check_seed_keys(path, seeds.keys, ds.label_set(id_), ds.classes)
    image = ds.image(id_)
    if tuple(seeds.size) != image.shape[:2]:
        raise ValueError(f"{path}: seed maps are {seeds.size[1]}x{seeds.size[0]} but the image {ds.image_path(id_)} "
                         f"is {image.shape[1]}x{image.shape[0]}: seeds from another dataset or resized images? "
                         "Re-run the seeds stage.")
    return image, seeds


def label_crf(image: np.ndarray, maps: np.ndarray, keys: np.ndarray, threshold: float, params: dict) -> np.ndarray:
    """IRN's label CRF: argmax over [threshold, maps] indexes [bg] + keys, CRF'd, mapped to labels key + 1."""
    from wsss.crf import crf_labels

    lut = np.concatenate([[0], np.asarray(keys, np.int64) + 1]).astype(np.uint8)
    if len(keys) == 0:
        return np.zeros(image.shape[:2], np.uint8)
    idx = np.concatenate([np.full((1, *maps.shape[1:]), threshold, np.float32), maps]).argmax(0)
    return lut[crf_labels(image, idx, n_labels=len(lut), **params)]


def prob_crf(image: np.ndarray, maps: np.ndarray, keys: np.ndarray, bg: str, threshold: float, bg_power: float,
             params: dict) -> np.ndarray:
    """Softmax-unary CRF on [background, maps] normalised per pixel; argmax mapped to labels."""
    from wsss.crf import crf_probs

    lut = np.concatenate([[0], np.asarray(keys, np.int64) + 1]).astype(np.uint8)
    if len(keys) == 0:
        return np.zeros(image.shape[:2], np.uint8)
    if bg == "threshold":
        bgs = np.full((1, *maps.shape[1:]), threshold, np.float32)
    elif bg == "power":
        bgs = (1.0 - maps.max(0, keepdims=True)) ** bg_power
    else:
        raise ValueError(f"crf.bg must be 'threshold' or 'power', got {bg!r}")
    scores = np.concatenate([bgs, maps]).astype(np.float32)
    probs = scores / np.maximum(scores.sum(0, keepdims=True), 1e-5)
    return lut[crf_probs(image, probs, **params).argmax(0)]


def run(ctx) -> dict:
    from pipeline.parallel import exists, for_each_item
    from wsss.maps import save_label_png

    scfg = ctx.stage_cfg
    mode = scfg.get("mode", "labels")
    if mode not in ("labels", "probs"):
        raise ValueError(f"crf.mode must be 'labels' or 'probs', got {mode!r}")
    threshold = float(scfg.get("bg_threshold", 0.25))
    params = crf_params(scfg, (50, 5, 10) if mode == "labels" else (80, 13, 10))
    if mode == "labels":
        params["gt_prob"] = float(scfg.get("gt_prob", 0.7))
    ds, ids, seed_dir = seed_items(ctx, NAME)
    out = ctx.out_dir / "labels"
    path_for = lambda i: out / f"{i}.png"  # noqa: E731

    def work(id_: str) -> None:
        image, seeds = load_checked(ds, id_, seed_dir)
        if mode == "labels":
            lab = label_crf(image, seeds.high, seeds.keys, threshold, params)
        else:
            lab = prob_crf(image, seeds.high, seeds.keys, scfg.get("bg", "threshold"), threshold,
                           float(scfg.get("bg_power", 8.0)), params)
        save_label_png(path_for(id_), lab)

    ran = for_each_item(ids, work, exists(path_for), ctx.workers, desc="crf", log=ctx.log)
    return {"split": ds.split, "mode": mode, "num_images": len(ids), "computed": len(ran), "labels": str(out)}


def progress(ctx) -> tuple[int, int]:
    from pipeline.parallel import count_done
    from wsss.maps import seed_split

    out = ctx.out_dir / "labels"
    return count_done(ctx.dataset(seed_split(ctx.cfg, NAME)).ids, lambda i: out / f"{i}.png")
