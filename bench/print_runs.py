"""The key numbers of a benchmark's runs: ``<work_root>/{pipeline,gt,cam}`` (the layout of
bench_realcut_final.sh and bench_custom_cpu.sh); each stage's full results stay in its results.json.

Usage: python bench/print_runs.py <work_root>
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def results(run_dir: Path, stage: str) -> dict:
    f = run_dir / stage / "results.json"
    return json.loads(f.read_text()) if f.exists() else {}


def main(work: Path) -> None:
    for name in ("pipeline", "cam"):
        print(name, "eval_seeds:", {k: results(work / name, "eval_seeds").get(k) for k in
                                    ("best_miou", "best_threshold", "best_kind", "bao_miou", "learned_bg_seeds_miou")})
    print("pipeline eval_pseudo:", {k: v for k, v in results(work / "pipeline", "eval_pseudo").items()
                                    if k.endswith("miou")})
    for name in ("pipeline", "gt"):
        print(name, "eval_segment:", {k: v for k, v in results(work / name, "eval_segment").items()
                                      if "miou" in k.lower()})
    for name in ("pipeline", "gt", "cam"):
        summary = work / name / "summary.json"
        if summary.exists():
            walls = {r["stage"]: r.get("wall_s") for r in json.loads(summary.read_text())["stages"]}
            print(name, "stage wall (s):", walls)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
