"""What the benchmarks that re-examine a finished run share: its config and dataset, and the images it reports."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import stages  # noqa: F401  (registers the dataset hooks; imports pipeline.compat before torchvision)
from pipeline.config import load_config
from pipeline.stage import data_hooks


def run_parser(doc: str | None, stages_read: str) -> argparse.ArgumentParser:
    """The arguments every such benchmark takes: ``--root`` (the dataset), ``--work`` (the finished run's work
    dir; ``stages_read`` says which of its stage folders the script reads) and ``--config`` (the run's config)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="the dataset the run used")
    ap.add_argument("--work", required=True, type=Path, help=f"work dir of a finished run ({stages_read})")
    ap.add_argument("--config", default="configs/custom/bas_irn_cpu.py", help="the config the run used")
    return ap


def open_run(root: str, work: Path, config: str) -> tuple[Any, Any, set[str]]:
    """(config with its 'auto' values resolved from the same data, the train split, the calibration ids the run
    used: its ``eval_seeds/eval.json``)."""
    cfg = load_config(config, {"dataset.root": root})
    ds = data_hooks().dataset(cfg.dataset)
    calib = set(json.loads((Path(work) / "eval_seeds/eval.json").read_text()).get("calib_ids") or [])
    return cfg, ds, calib


def reported_ids(ds: Any, calib: set[str], limit: int = 0) -> list[str]:
    """The train images eval_seeds and eval_pseudo report (the split minus calibration and background-only
    images), the first ``limit`` of them when it is set."""
    ids = [i for i in ds.ids if i not in calib and ds.label_set(i)]
    return ids[:limit] if limit else ids
