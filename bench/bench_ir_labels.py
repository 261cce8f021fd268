"""ir_labels stage speed: two label CRFs per image (the former path) vs both passes on one set of pairwise kernels.

    python bench/bench_ir_labels.py [--images 8] [--height 375] [--width 500] [--repeats 2]

Writes a VOC-layout dataset of real photos (bench/seed_data.py) with smooth CAM-like seed maps of 1-3 classes
(``maps/<id>.npz`` through wsss.maps.save_seeds), then runs the real stage (``stages.ir_labels.run``, one worker)
with today's ``confident_labels`` and with the former one (two DenseCRF2D per image, unary set before the kernels),
alternately, ``--repeats`` times each. Prints the best wall time and the best process CPU time of each (CPU time is
the steadier measure on a shared machine), their ratios, and whether every label PNG is byte-identical.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CLASSES = ["background", *[f"class{i}" for i in range(1, 21)]]


def former_confident_labels(image, maps, keys, fg_thres, bg_thres, params):
    """The former ir_labels path: two independent label CRFs (a fresh DenseCRF2D each), combined."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_labels

    def one(threshold):
        lut = np.concatenate([[0], np.asarray(keys, np.int64) + 1]).astype(np.uint8)
        idx = np.concatenate([np.full((1, *maps.shape[1:]), threshold, np.float32), maps]).argmax(0)
        n, (h, w) = len(lut), image.shape[:2]
        d = dcrf.DenseCRF2D(w, h, n)
        d.setUnaryEnergy(np.ascontiguousarray(unary_from_labels(idx + 1, n, gt_prob=params["gt_prob"],
                                                                zero_unsure=True), dtype=np.float32))
        d.addPairwiseGaussian(sxy=params["gaussian"][0], compat=params["gaussian"][1])
        b = params["bilateral"]
        d.addPairwiseBilateral(sxy=b[0], srgb=b[1], rgbim=np.require(image, requirements=("C", "W")), compat=b[2])
        q = np.array(d.inference(params["iters"]), dtype=np.float32).reshape(n, h, w)
        return lut[np.argmax(q, axis=0).astype(np.uint8)]

    fg, bg = one(fg_thres), one(bg_thres)
    out = fg.copy()
    out[fg == 0] = 255
    out[(fg == 0) & (bg == 0)] = 0
    return out


def make_data(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> None:
    from PIL import Image
    from seed_data import cam_like_maps, photo

    from wsss.maps import save_label_png, save_seeds

    rng = np.random.default_rng(seed)
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "work/seeds/maps"):
        (root / d).mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        id_ = f"img{i:03d}"
        k = 1 + i % 3
        low, high = cam_like_maps(size, k, rng)
        keys = np.sort(rng.choice(20, k, replace=False))
        present = np.unique(high.argmax(0)[high.max(0) > 0.3])  # the mask's classes = the image labels
        low, high, keys = low[present], high[present], keys[present]
        mask = np.where(high.max(0) > 0.3, keys[np.clip(high.argmax(0), 0, len(keys) - 1)] + 1, 0).astype(np.uint8)
        Image.fromarray(photo(i, size)).save(root / "JPEGImages" / f"{id_}.jpg", quality=95)
        save_label_png(root / "SegmentationClass" / f"{id_}.png", mask)
        save_seeds(root / "work/seeds/maps" / f"{id_}.npz", keys, high[:, ::4, ::4], high)
        ids.append(id_)
    (root / "ImageSets/Segmentation/train.txt").write_text("".join(f"{i}\n" for i in ids))
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")


def run_stage(root: Path, out: str) -> tuple[float, float]:
    from mmengine.config import Config

    import stages.ir_labels as stage
    from pipeline.stage import StageContext

    cfg = Config(dict(dataset=dict(type="custom", root=str(root), cache_dir=str(root / "cache")),
                      runtime=dict(device="cpu", workers=1),
                      ir_labels=dict(conf_fg_thres=0.30, conf_bg_thres=0.05)))
    work = root / out
    (work / "seeds").mkdir(parents=True, exist_ok=True)
    if not (work / "seeds/maps").exists():
        (work / "seeds/maps").symlink_to(root / "work/seeds/maps")
    ctx = StageContext(name="ir_labels", cfg=cfg, work_dir=work, log=logging.getLogger("bench"))
    t, c = time.perf_counter(), time.process_time()
    stage.run(ctx)
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--height", type=int, default=375)
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    import stages.ir_labels as stage
    import wsss  # noqa: F401  (stack fixes)
    from wsss.datasets import read_label_png

    shared = stage.confident_labels
    times: dict[str, list[float]] = {"former (two CRFs)": [], "shared kernels": []}
    cpu: dict[str, list[float]] = {"former (two CRFs)": [], "shared kernels": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_data(root, args.images, (args.height, args.width))
        run_stage(root, "warmup")  # dataset label cache, imports
        for r in range(args.repeats):
            for name, fn in (("former (two CRFs)", former_confident_labels), ("shared kernels", shared)):
                stage.confident_labels = fn
                wall, cpu_s = run_stage(root, f"{name[:6]}{r}")
                times[name].append(wall)
                cpu[name].append(cpu_s)
        stage.confident_labels = shared
        a, b = root / "former0/ir_labels/labels", root / "shared0/ir_labels/labels"
        files = sorted(p.name for p in a.glob("*.png"))
        identical = files == sorted(p.name for p in b.glob("*.png")) and all(
            (a / f).read_bytes() == (b / f).read_bytes() for f in files)
        fractions = np.mean([[(lab == 0).mean(), ((lab > 0) & (lab < 255)).mean(), (lab == 255).mean()]
                             for lab in (read_label_png(a / f) for f in files)], 0)
    best = {k: min(v) for k, v in times.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    print(json.dumps({"images": args.images, "size": [args.height, args.width],
                      "seconds_best": {k: round(v, 3) for k, v in best.items()},
                      "seconds_all": {k: [round(x, 3) for x in v] for k, v in times.items()},
                      "images_per_s": {k: round(args.images / v, 3) for k, v in best.items()},
                      "speedup": round(best["former (two CRFs)"] / best["shared kernels"], 3),
                      "cpu_seconds_best": {k: round(v, 3) for k, v in best_cpu.items()},
                      "speedup_cpu_time": round(best_cpu["former (two CRFs)"] / best_cpu["shared kernels"], 3),
                      "pngs_byte_identical": identical, "png_count": len(files),
                      "bg_fg_ignore_fraction": [round(float(x), 3) for x in fractions]}, indent=1))


if __name__ == "__main__":
    main()
