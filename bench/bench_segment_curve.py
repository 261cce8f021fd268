"""Learning curve of the segment stage on ground-truth labels: val mIoU (single scale) vs iterations.

    python bench/bench_segment_curve.py --iters 600 --every 100 [--config configs/demo/demo.py] [--cfg-options ...]

One run of ``--iters`` iterations (``segment.labels_from=gt``, the config's recipe otherwise) validated on the
val split every ``--every``
iterations by mmengine; the curve comes from its ``vis_data/scalars.json``. The poly schedule of a longer run has a
higher learning rate at a given iteration than a run that ends there, so an intermediate point is not the result of
a schedule of that length (on the demo: 69.73 at 300 iterations of a 900-iteration run, 45.43 for a complete
300-iteration schedule); the last point is a complete schedule.
Prints iteration, mIoU and seconds per iteration; writes bench/results/segment_curve.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def curve(work: Path) -> list[dict]:
    """(step, mIoU) records of every mmengine run in the stage folder (a resumed run continues the steps)."""
    points: dict[int, float] = {}
    for f in sorted((work / "segment/mmseg").glob("*/vis_data/scalars.json")):
        for line in f.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if "mIoU" in rec:
                points[int(rec["step"])] = float(rec["mIoU"])
    return [{"iter": k, "mIoU": points[k]} for k in sorted(points)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/demo/demo.py")
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--work", default="workdirs/bench_segment_curve")
    ap.add_argument("--cfg-options", nargs="*", default=[])
    args = ap.parse_args()
    work = ROOT / args.work
    opts = ["segment.labels_from=gt", f"segment.iters={args.iters}", f"segment.val_interval={args.every}",
            f"segment.checkpoint_interval={args.iters}", *args.cfg_options]
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "pipeline.cli", "stage", "segment", args.config, "--work-dir", str(work),
                    "--cfg-options", *opts], cwd=ROOT, check=True)
    seconds = time.time() - t0
    pts = curve(work)
    print(f"{'iterations':>10} {'val mIoU (ss)':>14}")
    for p in pts:
        print(f"{p['iter']:>10} {p['mIoU']:>14.2f}")
    print(f"{seconds / max(1, args.iters):.2f} s per iteration (incl. validation), {seconds:.0f} s in all")
    out = ROOT / "bench/results/segment_curve.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"options": opts, "points": pts, "seconds": seconds}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
