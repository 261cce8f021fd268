"""Planning: which stages run, skip, resume or rerun, and why (fingerprints vs manifests).

A stage's fingerprint is the part of the config it depends on (``CONFIG_KEYS``, with ``dataset.root`` resolved),
the content digest of the dataset splits it reads (``pipeline.fingerprint``), the fingerprints of its input
stages, and its code version. See :mod:`pipeline.runner` for what each plan action does.
"""
from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mmengine.config import Config

from .cache import read_json
from .config import changed_keys, digest, select
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


def disabled_reason(module: ModuleType, cfg: Config) -> str | None:
    """Why a stage does not run in this config, or None when it runs: its section says ``enabled=False``, or the
    stage's own ``unavailable(cfg)`` names what the data lacks for it (eval_segment without a val split file)."""
    if not section_enabled(cfg, module.NAME):
        return f"{module.NAME}.enabled = False"
    return module.unavailable(cfg) if hasattr(module, "unavailable") else None


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
        off = disabled_reason(module, cfg)
        if off:
            plans.append(StagePlan(name, module, "disabled", off))
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
        if hasattr(module, "config_files"):  # files the config only names (an mmseg model config): their content
            config_part.update({k: digest(v) for k, v in module.config_files(cfg).items()})
        manifest = read_manifest(work_dir / name)
        code = code_version(module)
        stored_code = (manifest or {}).get("fingerprint", {}).get("code")
        if stored_code not in (None, code) and stored_code == code_version(module, legacy=True):
            code = stored_code  # a work dir from before docstring-free code versions, the sources unchanged
        fp = {"config": config_part, "data": data, "inputs": {i: fps[i] for i in inputs}, "code": code}
        fp_hash = digest(fp)
        fps[name] = fp_hash
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


