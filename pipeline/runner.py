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
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mmengine.config import Config

from . import __version__
from .cache import WorkdirLock, atomic_write_json, read_json
from .config import changed_keys, digest, select
from .distributed import barrier, init_distributed, shutdown_distributed, world
from .fingerprint import FileHashes, code_version, data_fingerprint, split_name
from .stage import StageContext, section_enabled
from .verify import damaged_outputs, describe

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
    damaged: dict[Path, str] = field(default_factory=dict)  # outputs to recompute (resume of a done stage)
    state: str | None = None  # the manifest's state before this run
    error: str | None = None  # the manifest's error (state failed)

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
    data = sorted(k for k in set(old.get("data", {})) | set(new.get("data", {}))
                  if old.get("data", {}).get(k) != new.get("data", {}).get(k))
    if data:
        reasons.append("data changed: " + ", ".join(f"split {k}" for k in data))
    ins = sorted(k for k in set(old.get("inputs", {})) | set(new.get("inputs", {}))
                 if old.get("inputs", {}).get(k) != new.get("inputs", {}).get(k))
    if ins:
        reasons.append("input changed: " + ", ".join(ins))
    if old.get("code") != new.get("code"):
        reasons.append("code changed")
    return "; ".join(reasons) or "fingerprint changed"


# Config keys that change where or how fast things are computed, never the results: not part of any fingerprint.
# (runtime.device and runtime.workers are never in a stage's CONFIG_KEYS; see README "How caching works".)
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


def _normalise_root(config_part: dict[str, Any]) -> dict[str, Any]:
    """``dataset.root`` as its resolved path: a trailing slash or a symlink is the same dataset."""
    ds = config_part.get("dataset")
    if isinstance(ds, dict) and isinstance(ds.get("root"), str):
        config_part = {**config_part, "dataset": {**ds, "root": os.path.realpath(os.path.expanduser(ds["root"]))}}
    if isinstance(config_part.get("dataset.root"), str):
        config_part = {**config_part, "dataset.root": os.path.realpath(os.path.expanduser(config_part["dataset.root"]))}
    return config_part


def stage_data_splits(module: ModuleType, cfg: Config) -> tuple[str, ...]:
    """The dataset splits a stage reads: ``data_splits(cfg)`` if the stage defines it; else, for a stage whose
    CONFIG_KEYS include ``dataset``, the train split plus its own / the seeds' ``split`` override."""
    if hasattr(module, "data_splits"):
        names = module.data_splits(cfg)
    elif "dataset" in getattr(module, "CONFIG_KEYS", ()):
        names = ["train"] + [cfg.get(sec, {}).get("split") for sec in (module.NAME, "seeds")
                             if hasattr(cfg.get(sec, {}), "get")]
    else:
        return ()
    ds = cfg.get("dataset", {})
    return tuple(sorted({split_name(ds, n) for n in names if n}))


def _hash_cache(cfg: Config, work_dir: Path) -> Path | None:
    """Where the data files' content hashes are cached: ``dataset.cache_dir`` (shared by the runs on one machine),
    else ``<work_dir>/.cache`` (not created by a plan alone)."""
    cache_dir = cfg.get("dataset", {}).get("cache_dir") if hasattr(cfg.get("dataset", {}), "get") else None
    if cache_dir:
        return Path(cache_dir).expanduser() / "file_hashes.json"
    return work_dir / ".cache" / "file_hashes.json" if work_dir.is_dir() else None


def plan_stages(cfg: Config, stages: list[ModuleType], work_dir: Path, force: tuple[str, ...] = (),
                verify: str | None = "quick") -> list[StagePlan]:
    """Decide, for every stage in order, what running the pipeline would do and why.

    ``force``: stages to rerun whatever their state (and so everything downstream of them). ``verify``: check
    the declared outputs of up-to-date stages (``quick``, ``deep`` or None); damaged ones make the stage resume.
    """
    fps: dict[str, str] = {}
    forced: set[str] = set()
    plans: list[StagePlan] = []
    hashes = FileHashes(_hash_cache(cfg, work_dir))
    data_fps: dict[str, str] = {}
    for module in stages:
        name = stage_name(module)
        if not stage_enabled(module, cfg):
            plans.append(StagePlan(name, module, "disabled", f"{name}.enabled = False"))
            continue
        inputs = stage_inputs(module, cfg)
        missing = [i for i in inputs if i not in fps]
        if missing:
            raise PipelineError(f"stage '{name}' reads {missing}, which is not an enabled stage before it")
        data = {}
        for split in stage_data_splits(module, cfg):
            if split not in data_fps:
                data_fps[split] = data_fingerprint(cfg.get("dataset", {}), split, hashes)
            data[split] = data_fps[split]
        config_part = _normalise_root(_without(select(cfg, getattr(module, "CONFIG_KEYS", ())), NOT_RESULTS))
        fp = {"config": config_part, "data": data, "inputs": {i: fps[i] for i in inputs}, "code": code_version(module)}
        fp_hash = digest(fp)
        fps[name] = fp_hash
        manifest = read_manifest(work_dir / name)
        state = manifest.get("state") if manifest else None
        plan = StagePlan(name, module, "run", "not run yet", fp, fp_hash, state=state,
                         error=manifest.get("error") if manifest else None)
        upstream_forced = [i for i in inputs if i in forced]
        if name in force or upstream_forced:
            forced.add(name)
            plan.action, plan.reason = "rerun", ("forced (--force)" if name in force
                                                 else f"input forced: {', '.join(upstream_forced)}")
        elif manifest is None:
            if (work_dir / name).is_dir() and any((work_dir / name).iterdir()):
                plan.action, plan.reason = "rerun", "outputs without a manifest"
        elif manifest.get("fp_hash") != fp_hash:
            plan.action, plan.reason = "rerun", _diff_reason(manifest.get("fingerprint", {}), fp)
        elif state == "done":
            plan.action, plan.reason = "skip", "up to date"
            if verify and hasattr(module, "outputs"):
                ctx = StageContext(name=name, cfg=cfg, work_dir=work_dir)
                try:
                    plan.damaged = damaged_outputs(module.outputs(ctx), deep=verify == "deep")
                except Exception as e:  # noqa: BLE001  (cannot list the outputs: the stage itself will say why)
                    plan.damaged = {work_dir / name: f"outputs cannot be listed: {e}"}
                if plan.damaged:
                    plan.action, plan.reason = "resume", describe(plan.damaged) + "; recomputing them"
        elif state == "failed":
            plan.action, plan.reason = "resume", f"failed earlier ({plan.error}); retrying, keeping finished items"
        else:
            plan.action, plan.reason = "resume", "interrupted earlier; resuming"
        plans.append(plan)
    hashes.save()
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
    if dry_run:
        print(f"work dir: {work_dir}")
        for p in selected:
            print(p.line())
        return [{"stage": p.name, "action": p.action, "reason": p.reason} for p in selected]
    preflight(cfg, [p for p in selected if p.action not in ("skip", "disabled")], work_dir)
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


