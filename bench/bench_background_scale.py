"""The learned background's scale (``learned_background.scale`` s) on a finished run: seeds and CRF pseudo-labels
with the background ``s * b``, on the calibration images and on the reported train images (the split minus them,
as eval_pseudo reports) separately.

The seeds against the background (argmax over [s * b, seed maps], the refinement stages' seed rule) and the CRF
stage's pseudo-labels (the config's crf section, label unary) are recomputed from the run's seed files and BAO
maps for every s; no network runs. The run's own s (``learned_background.scale`` of the config, or ``--run-scale``
when the run was given another on the command line) must reproduce its stored crf labels (checked, printed). Each row
gives mIoU, the mean precision and recall over the object classes (%), and the foreground share of the labels
next to the ground truth's. The random walk is not recomputed (it needs the affinity net retrained on the
ir_labels of that s: run the pipeline with ``--cfg-options learned_background.scale=s`` for it).

    python bench/bench_background_scale.py --root /tmp/d/rc_large --work W [--scales 0.6,0.7,0.8,0.9,1.0]
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.finished_run import open_run, run_parser
from wsss.background import load_background
from wsss.crf import crf_params, seed_label_crfs
from wsss.datasets import split_reported
from wsss.maps import load_image_seeds, seed_labels
from wsss.metrics import ConfusionMatrix, summarize

_RUN: dict = {}  # the worker's view of the run (set by _init)


def _init(root: str, work: Path, config: str, scales: list[float], run_scale: float) -> None:
    cfg, ds, _ = open_run(root, work, config)
    params = {**crf_params(cfg.crf, (50, 5, 10)), "gt_prob": float(cfg.crf.get("gt_prob", 0.7))}
    _RUN.update(ds=ds, work=work, scales=scales, params=params, run_scale=run_scale)


def _labels(id_: str) -> tuple[str, dict[str, np.ndarray], int]:
    """(id, {row: label map}, pixels differing from the stored crf labels at the run's own s) of one image."""
    ds, work, scales = _RUN["ds"], _RUN["work"], _RUN["scales"]
    image, seeds = load_image_seeds(ds, id_, work / "seeds/maps")
    b = load_background(work / "bao", id_, seeds.size)
    # load_background's own scaling, read once; the last one is the run's own s (the check against its stored labels)
    backgrounds = [b if s == 1.0 else b * np.float32(s) for s in (*scales, _RUN["run_scale"])]
    found = {f"seeds s={s:g}": seed_labels(seeds, 0.0, background=bg) for s, bg in zip(scales, backgrounds)}
    crfs = seed_label_crfs(image, seeds.high, seeds.keys, backgrounds, _RUN["params"])
    found.update({f"crf s={s:g}": lab for s, lab in zip(scales, crfs)})
    stored = np.asarray(Image.open(work / "crf/labels" / f"{id_}.png"))
    return id_, found, int((stored != crfs[-1]).sum())


def main() -> None:
    ap = run_parser(__doc__, "seeds, bao, crf, eval_seeds")
    ap.add_argument("--scales", default="0.6,0.7,0.8,0.9,1.0", help="background scales s, comma-separated")
    ap.add_argument("--run-scale", type=float, default=None,
                    help="the s the run itself used (default: the config's learned_background.scale)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    cfg, ds, _ = open_run(args.root, args.work, args.config)
    run_scale = float(cfg.learned_background.scale if args.run_scale is None else args.run_scale)
    reported, calib = split_reported(cfg, ds)  # the images eval_seeds / eval_pseudo report, and the calibration ones
    parts = {"calib": calib, "reported": reported}
    t0 = time.time()
    with ProcessPoolExecutor(args.workers, initializer=_init,
                             initargs=(args.root, args.work, args.config, scales, run_scale)) as pool:
        results = {id_: (found, n) for id_, found, n in pool.map(_labels, [i for p in parts.values() for i in p])}
    rows = [f"{kind} s={s:g}" for s in scales for kind in ("seeds", "crf")]
    print(f"{time.time() - t0:.0f} s; stored crf labels reproduced at the run's s={run_scale:g}: "
          f"{sum(n for _, n in results.values())} pixels differ")
    for part, ids in parts.items():
        masks = [ds.mask(i) for i in ids]
        fg_px, px = sum(int(((m > 0) & (m != 255)).sum()) for m in masks), sum(int((m != 255).sum()) for m in masks)
        truth = fg_px / max(1, px)
        print(f"{part}: {len(ids)} images, ground-truth foreground share {truth:.3f}")
        for r in rows:
            conf, fg, px = ConfusionMatrix(ds.num_classes), 0, 0
            for id_ in ids:
                labels = results[id_][0][r]
                conf.update(labels, ds.mask(id_))
                fg, px = fg + int((labels > 0).sum()), px + labels.size
            s = summarize(conf, list(ds.classes))
            prec, rec = np.nanmean(np.array(s["precision"][1:], float)), np.nanmean(np.array(s["recall"][1:], float))
            print(f"  {r:12s} mIoU {s['mIoU']:6.2f}  precision {prec:5.1f}  recall {rec:5.1f}  "
                  f"foreground share {fg / px:.3f}")


if __name__ == "__main__":
    main()
