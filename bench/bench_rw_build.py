"""The random walk's transition matrix built in stencil order (no sort) vs the former sorted construction, on the
outputs of a finished run (its seeds, BAO background and affinity net): time of each build, and the walked scores
of every walked train image compared bit for bit (the stage's own `walk_scores`, the config's random_walk
section, once with each construction), plus the stage's labels against the run's stored ones.

    python bench/bench_rw_build.py --root /tmp/d/rc_s21 --work W [--config configs/custom/bas_irn_cpu.py] [--limit N]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
import wsss.random_walk as rw
from bench.finished_run import open_run, run_parser
from stages.random_walk import walk_image, walk_scores
from tests.helpers import transition_by_sorting
from wsss.background import background_scale, load_background
from wsss.maps import load_image_seeds
from wsss.models.affinity_net import load_affinity_net

SECONDS: dict[str, float] = {}
CALLS: dict[str, int] = {}


def timed(name: str, build):
    """``build`` with its wall time added to ``SECONDS[name]``."""
    def run(*args, **kw):
        t0 = time.perf_counter()
        out = build(*args, **kw)
        SECONDS[name] = SECONDS.get(name, 0.0) + time.perf_counter() - t0
        CALLS[name] = CALLS.get(name, 0) + 1
        return out
    return run


def main() -> None:
    ap = run_parser(__doc__, "seeds, bao, affinity, random_walk")
    ap.add_argument("--limit", type=int, default=0, help="only the first N walked images (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # as in the stage's worker processes
    cfg, ds, _ = open_run(args.root, args.work, args.config)
    rw_cfg = dict(cfg.random_walk)
    model = load_affinity_net(args.work / "affinity/model.pth", dict(cfg.classify), ds.num_fg).eval()
    if cfg.get("runtime", {}).get("channels_last", True):  # the stage's layout (ctx.place): NHWC convs round apart
        model.to(memory_format=torch.channels_last)
    scale = background_scale(cfg)
    ids = [i for i in ds.ids if ds.label_set(i)][: args.limit or None]
    builds = {"stencil": timed("stencil", rw.transition_matrix), "sorted": timed("sorted", transition_by_sorting)}
    same_scores = same_labels = 0
    for id_ in ids:
        image, seeds = load_image_seeds(ds, id_, args.work / "seeds/maps")
        background = load_background(args.work / "bao", id_, seeds.size, scale)
        walked = {}
        with torch.no_grad():
            for name, build in builds.items():
                rw.transition_matrix = build
                walked[name] = walk_scores(model, image, seeds, rw_cfg, torch.device("cpu"), background)[0]
            rw.transition_matrix = builds["stencil"]
            labels = walk_image(model, image, seeds, rw_cfg, torch.device("cpu"), background)
        same_scores += np.array_equal(walked["stencil"], walked["sorted"])
        stored = np.asarray(Image.open(args.work / "random_walk/labels" / f"{id_}.png"))
        same_labels += np.array_equal(labels, stored)
    print(f"{len(ids)} images: walked scores bit-identical {same_scores}/{len(ids)}; labels equal to the run's "
          f"stored ones {same_labels}/{len(ids)}; one matrix build, mean over the images (1 thread): stencil "
          f"{1000 * SECONDS['stencil'] / CALLS['stencil']:.1f} ms, "
          f"sorted {1000 * SECONDS['sorted'] / CALLS['sorted']:.1f} ms")


if __name__ == "__main__":
    main()
