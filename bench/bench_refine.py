"""Refinement benchmarks: CRF throughput (process pool vs one process) and the random walk, sparse vs dense.

    python bench/bench_refine.py [--images 8] [--workers N] [--classes 3] [--dense-stride 8] [--full-dense]

- CRF: IRN's label CRF (wsss.crf.seed_label_crf, 10 iterations) on synthetic 500x375 images with smooth seed maps,
  through pipeline.parallel.for_each_item with 1 worker and with N workers (writes label PNGs to a temp dir).
- Random walk on a 500x375 image at stride 4 (125x94 grid), radius 5, beta 10, 2^8 steps, K seed channels,
  structured affinities (high inside regions, low across their borders, plus noise): time and peak memory
  (each run in a fresh subprocess; peak RSS above the process's baseline) of wsss.random_walk.random_walk
  (sparse CSR, iterated SpMM) and random_walk_dense (IRN: dense (hw)x(hw) matrix, squared 8 times).
  The dense one costs O((hw)^3): on CPU it runs on the stride-``--dense-stride`` grid (both methods, compared
  there) unless ``--full-dense`` asks for the full stride-4 grid (minutes on CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def structured_inputs(h: int, w: int, k: int, radius: int, seed: int = 0):
    """Blob regions; affinity ~0.95 within a region and ~0.05 across, plus noise; seeds peaked in each region."""
    import torch

    from wsss.affinity import pair_offsets, shifted

    g = torch.Generator().manual_seed(seed)
    region = torch.zeros(h, w, dtype=torch.long)
    for r in range(1, k + 1):
        cy, cx = torch.randint(0, h, (1,), generator=g).item(), torch.randint(0, w, (1,), generator=g).item()
        ry, rx = h // 4 + 1, w // 4 + 1
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        region[((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 < 1] = r
    offs = pair_offsets(radius)
    same = torch.stack([region == shifted(region, dy, dx, fill=-1) for dy, dx in offs]).float()
    aff = (0.05 + 0.9 * same + 0.05 * torch.rand(same.shape, generator=g)).clamp(0, 1)
    maps = torch.stack([(region == r).float() * torch.rand(h, w, generator=g) * 0.7 for r in range(1, k + 1)])
    return maps, aff, offs


def one_walk(method: str, h: int, w: int, k: int, radius: int, exp_times: int, out: str) -> None:
    """Run one walk in this (fresh) process; report time and peak RSS above the baseline after setup."""
    import torch

    from wsss.random_walk import random_walk, random_walk_dense

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    maps, aff, offs = structured_inputs(h, w, k, radius)
    # warm-up of the kernels on a tiny grid, so one-time allocations do not count
    m2, a2, _ = structured_inputs(8, 8, k, radius)
    (random_walk if method == "sparse" else random_walk_dense)(m2, a2, offs, 10, 2)
    base = rss_mb()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    res = (random_walk if method == "sparse" else random_walk_dense)(maps, aff, offs, 10.0, exp_times)
    sec = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(out, res.numpy())
    print(json.dumps({"method": method, "grid": [h, w], "k": k, "seconds": round(sec, 3),
                      "peak_rss_above_baseline_mb": round(max(peak, peak_before) - base, 1),
                      "peak_rss_mb": round(peak, 1)}))


def walk_in_subprocess(method: str, h: int, w: int, k: int, radius: int, exp_times: int, tmp: Path):
    out = tmp / f"{method}_{h}x{w}.npy"
    cmd = [sys.executable, __file__, "--one", method, str(h), str(w), str(k), str(radius), str(exp_times), str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1]), np.load(out)


def bench_walk(args, tmp: Path) -> dict:
    from wsss.affinity import grid_size

    gh, gw = grid_size(375, 500, 4)
    res = {}
    sparse, s_out = walk_in_subprocess("sparse", gh, gw, args.classes, 5, 8, tmp)
    res["sparse_stride4"] = sparse
    print(f"random walk sparse, {gh}x{gw} grid, K={args.classes}: {sparse['seconds']:.2f} s, "
          f"peak +{sparse['peak_rss_above_baseline_mb']:.0f} MB")
    if args.full_dense:
        dense, d_out = walk_in_subprocess("dense", gh, gw, args.classes, 5, 8, tmp)
        res["dense_stride4"] = dense
        res["max_abs_diff_stride4"] = float(np.abs(s_out - d_out).max())
        print(f"random walk dense,  {gh}x{gw} grid: {dense['seconds']:.2f} s, peak "
              f"+{dense['peak_rss_above_baseline_mb']:.0f} MB; "
              f"max |sparse - dense| = {res['max_abs_diff_stride4']:.2e}")
    n = gh * gw
    res["dense_stride4_matrix_mb"] = round(n * n * 4 / 2**20, 1)
    dh, dw = grid_size(375, 500, args.dense_stride)
    s2, s2_out = walk_in_subprocess("sparse", dh, dw, args.classes, 5, 8, tmp)
    d2, d2_out = walk_in_subprocess("dense", dh, dw, args.classes, 5, 8, tmp)
    diff = float(np.abs(s2_out - d2_out).max())
    res[f"sparse_stride{args.dense_stride}"], res[f"dense_stride{args.dense_stride}"] = s2, d2
    res[f"max_abs_diff_stride{args.dense_stride}"] = diff
    print(f"same inputs on the {dh}x{dw} grid (stride {args.dense_stride}): sparse {s2['seconds']:.2f} s "
          f"+{s2['peak_rss_above_baseline_mb']:.0f} MB, dense {d2['seconds']:.2f} s "
          f"+{d2['peak_rss_above_baseline_mb']:.0f} MB; max |sparse - dense| = {diff:.2e} "
          f"(values up to {float(np.abs(d2_out).max()):.3f})")
    print(f"a dense stride-4 transition matrix alone would be {res['dense_stride4_matrix_mb']:.0f} MB "
          "(float32), x3 during squaring")
    return res


def bench_crf(args, tmp: Path) -> dict:
    import torch

    from pipeline.parallel import for_each_item
    from wsss.crf import seed_label_crf
    from wsss.maps import save_label_png

    rng = np.random.default_rng(0)
    h, w = 375, 500
    data = {}
    for i in range(args.images):
        img = rng.integers(0, 255, (h // 25, w // 25, 3)).astype(np.float32)
        img = torch.nn.functional.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None], (h, w), mode="bilinear")
        img = img[0].permute(1, 2, 0).numpy().clip(0, 255).astype(np.uint8)
        maps = torch.rand(1, args.classes, h // 16, w // 16, generator=torch.Generator().manual_seed(i))
        maps = torch.nn.functional.interpolate(maps, (h, w), mode="bilinear")[0].numpy()
        data[str(i)] = (np.ascontiguousarray(img), maps, np.arange(args.classes))
    params = dict(gt_prob=0.7, gaussian=(3, 3), bilateral=(50, 5, 10), iters=10)
    out = {}
    for workers in sorted({1, args.workers}):
        d = tmp / f"crf_w{workers}"

        def work(i: str, d: Path = d) -> None:
            img, maps, keys = data[i]
            save_label_png(d / f"{i}.png", seed_label_crf(img, maps, keys, 0.25, params))

        t = time.perf_counter()
        for_each_item(list(data), work, workers=workers, desc=f"crf x{workers}", use_shards=False)
        sec = time.perf_counter() - t
        out[f"workers_{workers}"] = {"seconds": round(sec, 3), "images_per_s": round(len(data) / sec, 3)}
        print(f"CRF (label unary, 10 iters, 500x375, K={args.classes}): {workers} worker(s): "
              f"{len(data) / sec:.2f} images/s ({sec:.2f} s for {len(data)})")
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        m, h, w, k, r, e, out = sys.argv[2:9]
        import wsss  # noqa: F401

        one_walk(m, int(h), int(w), int(k), int(r), int(e), out)
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--classes", type=int, default=3, help="seed channels K")
    p.add_argument("--dense-stride", type=int, default=8)
    p.add_argument("--full-dense", action="store_true", help="also run the dense walk on the stride-4 grid")
    p.add_argument("--skip-crf", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = p.parse_args()
    import wsss  # noqa: F401

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        res = {"cpu_count": os.cpu_count()}
        res["random_walk"] = bench_walk(args, tmp)
        if not args.skip_crf:
            res["crf"] = bench_crf(args, tmp)
    if args.json:
        from pipeline.cache import atomic_write_json

        atomic_write_json(args.json, res)


if __name__ == "__main__":
    main()
