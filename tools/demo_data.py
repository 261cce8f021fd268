"""The demo dataset on disk: :func:`make_demo_dataset` writes the images of tools/demo_render.py in VOC layout.

Layout written under ``root`` (the VOC 2012 one)::

    JPEGImages/<id>.jpg                 RGB, JPEG quality 95
    SegmentationClass/<id>.png          palette PNG (VOC colour map): 0 background, k class k, 255 ignore
    ImageSets/Segmentation/train.txt    ids, one a line (also val.txt)
    classes.txt                         class names, one a line, ``background`` first
    README.txt                          what this is
    demo_meta.json                      build parameters + summary, written last: its presence marks completion

Like VOC, a thin band (``ignore_width`` px on each side, 2 px in all by default) along every object boundary is
255 in the masks. Every image holds at least one object. Each image is drawn from its own generator seeded with
``(seed, split, index)``, so a build is byte-identical for a seed and a larger build extends a smaller one.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cache import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from tools.demo_render import (  # noqa: F401  (CLASSES, IGNORE: the dataset's, re-exported for its users)
    BACKGROUND_SOURCES,
    CLASSES,
    GENERATOR_VERSION,
    IGNORE,
    SPLITS,
    TEXTURES,
    DemoDataError,
    encode_jpeg,
    load_backgrounds,
    render_demo_image,
)
from wsss.maps import save_label_png


def _params(seed: int, n_train: int, n_val: int, size: int, vary_size: bool, ignore_width: int) -> dict[str, Any]:
    sources, _ = load_backgrounds()
    digest = hashlib.sha256()
    for name, arr in sources:
        digest.update(name.encode())
        digest.update(arr.tobytes())
    return {"generator_version": GENERATOR_VERSION, "seed": seed, "n_train": n_train, "n_val": n_val, "size": size,
            "vary_size": vary_size, "ignore_width": ignore_width, "classes": list(CLASSES),
            "backgrounds": [name for name, _ in sources], "backgrounds_sha256": digest.hexdigest()[:16]}


def _check_args(seed: int, n_train: int, n_val: int, size: int, ignore_width: int) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if n_train < 1 or n_val < 0:
        raise ValueError(f"need n_train >= 1 and n_val >= 0, got n_train={n_train}, n_val={n_val}")
    if size < 32:
        raise ValueError(f"size must be at least 32 px, got {size}")
    if not 0 <= ignore_width <= 4:
        raise ValueError(f"ignore_width must be in 0..4, got {ignore_width}")


def _readme(params: dict[str, Any], summary: dict[str, Any]) -> str:
    lines = [
        "Synthetic WSSS demo dataset (VOC layout), made by tools/demo_data.py (tools/make_demo_data.py).",
        "",
        "Five object classes, each with its own shape AND texture, in random per-instance colours:",
    ]
    lines += [f"  {k}: {c:<9} {TEXTURES[c]}" for k, c in enumerate(CLASSES) if k]
    lines += [
        "pasted 1-3 per image (partial occlusion allowed, objects may be truncated by the border), with random",
        "scale, position, rotation and aspect, anti-aliased edges, shading and grain, over random crops (flipped,",
        "colour-jittered) of real photos shipped by installed packages:",
    ]
    lines += [f"  {pkg}/{rel}: {desc}" for pkg, rel, desc in BACKGROUND_SOURCES
              if f"{pkg}/{rel}" in params["backgrounds"]]
    lines += [
        "Plain-coloured blobs that belong to no class are scattered as clutter (labelled background).",
        "",
        "JPEGImages/<id>.jpg                RGB, JPEG quality 95",
        "SegmentationClass/<id>.png         palette PNG, VOC colour map: 0 background, k = class k (classes.txt),",
        f"                                   255 = ignore, a band {params['ignore_width']} px each side of every "
        "object boundary (as in VOC)",
        "ImageSets/Segmentation/{train,val}.txt   image ids",
        "classes.txt                        class names, background first",
        "demo_meta.json                     build parameters and summary (written last)",
        "",
        f"seed {params['seed']}, nominal size {params['size']} px"
        + (" (height 0.875-1.125x, width 0.875-1.25x of it)" if params["vary_size"] else " (square)"),
    ]
    for split in SPLITS:
        s = summary["splits"][split]
        lines.append(f"{split}: {s['images']} images, {s['objects']} objects, {s['images_with_overlap']} images with "
                     "overlapping objects; images per class: "
                     + ", ".join(f"{c} {n}" for c, n in s["images_per_class"].items()))
    return "\n".join(lines) + "\n"


def _split_stats(infos: list[dict[str, Any]], labels: list[np.ndarray]) -> dict[str, Any]:
    fg = CLASSES[1:]
    per_class = {c: 0 for c in fg}
    instances = {c: 0 for c in fg}
    counts = np.zeros(256, np.int64)
    hist = {str(k): 0 for k in (1, 2, 3)}
    for info, lab in zip(infos, labels):
        present = np.unique(lab)
        for k in present:
            if 1 <= k < len(CLASSES):
                per_class[CLASSES[k]] += 1
        for o in info["objects"]:
            instances[o["class"]] += 1
        hist[str(len(info["objects"]))] += 1
        counts += np.bincount(lab.reshape(-1), minlength=256)
    total = max(int(counts.sum()), 1)
    pix = {c: round(float(counts[k]) / total, 4) for k, c in enumerate(CLASSES)}
    pix["ignore"] = round(float(counts[IGNORE]) / total, 4)
    return {"images": len(infos), "objects": sum(len(i["objects"]) for i in infos), "objects_per_image": hist,
            "images_with_overlap": sum(bool(i["overlap"]) for i in infos), "images_per_class": per_class,
            "instances_per_class": instances, "pixel_fraction": pix}


def demo_dataset_complete(root: str | os.PathLike, seed: int = 0, n_train: int = 240, n_val: int = 60,
                          size: int = 128, vary_size: bool = True, ignore_width: int = 1) -> dict[str, Any] | None:
    """The stored summary if ``root`` holds a finished build for exactly these parameters, else None."""
    root = Path(root)
    meta_path = root / "demo_meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = read_json(meta_path)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("params") != _params(seed, n_train, n_val, size, vary_size,
                                                                   ignore_width):
        return None
    for split in SPLITS:
        lst = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not lst.is_file():
            return None
        ids = lst.read_text().split()
        if len(ids) != meta["params"][f"n_{split}"]:
            return None
        for i in ids:
            if not (root / "JPEGImages" / f"{i}.jpg").is_file() or not (root / "SegmentationClass" / f"{i}.png"
                                                                          ).is_file():
                return None
    return meta["summary"]


def make_demo_dataset(root: str | os.PathLike, seed: int = 0, n_train: int = 240, n_val: int = 60,
                      size: int = 128, vary_size: bool = True, ignore_width: int = 1) -> dict[str, Any]:
    """Build the demo dataset under ``root`` (always rebuilds) and return its summary.

    The summary holds the parameters, class names, per-split counts (images, objects, objects per image,
    images with overlapping objects, images and instances per class, pixel fraction per class and ignore)
    and ``seconds`` (build time; only in the returned dict, so the files stay byte-identical per seed).
    """
    _check_args(seed, n_train, n_val, size, ignore_width)
    t0 = time.perf_counter()
    root = Path(root)
    params = _params(seed, n_train, n_val, size, vary_size, ignore_width)
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / "demo_meta.json").unlink(missing_ok=True)  # a half-rebuilt folder must not look complete
    except OSError as e:
        raise DemoDataError(f"cannot write the demo dataset to {root}: {e}") from e
    n_fg = len(CLASSES) - 1
    order = np.random.default_rng([seed, 99]).permutation(n_fg) + 1  # the first-object class cycles over these
    summary: dict[str, Any] = {"params": params, "classes": list(CLASSES), "splits": {}}
    for s_idx, (split, n) in enumerate(zip(SPLITS, (n_train, n_val))):
        ids, infos, labels = [], [], []
        for i in range(n):
            first = int(order[(i + s_idx) % n_fg])
            rgb, lab, info = render_demo_image(seed, split, i, size, vary_size, ignore_width, first_class=first)
            iid = f"{split}_{i:05d}"
            atomic_write_bytes(root / "JPEGImages" / f"{iid}.jpg", encode_jpeg(rgb))
            save_label_png(root / "SegmentationClass" / f"{iid}.png", lab)
            ids.append(iid)
            infos.append(info)
            labels.append(lab)
        atomic_write_text(root / "ImageSets" / "Segmentation" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
        summary["splits"][split] = _split_stats(infos, labels)
    atomic_write_text(root / "classes.txt", "".join(f"{c}\n" for c in CLASSES))
    atomic_write_text(root / "README.txt", _readme(params, summary))
    atomic_write_json(root / "demo_meta.json", {"params": params, "summary": summary})
    return {**summary, "root": str(root), "seconds": round(time.perf_counter() - t0, 3)}


def ensure_demo_dataset(root: str | os.PathLike, seed: int = 0, n_train: int = 240, n_val: int = 60,
                        size: int = 128, vary_size: bool = True, ignore_width: int = 1) -> dict[str, Any]:
    """Build the dataset unless ``root`` already holds a complete build with these parameters.

    The returned summary has ``skipped`` True when the existing build was reused.
    """
    _check_args(seed, n_train, n_val, size, ignore_width)
    done = demo_dataset_complete(root, seed, n_train, n_val, size, vary_size, ignore_width)
    if done is not None:
        return {**done, "root": str(root), "skipped": True}
    return {**make_demo_dataset(root, seed, n_train, n_val, size, vary_size, ignore_width), "skipped": False}
