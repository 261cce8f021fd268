"""The runner: plans which stages run (fingerprints vs manifests), runs them under a lock, records results.

A stage's fingerprint is the part of the config it depends on (``CONFIG_KEYS``, with ``dataset.root`` resolved),
the content digest of the dataset splits it reads (``pipeline.fingerprint``), the fingerprints of its input
stages, and its code version (the sources of its module and of every project module it imports). The manifest
``<work_dir>/<stage>/manifest.json`` stores the fingerprint and the state (running, done, failed):

- no manifest                     -> run
- same fingerprint, state done    -> skip (up to date), unless outputs it declares (``outputs(ctx)``) do not
                                     verify (``pipeline.verify``): then resume, recomputing the damaged ones
- same fingerprint, running/failed-> resume (per-item outputs and checkpoints are kept)
- different fingerprint, --force  -> rerun from scratch, naming the config keys / data / inputs / code that
                                     changed; finished (``done``) outputs are moved to ``.previous/<stage>`` until
                                     the new run completes (``restore`` puts them back); an unfinished attempt
                                     never replaces them there.

The pieces: ``pipeline.plan`` (fingerprints vs manifests -> actions), ``pipeline.logs`` (console vs stage.log),
``pipeline.memory`` (peak memory sampler), ``pipeline.summary`` (the end-of-run table and summary.json); this
module runs the plan and keeps the manifests and ``.previous`` outputs.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import shutil
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from mmengine.config import Config

from . import __version__
from .cache import WorkdirLock, atomic_write_json, read_json, remove_temporaries
from .distributed import barrier, init_distributed, shutdown_distributed, world
from .errors import user_message
from .logs import _StageLogFile, setup_console_logging  # noqa: F401  (re-exported for the CLI)
from .memory import PeakMemory, release_free_memory
from .plan import (  # noqa: F401
    PipelineError,
    StagePlan,
    git_commit,
    plan_stages,
    read_manifest,
    stage_inputs,
    stage_name,
)
from .stage import StageContext
from .summary import _brief, _write_summary, rows_table, with_stage_relative_products  # noqa: F401  (re-exported)

log = logging.getLogger("wsss")


# ----------------------------------------------------------------------------------------------------- runner
def _headline(results: dict[str, Any]) -> str:
    parts = [f"{k}={v:.2f}" for k, v in results.items()
             if "miou" in k.lower() and isinstance(v, (int, float)) and not isinstance(v, bool)]
    return " ".join(parts)


def run_stages(cfg: Config, stages: list[ModuleType], only: list[str] | None = None,
               dry_run: bool = False, until: str | None = None, force: tuple[str, ...] = (),
               verify: str | None = "quick") -> list[dict[str, Any]]:
    """Run the pipeline (``only=None``), the stages up to ``until``, or just the named stages (``only``),
    skipping what is up to date. Naming a disabled stage in ``only`` is an error; ``until`` passes them.
    ``force``: rerun these stages (and, in a pipeline run, everything downstream of them)."""
    names = [stage_name(m) for m in stages]
    if until is not None:
        if until not in names:
            raise PipelineError(f"unknown stage '{until}'; stages are: {', '.join(names)}")
        stages = stages[: names.index(until) + 1]
    work_dir = Path(cfg.work_dir)
    for n in list(only or []) + list(force):
        if n not in names:
            raise PipelineError(f"unknown stage '{n}'; stages are: {', '.join(names)}")
    names = [stage_name(m) for m in stages]
    plans = plan_stages(cfg, stages, work_dir, force=tuple(force), verify=verify)
    by_name = {p.name: p for p in plans}
    selected = [p for p in plans if (only is None or p.name in only)]
    for p in selected:
        if only is not None:
            if p.action == "disabled":
                raise PipelineError(f"stage '{p.name}' is disabled in this config ({p.reason})")
            for inp in stage_inputs(p.module, cfg):
                if inp not in only and by_name[inp].action != "skip":
                    raise PipelineError(
                        f"stage '{p.name}' needs the outputs of '{inp}', which is not up to date "
                        f"({by_name[inp].action}: {by_name[inp].reason}); run it first: "
                        f"tools/run_stage.sh {inp} <config>, or the whole pipeline: tools/run_pipeline.sh <config>")
    to_run = [p for p in selected if p.action not in ("skip", "disabled")]
    if dry_run:
        print(f"work dir: {work_dir}")
        for p in selected:
            print(p.line())
        preflight(cfg, to_run, work_dir)  # a real run's up-front input checks: bad input fails the dry run too
        return [{"stage": p.name, "action": p.action, "reason": p.reason} for p in selected]
    preflight(cfg, to_run, work_dir)
    rank, _ = world()
    owns_group = init_distributed()
    summary: list[dict[str, Any]] = []
    finished = False
    try:
        with WorkdirLock(work_dir) if rank == 0 else contextlib.nullcontext():
            for p in selected:
                summary.append(_run_one(cfg, p, work_dir, rank))
        finished = True
    finally:
        if owns_group:  # after a failure the other ranks may never reach a barrier: do not wait for them
            shutdown_distributed(synchronize=finished)
    if rank == 0:
        _write_summary(work_dir, summary, cfg.get("auto_settings", None))
    return summary


def preflight(cfg: Config, plans: list[StagePlan], work_dir: Path) -> None:
    """Before any stage runs: each stage that will run checks what it can check up front (``check(ctx)``,
    e.g. the val split's masks for the stages that evaluate on it), so bad input fails in seconds."""
    for p in plans:
        if hasattr(p.module, "check"):
            p.module.check(StageContext(name=p.name, cfg=cfg, work_dir=work_dir,
                                        log=logging.getLogger(f"wsss.{p.name}")))
    warn_large_photos(cfg, plans)


LARGE_PHOTO_SIDE = 1024  # median long side (px) above which the stages at each photo's size get a warning


def warn_large_photos(cfg: Config, plans: list[StagePlan]) -> None:
    """Photos far larger than VOC's (phone photos) make the stages that work at each photo's own size
    (``AT_PHOTO_SIZE``) slow: said before they run, with the tool that writes smaller copies. Reads the image-size
    statistics the 'auto' settings took from the train split's headers (none without 'auto' keys)."""
    stats = (cfg.get("auto_settings", None) or {}).get("stats")
    slow = [p.name for p in plans if getattr(p.module, "AT_PHOTO_SIZE", False)]
    if not stats or not slow or stats["median_long"] <= LARGE_PHOTO_SIDE:
        return
    log.warning("the train split's photos are large (median long side %d px): %s work at each photo's own size; "
                "on 2 CPU cores they took ~17 s per training image at 1600 px, and at 3760 px ~140 s and 15 GB "
                "of memory (bench/README.md, 'Photos of 3760 px'). For a faster run on smaller copies: python "
                "tools/downscale_dataset.py --root %s --max-side %d (it prints the keys to set)",
                stats["median_long"], ", ".join(slow), (cfg.get("dataset", None) or {}).get("root", "<dataset root>"),
                LARGE_PHOTO_SIDE)


def _prepare_out_dir(p: StagePlan, out_dir: Path, previous: Path) -> None:
    """Make room for a (re)run. Finished outputs are kept in ``.previous/<stage>``; an unfinished or failed
    attempt is discarded (on a rerun) and never replaces them there."""
    for path in p.damaged:  # outputs that did not verify: recompute them
        if path.is_file():
            path.unlink()
    if p.action == "resume" and out_dir.is_dir():
        n = remove_temporaries(out_dir)  # half-written files of the killed attempt
        if n:
            log.info("stage %s: removed %d half-written file(s) of the interrupted attempt", p.name, n)
    if p.action != "rerun" or not out_dir.exists():
        return
    if p.state == "done":
        shutil.rmtree(previous, ignore_errors=True)
        previous.parent.mkdir(parents=True, exist_ok=True)
        out_dir.rename(previous)
    else:
        if previous.exists():
            log.info("stage %s: discarding an unfinished attempt (state %s); the last finished outputs stay in %s",
                     p.name, p.state, previous)
        shutil.rmtree(out_dir)


def _run_one(cfg: Config, p: StagePlan, work_dir: Path, rank: int) -> dict[str, Any]:
    out_dir = work_dir / p.name
    if p.action in ("skip", "disabled"):
        log.info("stage %-12s %s (%s)", p.name, "skipped" if p.action == "skip" else "disabled", p.reason)
        prev = read_json(out_dir / "results.json") if (out_dir / "results.json").is_file() else {}
        return {"stage": p.name, "ran": False, "action": p.action, "reason": p.reason, **_brief(prev, out_dir)}
    barrier()
    previous = work_dir / ".previous" / p.name
    if rank == 0:
        _prepare_out_dir(p, out_dir, previous)
        out_dir.mkdir(parents=True, exist_ok=True)
        started = _dt.datetime.now().isoformat(timespec="seconds")
        atomic_write_json(out_dir / "manifest.json", {
            "stage": p.name, "state": "running", "fp_hash": p.fp_hash, "fingerprint": p.fingerprint,
            "started": started, "package_version": __version__, "git_commit": git_commit()})
    barrier()
    ctx = StageContext(name=p.name, cfg=cfg, work_dir=work_dir, log=logging.getLogger(f"wsss.{p.name}"))
    log.info("stage %-12s %s (%s)", p.name, p.action, p.reason)
    t0 = time.time()
    log_path = out_dir / ("stage.log" if rank == 0 else f"stage.rank{rank}.log")
    release_free_memory()  # what earlier stages freed: not this stage's memory
    with _StageLogFile(log_path), PeakMemory() as mem:
        try:
            results = p.module.run(ctx) or {}
        except BaseException as e:
            _record_failure(p, out_dir, previous, log_path, e, rank)
            raise
    wall = time.time() - t0
    barrier()
    results = {**with_stage_relative_products(results, out_dir), "wall_s": round(wall, 2),
               "peak_rss_mb": round(mem.peak / 2**20, 1)}
    if rank == 0:
        atomic_write_json(out_dir / "results.json", results)
        manifest = read_manifest(out_dir) or {}
        manifest.update(state="done", finished=_dt.datetime.now().isoformat(timespec="seconds"),
                        wall_s=round(wall, 2), peak_rss_mb=results["peak_rss_mb"])
        manifest.pop("error", None)
        atomic_write_json(out_dir / "manifest.json", manifest)
        shutil.rmtree(previous, ignore_errors=True)
    log.info("stage %-12s done in %.1f s, peak memory %.0f MB %s", p.name, wall, results["peak_rss_mb"],
             _headline(results))
    return {"stage": p.name, "ran": True, "action": p.action, "reason": p.reason, **_brief(results, out_dir)}


def error_text(e: BaseException) -> str:
    """One line for a manifest / status: the exception's first line (type name when it has no message)."""
    message = user_message(e)
    text = message.splitlines()[0] if message else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _record_failure(p: StagePlan, out_dir: Path, previous: Path, log_path: Path, e: BaseException,
                    rank: int) -> None:
    """The error and its traceback in ``stage.log``, ``state: failed`` + ``error`` in the manifest."""
    interrupted = isinstance(e, KeyboardInterrupt)
    message = "interrupted (KeyboardInterrupt)" if interrupted else error_text(e)
    # the traceback goes to stage.log; the console gets the CLI's one line (message, and where the log is)
    log.error("stage %s failed: %s\n%s", p.name, message, "".join(traceback.format_exception(e)).rstrip(),
              extra={"file_only": True})
    with contextlib.suppress(AttributeError, TypeError):  # for the CLI's one-line message
        e.wsss_stage, e.wsss_log = p.name, str(log_path)  # type: ignore[attr-defined]
    if rank != 0:
        return
    manifest = read_manifest(out_dir) or {"stage": p.name, "fp_hash": p.fp_hash, "fingerprint": p.fingerprint}
    manifest.update(state="interrupted" if interrupted else "failed", error=message, log=str(log_path),
                    failed=_dt.datetime.now().isoformat(timespec="seconds"))
    atomic_write_json(out_dir / "manifest.json", manifest)
    if previous.is_dir():
        log.error("stage %s: the last finished outputs are kept in %s; to put them back: "
                  "python -m pipeline.cli restore %s <config> --work-dir %s", p.name, previous, p.name,
                  out_dir.parent)


def restore_previous(work_dir: Path, name: str) -> Path:
    """Put ``.previous/<name>`` (the last finished outputs) back in place of ``<name>/``; returns its path."""
    previous, out_dir = work_dir / ".previous" / name, work_dir / name
    manifest = read_manifest(previous)
    if manifest is None or manifest.get("state") != "done":
        raise PipelineError(f"{previous}: no finished outputs of stage '{name}' to restore")
    with WorkdirLock(work_dir):
        if out_dir.exists():
            shutil.rmtree(out_dir)
        previous.rename(out_dir)
    log.info("restored %s from %s", out_dir, previous)
    return out_dir


# ----------------------------------------------------------------------------------------------------- status
def stage_status(cfg: Config, stages: list[ModuleType], verify: str | None = "quick") -> list[dict[str, Any]]:
    """For each stage: done, stale (why), partial (n of N), failed (error), damaged, missing, or disabled."""
    work_dir = Path(cfg.work_dir)
    rows = []
    for p in plan_stages(cfg, stages, work_dir, verify=verify):
        row: dict[str, Any] = {"stage": p.name}
        if p.action == "disabled":
            row.update(status="disabled", detail=p.reason)
        elif p.action == "skip":
            row.update(status="done", detail="")
        elif p.action == "run" and not (work_dir / p.name).exists():
            row.update(status="missing", detail="")
        elif p.action == "resume" and p.damaged:
            row.update(status="damaged", detail=p.reason)
        elif p.action == "resume" and p.state == "failed":
            row.update(status="failed", detail=f"failed: {p.error}")
        elif p.action == "resume":
            detail = "interrupted"
            if hasattr(p.module, "progress"):
                ctx = StageContext(name=p.name, cfg=cfg, work_dir=work_dir)
                try:
                    done, total = p.module.progress(ctx)
                    detail = f"{done} of {total}"
                except Exception as e:  # noqa: BLE001  (status must not crash on a half-written stage)
                    detail = f"interrupted (progress unknown: {e})"
            row.update(status="partial", detail=detail)
        elif p.state == "failed":
            row.update(status="failed", detail=f"failed: {p.error} (and stale: {p.reason})")
        else:
            row.update(status="stale", detail=p.reason)
        if (work_dir / ".previous" / p.name).is_dir() and p.action != "skip":
            row["detail"] += f"; last finished outputs in {work_dir / '.previous' / p.name} (restore {p.name})"
        rows.append(row)
    return rows
