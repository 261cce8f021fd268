"""What a stage is, and the context the runner hands to its ``run()``.

A stage is a module in ``stages/`` with:

- ``NAME``: its name (also its output folder: ``<work_dir>/<NAME>/``);
- ``INPUTS``: the names of the stages whose outputs it reads;
- ``CONFIG_KEYS``: the config keys (top-level sections or dotted keys) its outputs depend on; a change in any
  of them, in the data it reads, in an input stage, or in its code (its module and the project modules it
  imports, found by ``pipeline.fingerprint``) makes it stale;
- ``run(ctx) -> dict | None``: does the work, returns metrics for ``results.json`` (``products``: {what: path}
  of what a user comes for, listed at the end of the run; ``skipped`` + ``reason``: nothing could be scored);
- optionally ``data_splits(cfg)``: the dataset splits it reads ('train' / 'val' or split names; default: the
  train split, plus the ``split`` of its section or of ``seeds``, for a stage with ``dataset`` in CONFIG_KEYS);
- optionally ``config_files(cfg) -> {label: content}``: the content of files the config only names (segment's
  mmseg model config, as a dict), digested into the fingerprint with the config keys under those labels;
- optionally ``outputs(ctx) -> {path: kind}``: the files it promises, checked before reuse (``pipeline.verify``);
- optionally ``check(ctx)``: a fast check of its input run before any stage runs (e.g. the val masks);
- optionally ``unavailable(cfg) -> str | None``: why the data gives it nothing to do (eval_segment without a val
  split file); the plan then disables it with that reason, as ``<NAME>.enabled=False`` does;
- optionally ``progress(ctx) -> (done, total)``: per-item progress, for ``status`` ("partial n of N").

Stages write every file atomically and skip per-item outputs that exist, so a killed stage resumes.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mmengine.config import Config, ConfigDict

from .distributed import world


@dataclass(frozen=True)
class DataHooks:
    """How the engine reaches the data without importing the library; the stage package registers them.

    ``dataset(dataset_cfg, split=None, **overrides)`` -> a dataset (StageContext.dataset);
    ``split_files(dataset_cfg, split)`` -> [(relative path, path)] of the files a split consists of (its data
    fingerprint); ``split_name(dataset_cfg, 'train' | 'val' | name)`` -> the split's name."""

    dataset: Callable[..., Any]
    split_files: Callable[..., list[tuple[str, Path]]]
    split_name: Callable[..., str]


_DATA_HOOKS: DataHooks | None = None


def set_data_hooks(hooks: DataHooks) -> None:
    global _DATA_HOOKS
    _DATA_HOOKS = hooks


def data_hooks() -> DataHooks:
    if _DATA_HOOKS is None:
        raise RuntimeError("no data hooks registered: import the stage package (it registers them) first")
    return _DATA_HOOKS


@dataclass
class StageContext:
    """Everything a stage's ``run()`` needs; built by the runner."""

    name: str
    cfg: Config
    work_dir: Path
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("wsss"))

    @property
    def out_dir(self) -> Path:
        return self.work_dir / self.name

    @property
    def stage_cfg(self) -> ConfigDict:
        """The config section named like the stage (empty if absent)."""
        return self.cfg.get(self.name, ConfigDict())

    def input_dir(self, stage: str) -> Path:
        return self.work_dir / stage

    def dataset(self, split: str | None = None, **overrides: Any):
        """The dataset of the config (``cfg.dataset``), for ``split`` (default: its ``train_split``), built by
        the data hooks the stage package registered (:func:`set_data_hooks`; the engine reads no data itself)."""
        return data_hooks().dataset(self.cfg.dataset, split=split, **overrides)

    @property
    def device(self):
        import torch

        want = self.cfg.get("runtime", {}).get("device", "auto")
        if want == "auto":
            if torch.cuda.is_available():
                local = int(os.environ.get("LOCAL_RANK", 0))
                return torch.device("cuda", local)
            return torch.device("cpu")
        return torch.device(want)

    @property
    def channels_last(self) -> bool:
        """``runtime.channels_last``: conv nets store activations and weights NHWC (how fast, not what: the
        same maths, summed in another order). bench/README "Memory layout" has the measured speed-ups."""
        return bool(self.cfg.get("runtime", {}).get("channels_last", True))

    def place(self, model):
        """``model`` on the stage's device, in the stage's memory layout (both in place); returns it."""
        import torch

        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    @property
    def workers(self) -> int:
        """Worker processes for per-image loops (``runtime.workers``, default: all cores)."""
        from .parallel import default_workers

        n = self.cfg.get("runtime", {}).get("workers", None)
        return default_workers() if n in (None, "auto") else int(n)

    @property
    def is_main(self) -> bool:
        return world()[0] == 0


def stage_attr(module: ModuleType, attr: str, default: Any = None) -> Any:
    return getattr(module, attr, default)


def section_enabled(cfg: Any, name: str) -> bool:
    """A stage is enabled unless its config section says ``enabled=False`` (the runner's rule)."""
    section = cfg.get(name, None)
    return bool(section.get("enabled", True)) if hasattr(section, "get") else True
