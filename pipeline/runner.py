"""The runner: plans which stages run (fingerprints vs manifests), runs them under a lock, records results.

A stage's fingerprint is the part of the config it depends on (``CONFIG_KEYS``), the fingerprints of its
input stages, and its code version (the source of its module and of the library modules it names in
``CODE``). The manifest ``<work_dir>/<stage>/manifest.json`` stores the fingerprint and the state:

- no manifest                    -> run
- same fingerprint, state done   -> skip (up to date)
- same fingerprint, state running-> resume (per-item outputs and checkpoints are kept)
- different fingerprint          -> rerun from scratch, naming the config keys / inputs / code that changed;
                                    the old outputs are moved to ``.previous/`` until the new run completes.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mmengine.config import Config

from . import __version__
from .cache import WorkdirLock, atomic_write_json, read_json
from .config import changed_keys, digest, select
from .distributed import barrier, init_distributed, shutdown_distributed, world
from .stage import StageContext, section_enabled

log = logging.getLogger("wsss")


class PipelineError(RuntimeError):
    """A problem with the run as asked (unknown stage, missing input), not with a stage's work."""


# ----------------------------------------------------------------------------------------------- stage access
def stage_name(module: ModuleType) -> str:
    return module.NAME


def stage_inputs(module: ModuleType, cfg: Config) -> tuple[str, ...]:
    if hasattr(module, "inputs"):
        return tuple(module.inputs(cfg))
    return tuple(getattr(module, "INPUTS", ()))


def stage_enabled(module: ModuleType, cfg: Config) -> bool:
    if hasattr(module, "enabled"):
        return bool(module.enabled(cfg))
    return section_enabled(cfg, module.NAME)


def _module_source(name_or_module: str | ModuleType) -> bytes:
    if isinstance(name_or_module, ModuleType):
        origin = getattr(name_or_module, "__file__", None)
    else:
        spec = importlib.util.find_spec(name_or_module)
        origin = spec.origin if spec else None
    return Path(origin).read_bytes() if origin and Path(origin).is_file() else str(name_or_module).encode()


def code_version(module: ModuleType) -> str:
    """Hash of the stage module's source and of the library modules it lists in ``CODE``."""
    h = hashlib.sha1(_module_source(module))
    for dep in getattr(module, "CODE", ()):
        h.update(_module_source(dep))
    return h.hexdigest()[:16]


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# ------------------------------------------------------------------------------------------------------ plans
@dataclass
class StagePlan:
    name: str
    module: ModuleType
    action: str  # skip | run | resume | rerun | disabled
    reason: str
    fingerprint: dict[str, Any] = field(default_factory=dict)
    fp_hash: str = ""

    def line(self) -> str:
        return f"{self.name:<14} {self.action:<8} {self.reason}"


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    path = stage_dir / "manifest.json"
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except ValueError:
        return None


def _diff_reason(old: dict[str, Any], new: dict[str, Any]) -> str:
    reasons = []
    keys = changed_keys(old.get("config", {}), new.get("config", {}))
    if keys:
        reasons.append("config changed: " + ", ".join(keys[:6]) + (" ..." if len(keys) > 6 else ""))
    ins = sorted(k for k in set(old.get("inputs", {})) | set(new.get("inputs", {}))
                 if old.get("inputs", {}).get(k) != new.get("inputs", {}).get(k))
    if ins:
        reasons.append("input changed: " + ", ".join(ins))
    if old.get("code") != new.get("code"):
        reasons.append("code changed")
    return "; ".join(reasons) or "fingerprint changed"


# Config keys that change where or how fast things are computed, never the results: not part of any fingerprint.
NOT_RESULTS = ("dataset.cache_dir", "dataset.workers")


