"""Command line: ``python -m pipeline.cli {run,stage,status,restore} <config> [--cfg-options k=v ...] [--dry-run]
[--force STAGE[,STAGE]] [--verify] [--launcher pytorch|slurm]``.

The config is validated when it is loaded (unknown keys, types, ranges: ``pipeline.validate``); a bad config,
bad input data or a failed stage exits with code 2, after naming the key / file / stage and error.

``tools/run_pipeline.sh``, ``tools/run_stage.sh`` and ``tools/status.sh`` call this. The stages come from the
package named by ``WSSS_STAGES`` (default ``stages``: its ``load_stages()``), so the engine imports no project code.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from pathlib import Path

from .cache import WorkdirLocked
from .config import DictAction, load_config, run_config_hooks
from .distributed import LauncherError, use_slurm_environment
from .errors import UserError, user_message
from .runner import PipelineError, error_text, restore_previous, run_stages, setup_console_logging, stage_status
from .validate import ConfigError, validate_config


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="config file (configs/...)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                   help="override config keys, e.g. classify.epochs=2 dataset.root=/data/VOC2012")
    p.add_argument("--work-dir", help="override the work directory (default workdirs/<experiment>)")


def _launcher(p: argparse.ArgumentParser) -> None:
    p.add_argument("--launcher", choices=("pytorch", "slurm"), default="pytorch",
                   help="pytorch: one process, or torchrun's processes; slurm: processes started by srun")


def _force_verify(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", default="", metavar="STAGE[,STAGE]",
                   help="rerun these stages even if up to date (a pipeline run also reruns what depends on them)")
    p.add_argument("--verify", action="store_true",
                   help="read every output of the up-to-date stages in full before reusing it (default: quick check)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="wsss", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run every stage in order, skipping what is up to date")
    _common(p_run)
    p_run.add_argument("--until", help="stop after this stage")
    p_run.add_argument("--dry-run", action="store_true", help="print what would run and why")
    _force_verify(p_run)
    _launcher(p_run)
    p_stage = sub.add_parser("stage", help="run one stage, or several: a,b (their other inputs must be up to date)")
    p_stage.add_argument("stage")
    _common(p_stage)
    p_stage.add_argument("--dry-run", action="store_true")
    _force_verify(p_stage)
    _launcher(p_stage)
    p_status = sub.add_parser("status", help="done / stale / partial / failed / damaged / missing per stage")
    _common(p_status)
    p_status.add_argument("--json", action="store_true")
    p_status.add_argument("--verify", action="store_true",
                          help="read every declared output in full (default: a quick check of each file)")
    p_restore = sub.add_parser("restore", help="put a stage's last finished outputs (.previous/<stage>) back")
    p_restore.add_argument("stage")
    _common(p_restore)
    args = ap.parse_args(argv)

    setup_console_logging()
    try:
        if getattr(args, "launcher", None) == "slurm":
            use_slurm_environment()
        stage_package = importlib.import_module(os.environ.get("WSSS_STAGES", "stages"))
        cfg = load_config(args.config, args.cfg_options, hooks=False)
        if args.work_dir:
            cfg.work_dir = args.work_dir
        validate_config(cfg)
        run_config_hooks(cfg)  # after validation: it may read the data ('auto' values)
        stages = stage_package.load_stages()
        verify = "deep" if getattr(args, "verify", False) else "quick"
        force = tuple(s for s in getattr(args, "force", "").split(",") if s)
        if args.cmd == "restore":
            restore_previous(Path(cfg.work_dir), args.stage)
            return 0
        if args.cmd == "status":
            rows = stage_status(cfg, stages, verify=verify)
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                print(f"work dir: {cfg.work_dir}")
                for r in rows:
                    print(f"{r['stage']:<14} {r['status']:<9} {r['detail']}")
            return 0
        if args.cmd == "stage":
            run_stages(cfg, stages, only=[s for s in args.stage.split(",") if s], dry_run=args.dry_run,
                       force=force, verify=verify)
            return 0
        run_stages(cfg, stages, dry_run=args.dry_run, until=args.until, force=force, verify=verify)
        return 0
    except ConfigError as e:
        logging.getLogger("wsss").error("config error: %s", e)
        return 2
    except (PipelineError, WorkdirLocked, FileNotFoundError, LauncherError, UserError) as e:
        where = f"stage {e.wsss_stage}: " if getattr(e, "wsss_stage", None) else ""
        logging.getLogger("wsss").error("%s%s", where, user_message(e))
        return 2
    except Exception as e:
        if getattr(e, "wsss_stage", None):  # a stage failed: its manifest and stage.log have the error
            logging.getLogger("wsss").error("stage %s failed: %s (traceback in %s)", e.wsss_stage,
                                            error_text(e), e.wsss_log)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