def _prepare_out_dir(p: StagePlan, out_dir: Path, previous: Path) -> None:
    """Make room for a (re)run. Finished outputs are kept in ``.previous/<stage>``; an unfinished or failed
    attempt is discarded (on a rerun) and never replaces them there."""
    for path in p.damaged:  # outputs that did not verify: recompute them
        if path.is_file():
            path.unlink()
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
        return {"stage": p.name, "ran": False, "action": p.action, "reason": p.reason, **_brief(prev)}
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
    with _StageLogFile(log_path), PeakMemory() as mem:
        try:
            results = p.module.run(ctx) or {}
        except BaseException as e:
            _record_failure(p, out_dir, previous, log_path, e, rank)
            raise
    wall = time.time() - t0
    barrier()
    results = {**results, "wall_s": round(wall, 2), "peak_rss_mb": round(mem.peak / 2**20, 1)}
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
    return {"stage": p.name, "ran": True, "action": p.action, "reason": p.reason, **_brief(results)}


def error_text(e: BaseException) -> str:
    """One line for a manifest / status: the exception's first line (type name when it has no message)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _record_failure(p: StagePlan, out_dir: Path, previous: Path, log_path: Path, e: BaseException,
                    rank: int) -> None:
    """The error and its traceback in ``stage.log``, ``state: failed`` + ``error`` in the manifest."""
    interrupted = isinstance(e, KeyboardInterrupt)
    message = "interrupted (KeyboardInterrupt)" if interrupted else error_text(e)
    log.error("stage %s failed: %s\n%s", p.name, message, "".join(traceback.format_exception(e)).rstrip())
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


def _brief(results: dict[str, Any]) -> dict[str, Any]:
    keep = {k: v for k, v in results.items()
            if k in ("wall_s", "peak_rss_mb", "backbone_init") or ("miou" in k.lower() and isinstance(v, (int, float)))}
    if isinstance(results.get("rows"), list):  # labelled result rows: {name, mIoU, kind}
        keep["rows"] = results["rows"]
    return keep


def rows_table(stages: list[dict[str, Any]]) -> str:
    """The labelled result rows of the stages, grouped by kind (e.g. ground-truth-free vs tuned with ground
    truth), in first-seen order of the kinds."""
    groups: dict[str, list[str]] = {}
    for s in stages:
        for r in s.get("rows") or []:
            m = r.get("mIoU")
            value = f"{m:6.2f}" if isinstance(m, (int, float)) else "     -"
            groups.setdefault(str(r.get("kind", "")), []).append(f"  {s['stage']:<13} {r.get('name', ''):<58} {value}")
    return "\n".join(f"{kind}:\n" + "\n".join(lines) for kind, lines in groups.items())


def _write_summary(work_dir: Path, summary: list[dict[str, Any]], derived: Any = None) -> None:
    """summary.json (and the printed table); ``derived``: settings a config hook derived (with why), if any."""
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
    if derived:
        from .config import plain

        derived = plain(derived)
        lines = [f"  {k} = {v['value']}  ({v['why']})" for k, v in derived.items() if isinstance(v, dict)
                 and "value" in v]
        if lines:
            print("settings derived from the data ('auto'):\n" + "\n".join(lines))
    old = read_json(work_dir / "summary.json") if (work_dir / "summary.json").is_file() else {}
    stages = {s["stage"]: s for s in old.get("stages", [])} if isinstance(old, dict) else {}
    stages.update({s["stage"]: s for s in summary})
    results = rows_table(list(stages.values()))
    if results:
        print("results (mIoU %), by how their settings were chosen:\n" + results)
    out = {"stages": list(stages.values()), "table": table, "results_table": results}
    if derived:
        out["auto_settings"] = derived
    atomic_write_json(work_dir / "summary.json", out)


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
