"""Ground-truth-free refinement vs the threshold path tuned on the calibration split, on one set of seeds.

    python bench/bench_gtfree.py --from-work workdirs/demo [--config configs/demo/demo.py] [--cfg-options k=v ...]

``--from-work`` is a work dir whose classify, seeds and bao stages are done (e.g. a demo run); they are copied,
not retrained, into ``<work-root>/learned`` and ``<work-root>/calib`` (the fingerprints match, so the runner skips
them), and each variant runs eval_seeds -> ... -> eval_pseudo:
- ``learned``: the default, every refinement stage's background from the BAO learned background map;
- ``calib``:   background='threshold' in crf / ir_labels / random_walk with every threshold 'calib' (the seed
               threshold that is best on the calibration images; ir_labels scales it by conf_fg/bg_scale).
Every number is on the train split minus the calibration images. Prints a table, writes
bench/results/gtfree.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THRESHOLD = ["crf.background=threshold", "crf.bg_threshold=calib", "ir_labels.background=threshold",
             "ir_labels.conf_fg_thres=calib", "ir_labels.conf_bg_thres=calib", "random_walk.background=threshold",
             "random_walk.sem_seg_bg_thres=calib"]


def run(config: str, work: Path, options: list[str]) -> None:
    cmd = [sys.executable, "-m", "pipeline.cli", "run", config, "--until", "eval_pseudo", "--work-dir", str(work)]
    if options:
        cmd += ["--cfg-options", *options]
    subprocess.run(cmd, cwd=ROOT, check=True)


def numbers(work: Path) -> dict:
    seeds = json.loads((work / "eval_seeds/results.json").read_text())
    pseudo = json.loads((work / "eval_pseudo/results.json").read_text())
    keys = ("best_miou", "best_threshold", "best_kind", "bao_miou", "learned_bg_seeds_miou", "num_images",
            "num_calib_images")
    return {**{k: seeds.get(k) for k in keys}, **{k: pseudo.get(k) for k in
                                                   ("crf_miou", "random_walk_miou", "crf_kind", "random_walk_kind")}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-work", required=True, help="work dir with classify, seeds and bao done")
    ap.add_argument("--config", default="configs/demo/demo.py")
    ap.add_argument("--work-root", default="workdirs/bench_gtfree")
    ap.add_argument("--cfg-options", nargs="*", default=[])
    args = ap.parse_args()
    src, root = ROOT / args.from_work, ROOT / args.work_root
    table = {}
    for name, extra in (("learned", []), ("calib", THRESHOLD)):
        work = root / name
        for stage in ("classify", "seeds", "bao"):
            if not (work / stage / "manifest.json").is_file():
                shutil.copytree(src / stage, work / stage, dirs_exist_ok=True)
        run(args.config, work, list(args.cfg_options) + extra)
        table[name] = numbers(work)
    t = table["learned"]
    print(f"{'result (train minus calib, mIoU %)':<52} {'value':>7}  kind")
    rows = [("seeds, BAO labels", t["bao_miou"], "ground-truth-free"),
            ("seeds, learned background vs seed maps", t["learned_bg_seeds_miou"], "ground-truth-free"),
            (f"seeds, threshold t={t['best_threshold']}", t["best_miou"], t["best_kind"])]
    for name, r in table.items():
        rows += [(f"pseudo-labels, CRF ({name})", r["crf_miou"], r["crf_kind"]),
                 (f"pseudo-labels, random walk ({name})", r["random_walk_miou"], r["random_walk_kind"])]
    for label, v, kind in rows:
        print(f"{label:<52} {v if v is None else f'{v:7.2f}'}  {kind}")
    out = ROOT / "bench/results/gtfree.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
