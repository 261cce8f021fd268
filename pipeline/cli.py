"""Command line: ``python -m pipeline.cli {run,stage,status} <config> [--cfg-options k=v ...] [--dry-run]
[--launcher pytorch|slurm]``.

``tools/run_pipeline.sh``, ``tools/run_stage.sh`` and ``tools/status.sh`` call this.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .cache import WorkdirLocked
from .config import DictAction, load_config
from .distributed import LauncherError, use_slurm_environment
from .errors import UserError
from .runner import PipelineError, run_stages, setup_console_logging, stage_status


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="config file (configs/...)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                   help="override config keys, e.g. classify.epochs=2 dataset.root=/data/VOC2012")
    p.add_argument("--work-dir", help="override the work directory (default workdirs/<experiment>)")


def _launcher(p: argparse.ArgumentParser) -> None:
    p.add_argument("--launcher", choices=("pytorch", "slurm"), default="pytorch",
                   help="pytorch: one process, or torchrun's processes; slurm: processes started by srun")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="wsss", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run every stage in order, skipping what is up to date")
    _common(p_run)
    p_run.add_argument("--until", help="stop after this stage")
    p_run.add_argument("--dry-run", action="store_true", help="print what would run and why")
    _launcher(p_run)
    p_stage = sub.add_parser("stage", help="run one stage, or several: a,b (their other inputs must be up to date)")
    p_stage.add_argument("stage")
    _common(p_stage)
    p_stage.add_argument("--dry-run", action="store_true")
    _launcher(p_stage)
    p_status = sub.add_parser("status", help="done / stale / partial / missing per stage")
    _common(p_status)
    p_status.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    setup_console_logging()
    try:
        if getattr(args, "launcher", None) == "slurm":
            use_slurm_environment()
        from stages import load_stages

        cfg = load_config(args.config, args.cfg_options)
        if args.work_dir:
            cfg.work_dir = args.work_dir
        stages = load_stages()
        if args.cmd == "status":
            rows = stage_status(cfg, stages)
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                print(f"work dir: {cfg.work_dir}")
                for r in rows:
                    print(f"{r['stage']:<14} {r['status']:<9} {r['detail']}")
            return 0
        if args.cmd == "stage":
            run_stages(cfg, stages, only=[s for s in args.stage.split(",") if s], dry_run=args.dry_run)
            return 0
        run_stages(cfg, stages, dry_run=args.dry_run, until=args.until)
        return 0
    except (PipelineError, WorkdirLocked, FileNotFoundError, LauncherError, UserError) as e:
        logging.getLogger("wsss").error("%s", e)
        return 2
    except Exception as e:
        from wsss.datasets import DatasetError

        if isinstance(e, DatasetError):
            logging.getLogger("wsss").error("dataset error: %s", e)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