def _without(config_part: dict[str, Any], dotted: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for key, value in config_part.items():
        drop = [d[len(key) + 1:] for d in dotted if d.startswith(key + ".")]
        if drop and isinstance(value, dict):
            value = _without(value, tuple(drop))
        if key not in dotted:
            out[key] = value
    return out


def plan_stages(cfg: Config, stages: list[ModuleType], work_dir: Path) -> list[StagePlan]:
    """Decide, for every stage in order, what running the pipeline would do and why."""
    fps: dict[str, str] = {}
    plans: list[StagePlan] = []
    for module in stages:
        name = stage_name(module)
        if not stage_enabled(module, cfg):
            plans.append(StagePlan(name, module, "disabled", f"{name}.enabled = False"))
            continue
        inputs = stage_inputs(module, cfg)
        missing = [i for i in inputs if i not in fps]
        if missing:
            raise PipelineError(f"stage '{name}' reads {missing}, which is not an enabled stage before it")
        fp = {"config": _without(select(cfg, getattr(module, "CONFIG_KEYS", ())), NOT_RESULTS),
              "inputs": {i: fps[i] for i in inputs}, "code": code_version(module)}
        fp_hash = digest(fp)
        fps[name] = fp_hash
        manifest = read_manifest(work_dir / name)
        if manifest is None:
            has_files = (work_dir / name).is_dir() and any((work_dir / name).iterdir())
            plans.append(StagePlan(name, module, "rerun" if has_files else "run",
                                   "outputs without a manifest" if has_files else "not run yet", fp, fp_hash))
        elif manifest.get("fp_hash") == fp_hash:
            if manifest.get("state") == "done":
                plans.append(StagePlan(name, module, "skip", "up to date", fp, fp_hash))
            else:
                plans.append(StagePlan(name, module, "resume", "interrupted earlier; resuming", fp, fp_hash))
        else:
            plans.append(StagePlan(name, module, "rerun", _diff_reason(manifest.get("fingerprint", {}), fp),
                                   fp, fp_hash))
    return plans


# ----------------------------------------------------------------------------------------------- memory/time
class PeakMemory:
    """Samples the memory of this process and its children (worker pools) every 0.2 s.

    Uses the proportional set size (PSS: shared pages split between the processes sharing them, so forked
    workers are not counted several times) where the kernel provides it, else the resident set size.
    """

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open(f"/proc/{pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    @staticmethod
    def _children(pid: int) -> list[int]:
        kids: list[int] = []
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    kids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        return kids

    def sample(self) -> int:
        total, todo, seen = 0, [os.getpid()], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            total += self._rss(pid)
            todo += self._children(pid)
        self.peak = max(self.peak, total)
        return total

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# ------------------------------------------------------------------------------------------------------ logs
_FMT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")


class ConsoleFilter(logging.Filter):
    """What the console shows: the runner's own lines (each stage's start, and its end with time, memory and
    key metrics), warnings and errors, and records a stage marks ``extra={"console": True}``. A stage's detail
    (tables, per-epoch lines, mmengine's log) goes to its ``stage.log`` only. ``WSSS_VERBOSE=1``: everything."""

    def filter(self, record: logging.LogRecord) -> bool:
        return (record.levelno >= logging.WARNING or record.name == "wsss" or getattr(record, "console", False)
                or os.environ.get("WSSS_VERBOSE") == "1")


def setup_console_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger("wsss")
    if not any(getattr(h, "_wsss_console", False) for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(_FMT)
        h.addFilter(ConsoleFilter())
        h._wsss_console = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(level)
    root.propagate = False


class _StageLogFile:
    """Sends everything logged under ``wsss`` to ``<stage>/stage.log`` while a stage runs."""

    def __init__(self, path: Path):
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(_FMT)

    def __enter__(self) -> None:
        logging.getLogger("wsss").addHandler(self.handler)

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("wsss").removeHandler(self.handler)
        self.handler.close()


# ------------------------------------------------------------------------------------------------ distributed
# ----------------------------------------------------------------------------------------------------- runner
def _headline(results: dict[str, Any]) -> str:
    parts = [f"{k}={v:.2f}" for k, v in results.items()
             if "miou" in k.lower() and isinstance(v, (int, float)) and not isinstance(v, bool)]
    return " ".join(parts)


def run_stages(cfg: Config, stages: list[ModuleType], only: list[str] | None = None,
               dry_run: bool = False, until: str | None = None) -> list[dict[str, Any]]:
    """Run the pipeline (``only=None``), the stages up to ``until``, or just the named stages (``only``),
    skipping what is up to date. Naming a disabled stage in ``only`` is an error; ``until`` passes them."""
    names = [stage_name(m) for m in stages]
    if until is not None:
        if until not in names:
            raise PipelineError(f"unknown stage '{until}'; stages are: {', '.join(names)}")
        stages = stages[: names.index(until) + 1]
    work_dir = Path(cfg.work_dir)
    names = [stage_name(m) for m in stages]
    for n in only or []:
        if n not in names:
            raise PipelineError(f"unknown stage '{n}'; stages are: {', '.join(names)}")
    plans = plan_stages(cfg, stages, work_dir)
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
    if dry_run:
        print(f"work dir: {work_dir}")
        for p in selected:
            print(p.line())
        return [{"stage": p.name, "action": p.action, "reason": p.reason} for p in selected]

    for p in selected:  # checks that need no work (e.g. pretrained weights present) fail before any stage runs
        if p.action not in ("skip", "disabled") and hasattr(p.module, "preflight"):
            p.module.preflight(cfg)
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
        _write_summary(work_dir, summary)
    return summary


def _run_one(cfg: Config, p: StagePlan, work_dir: Path, rank: int) -> dict[str, Any]:
    out_dir = work_dir / p.name
    if p.action in ("skip", "disabled"):
        log.info("stage %-12s %s (%s)", p.name, "skipped" if p.action == "skip" else "disabled", p.reason)
        prev = read_json(out_dir / "results.json") if (out_dir / "results.json").is_file() else {}
        return {"stage": p.name, "ran": False, "action": p.action, "reason": p.reason, **_brief(prev)}
    barrier()
    if rank == 0:
        previous = work_dir / ".previous" / p.name
        if p.action == "rerun" and out_dir.exists():
            shutil.rmtree(previous, ignore_errors=True)
            previous.parent.mkdir(parents=True, exist_ok=True)
            out_dir.rename(previous)
        out_dir.mkdir(parents=True, exist_ok=True)
        started = _dt.datetime.now().isoformat(timespec="seconds")
        atomic_write_json(out_dir / "manifest.json", {
            "stage": p.name, "state": "running", "fp_hash": p.fp_hash, "fingerprint": p.fingerprint,
            "started": started, "package_version": __version__, "git_commit": git_commit()})
    barrier()
    ctx = StageContext(name=p.name, cfg=cfg, work_dir=work_dir, log=logging.getLogger(f"wsss.{p.name}"))
    log.info("stage %-12s %s (%s)", p.name, p.action, p.reason)
    t0 = time.time()
    with _StageLogFile(out_dir / ("stage.log" if rank == 0 else f"stage.rank{rank}.log")), PeakMemory() as mem:
        results = p.module.run(ctx) or {}
    wall = time.time() - t0
    barrier()
    results = {**results, "wall_s": round(wall, 2), "peak_rss_mb": round(mem.peak / 2**20, 1)}
    if rank == 0:
        atomic_write_json(out_dir / "results.json", results)
        manifest = read_manifest(out_dir) or {}
        manifest.update(state="done", finished=_dt.datetime.now().isoformat(timespec="seconds"),
                        wall_s=round(wall, 2), peak_rss_mb=results["peak_rss_mb"])
        atomic_write_json(out_dir / "manifest.json", manifest)
        shutil.rmtree(work_dir / ".previous" / p.name, ignore_errors=True)
    log.info("stage %-12s done in %.1f s, peak memory %.0f MB %s", p.name, wall, results["peak_rss_mb"],
             _headline(results))
    return {"stage": p.name, "ran": True, "action": p.action, "reason": p.reason, **_brief(results)}


def _brief(results: dict[str, Any]) -> dict[str, Any]:
    keep = {k: v for k, v in results.items()
            if k in ("wall_s", "peak_rss_mb", "backbone_init") or ("miou" in k.lower() and isinstance(v, (int, float)))}
    return keep


def _write_summary(work_dir: Path, summary: list[dict[str, Any]]) -> None:
    rows = []
    for s in summary:
        m = " ".join(f"{k}={v:.2f}" for k, v in s.items() if "miou" in k.lower() and isinstance(v, (int, float)))
        ran = "ran" if s["ran"] else s["action"]
        wall = f"{s['wall_s']:.1f}" if "wall_s" in s else "-"
        mem = f"{s['peak_rss_mb']:.0f}" if "peak_rss_mb" in s else "-"
        rows.append(f"{s['stage']:<14} {ran:<9} {wall:>9} {mem:>9}  {m}")
    notes = [f"note: {s['stage']} backbone: {s['backbone_init']}" for s in summary
             if str(s.get("backbone_init", "")).startswith("random")]
    table = "\n".join([f"{'stage':<14} {'this run':<9} {'wall (s)':>9} {'peak MB':>9}  metrics", *rows, *notes])
    print(table)
    old = read_json(work_dir / "summary.json") if (work_dir / "summary.json").is_file() else {}
    stages = {s["stage"]: s for s in old.get("stages", [])} if isinstance(old, dict) else {}
    stages.update({s["stage"]: s for s in summary})
    atomic_write_json(work_dir / "summary.json", {"stages": list(stages.values()), "table": table})


# ----------------------------------------------------------------------------------------------------- status
def stage_status(cfg: Config, stages: list[ModuleType]) -> list[dict[str, Any]]:
    """For each stage: done, stale (why), partial (n of N), missing, or disabled."""
    work_dir = Path(cfg.work_dir)
    rows = []
    for p in plan_stages(cfg, stages, work_dir):
        row: dict[str, Any] = {"stage": p.name}
        if p.action == "disabled":
            row.update(status="disabled", detail=p.reason)
        elif p.action == "skip":
            row.update(status="done", detail="")
        elif p.action == "run" and not (work_dir / p.name).exists():
            row.update(status="missing", detail="")
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
        else:
            row.update(status="stale", detail=p.reason)
        rows.append(row)
    return rows
