"""Seed files on disk: bytes per image at VOC and COCO size, save/load time, and what the 1/255 quantisation of the
full-resolution maps changes downstream.

    python bench/bench_seed_files.py [--images 12] [--crf-images 4]

Maps: smooth, CAM-like (bench/seed_data.py: bumps sampled on the stride-16 grid at scales 1.0/0.5/1.5/2.0,
bilinearly upsampled, summed, max-normalised). VOC: 500x375, 1-3 classes (cycled); COCO: 640x480, 3 classes.
Layouts compared (all hold the same uint8 values except 'float16'):
- 'former': ``high`` uint8 in the deflated .npz (wsss.maps before this change);
- 'current': wsss.maps.save_seeds (the planar-prediction residual, deflated in the .npz);
- for the record: the residual with bz2 (level 9) and with lzma (preset 6), and a PNG of the stacked maps.
Quantisation: seed labels (argmax over [t, maps], t = 0.05..0.95) and the IRN label CRF (crf stage) from the
float32 maps vs the uint8 maps: share of pixels that differ and the mIoU of each against the synthetic ground truth
(the float maps' labels at t = 0.4; for the CRF: on real photos).
"""
from __future__ import annotations

import argparse
import bz2
import io
import json
import lzma
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

COCO_TRAIN_IMAGES = 82_783


def layouts(tmp: Path, keys: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict[str, dict[str, float]]:
    from PIL import Image

    from pipeline.cache import atomic_save_npz
    from wsss.maps import encode_planar, load_seeds, quantize, save_seeds

    out = {}
    q = quantize(high)
    t = time.perf_counter()
    atomic_save_npz(tmp / "former.npz", keys=keys.astype(np.int16), low=low.astype(np.float16), high=q,
                    size=np.asarray(high.shape[1:], np.int32))
    t_save = time.perf_counter() - t
    t = time.perf_counter()
    with np.load(tmp / "former.npz") as z:  # the former layout (plain deflated uint8), read directly
        former_high = z["high"].astype(np.float32) / 255.0
    out["former"] = dict(bytes=(tmp / "former.npz").stat().st_size, save_s=t_save, load_s=time.perf_counter() - t)
    t = time.perf_counter()
    save_seeds(tmp / "current.npz", keys, high[:, ::4, ::4], high)
    t_save = time.perf_counter() - t
    t = time.perf_counter()
    current = load_seeds(tmp / "current.npz")
    out["current"] = dict(bytes=(tmp / "current.npz").stat().st_size, save_s=t_save, load_s=time.perf_counter() - t)
    assert np.array_equal(former_high, current.high)
    residual = encode_planar(q)
    for name, compress, decompress in (("planar+bz2-9", lambda b: bz2.compress(b, 9), bz2.decompress),
                                       ("planar+lzma6", lambda b: lzma.compress(b, preset=6), lzma.decompress)):
        t = time.perf_counter()
        packed = compress(residual.tobytes())
        t_save = time.perf_counter() - t
        t = time.perf_counter()
        decompress(packed)
        out[name] = dict(bytes=len(packed) + (4 + low.size) * 2, save_s=t_save, load_s=time.perf_counter() - t)
    buf = io.BytesIO()
    t = time.perf_counter()
    Image.fromarray(q.reshape(-1, q.shape[-1])).save(buf, format="PNG")
    out["png"] = dict(bytes=len(buf.getvalue()) + low.size * 2, save_s=time.perf_counter() - t)
    return out


def miou(pred: np.ndarray, gt: np.ndarray, n: int) -> float:
    """mIoU (%) of one label map against another, over the classes present in either (wsss.metrics)."""
    from wsss.metrics import ConfusionMatrix, summarize

    cm = ConfusionMatrix(n)
    cm.update(pred, gt)
    return float(summarize(cm, ["background", *[f"c{i}" for i in range(1, n)]])["mIoU"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--crf-images", type=int, default=4)
    args = ap.parse_args()
    from seed_data import cam_like_maps, photo

    import wsss  # noqa: F401  (stack fixes)
    from wsss.crf import seed_label_crf
    from wsss.maps import SeedMaps, quantize, seed_labels

    rng = np.random.default_rng(0)
    report: dict = {}
    quant = {"seed_pixels_changed": [], "seed_miou_float": [], "seed_miou_uint8": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name, size, ks in (("voc", (375, 500), (1, 2, 3)), ("coco", (480, 640), (3,))):
            rows = []
            for i in range(args.images):
                k = ks[i % len(ks)]
                low, high = cam_like_maps(size, k, rng)
                keys = np.sort(rng.choice(20, k, replace=False))
                rows.append(layouts(Path(tmp), keys, low, high))
                if name == "voc":  # quantisation: seed labels over the threshold sweep, float vs uint8
                    hq = quantize(high).astype(np.float32) / 255.0
                    gt = seed_labels(SeedMaps(keys, low, high), 0.4)
                    for t in np.arange(0.05, 0.96, 0.05):
                        a = seed_labels(SeedMaps(keys, low, high), float(t))
                        b = seed_labels(SeedMaps(keys, low, hq), float(t))
                        quant["seed_pixels_changed"].append(float((a != b).mean()))
                        quant["seed_miou_float"].append(miou(a, gt, 21))
                        quant["seed_miou_uint8"].append(miou(b, gt, 21))
            report[name] = {lay: {m: float(np.mean([r[lay][m] for r in rows])) for m in rows[0][lay]}
                            for lay in rows[0]}
        report["coco_total_gb"] = {lay: report["coco"][lay]["bytes"] * COCO_TRAIN_IMAGES / 1e9
                                   for lay in report["coco"]}
    params = dict(gaussian=(3, 3), bilateral=(50, 5, 10), iters=10, gt_prob=0.7)
    crf = {"pixels_changed": [], "miou_float": [], "miou_uint8": []}
    for i in range(args.crf_images):
        k = 1 + i % 3
        low, high = cam_like_maps((375, 500), k, rng)
        keys = np.arange(k)
        hq = quantize(high).astype(np.float32) / 255.0
        image = photo(i, (375, 500))
        gt = seed_labels(SeedMaps(keys, low, high), 0.4)
        a, b = seed_label_crf(image, high, keys, 0.25, params), seed_label_crf(image, hq, keys, 0.25, params)
        crf["pixels_changed"].append(float((a != b).mean()))
        crf["miou_float"].append(miou(a, gt, 21))
        crf["miou_uint8"].append(miou(b, gt, 21))
    sf, su = np.array(quant["seed_miou_float"]), np.array(quant["seed_miou_uint8"])
    report["quantisation"] = {
        "seed_labels_share_of_pixels_changed_mean": float(np.mean(quant["seed_pixels_changed"])),
        "seed_labels_share_of_pixels_changed_max": float(np.max(quant["seed_pixels_changed"])),
        "seed_miou_mean_abs_diff": float(np.mean(np.abs(sf - su))),
        "seed_miou_max_abs_diff": float(np.max(np.abs(sf - su))),
        "crf_share_of_pixels_changed": crf["pixels_changed"],
        "crf_miou_float": crf["miou_float"], "crf_miou_uint8": crf["miou_uint8"]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
