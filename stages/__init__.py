"""The pipeline, in order. Each stage is one module with one ``run(ctx)``; reading them in order is reading the method.

classify      train the multi-label classifier (BAS, or the plain CAM baseline)
seeds         per-class foreground maps for every training image (multi-scale + flip)
bao           learned background channel: seed labels without a background threshold (optional)
eval_seeds    seed mIoU over a background-threshold sweep, next to the learned background
crf           dense CRF on the seeds -> pseudo-labels
ir_labels     confident foreground / background from the seeds (CRF'd), the rest ignored
affinity      inter-pixel affinity network trained on the confident regions
random_walk   seeds propagated by the affinities -> pseudo-labels
eval_pseudo   pseudo-label mIoU (CRF and affinity paths) next to the seeds
segment       DeepLab trained in MMSegmentation on the pseudo-labels
eval_segment  final mIoU on the val split: single scale, multi-scale + flip, CRF
report        a self-contained HTML report (tables, charts, curves, contact sheets)
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from pipeline.stage import DataHooks, set_data_hooks

ORDER = ("classify", "seeds", "bao", "eval_seeds", "crf", "ir_labels", "affinity", "random_walk", "eval_pseudo",
         "segment", "eval_segment", "report")


def _dataset(dataset_cfg: Any, split: str | None = None, **overrides: Any) -> Any:
    from wsss.datasets import build_dataset  # lazily: importing the stage list stays cheap

    return build_dataset(dataset_cfg, split=split, **overrides)


def _split_files(dataset_cfg: Any, split: str) -> Any:
    from wsss.datasets import split_files

    return split_files(dataset_cfg, split)


def _split_name(dataset_cfg: Any, which: str) -> str:
    from wsss.datasets import split_name

    return split_name(dataset_cfg, which)


set_data_hooks(DataHooks(dataset=_dataset, split_files=_split_files, split_name=_split_name))


def load_stages() -> list[ModuleType]:
    """The stage modules in pipeline order."""
    return [importlib.import_module(f"stages.{name}") for name in ORDER]
