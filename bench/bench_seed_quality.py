"""Seed quality, same budget: CAM baseline vs BAS vs BAS+CAM vs the learned background (BAO).

    python bench/bench_seed_quality.py [--config configs/demo/demo.py] [--work-root DIR] [--no-bao]
        [--out bench/results/seed_quality.json] [--cfg-options k=v ...]

Runs the real pipeline (classify -> seeds -> bao -> eval_seeds) in separate work directories:
- ``cam``:     classify.method=cam (plain CAM classifier, multi-label soft margin), seeds.source=cam
- ``bas``:     classify.method=bas, seeds.source=bas; BAO trained from these seeds (threshold-free result)
- ``bas+cam``: the same BAS classifier (copied, not retrained), seeds.source=bas+cam
Same backbone, schedule and data for all. Prints a table (best mIoU, its threshold, BAO, the BAS generator's final
mean map area and share of steps where the background score won, per-class IoU at the best threshold) and
writes it as JSON (``--out``). The threshold is tuned on the calibration split when the config declares one (the
demo does) and is then reported on the other train images; without one it is the oracle of the reported split
(chosen WITH its ground truth; an upper bound for a fixed threshold). The table says which. BAO needs none.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(config: str, work: Path, until: str, options: list[str]) -> None:
    cmd = [sys.executable, "-m", "pipeline.cli", "run", config, "--until", until, "--work-dir", str(work),
           "--cfg-options", *options]
    subprocess.run(cmd, cwd=ROOT, check=True)


def numbers(work: Path) -> dict:
    res = json.loads((work / "eval_seeds/results.json").read_text())
    cls = json.loads((work / "classify/results.json").read_text())
    ev = json.loads((work / "eval_seeds/eval.json").read_text())
    best = ev.get("best", {})
    iou = dict(zip(best.get("class_names") or [], best.get("iou") or []))
    return {k: res.get(k) for k in ("best_miou", "best_threshold", "bao_miou")} | {
        "best_kind": ev.get("best_kind"), "oracle": ev.get("oracle"),
        "classify_wall_s": cls.get("wall_s"), "final_area": (cls.get("area_per_epoch") or [None])[-1],
        "final_bg_wins": (cls.get("bg_wins_per_epoch") or [None])[-1], "area_per_epoch": cls.get("area_per_epoch"),
        "iou_at_best": {k: (round(v, 2) if v is not None else None) for k, v in iou.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/demo/demo.py")
    ap.add_argument("--work-root", default="workdirs/bench_seed_quality")
    ap.add_argument("--no-bao", action="store_true", help="skip the BAO stage (seeds only)")
    ap.add_argument("--out", default="bench/results/seed_quality.json")
    ap.add_argument("--cfg-options", nargs="*", default=[])
    args = ap.parse_args()
    root = ROOT / args.work_root
    base = list(args.cfg_options)
    run(args.config, root / "cam", "eval_seeds",
        base + ["classify.method=cam", "seeds.source=cam", "bao.enabled=False"])
    run(args.config, root / "bas", "eval_seeds", base + ["classify.method=bas", "seeds.source=bas"]
        + (["bao.enabled=False"] if args.no_bao else []))
    bc = root / "bas_cam"
    if not (bc / "classify/manifest.json").is_file():  # same classifier: reuse it (its fingerprint matches)
        shutil.copytree(root / "bas/classify", bc / "classify", dirs_exist_ok=True)
    run(args.config, bc, "eval_seeds", base + ["classify.method=bas", "seeds.source=bas+cam", "bao.enabled=False"])
    table = {"cam": numbers(root / "cam"), "bas": numbers(root / "bas"), "bas+cam": numbers(root / "bas_cam")}
    print(f"{'seeds':<10} {'best mIoU*':>10} {'at t':>6} {'BAO (no threshold)':>19} {'map area':>9} {'bg wins':>8}")
    for name, r in table.items():
        bao = f"{r['bao_miou']:.2f}" if r.get("bao_miou") is not None else "-"
        area = f"{r['final_area']:.3f}" if r.get("final_area") is not None else "-"
        wins = f"{r['final_bg_wins']:.3f}" if r.get("final_bg_wins") is not None else "-"
        print(f"{name:<10} {r['best_miou']:>10.2f} {r['best_threshold']:>6.2f} {bao:>19} {area:>9} {wins:>8}")
    print(f"* background threshold: {table['cam'].get('best_kind')}")
    print("per-class IoU at the best threshold:")
    for name, r in table.items():
        print(f"  {name:<8} " + ", ".join(f"{k} {v}" for k, v in r["iou_at_best"].items()))
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": args.config, "options": base, "results": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
