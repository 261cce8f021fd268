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

ORDER = ("classify", "seeds", "bao", "eval_seeds", "crf", "ir_labels", "affinity", "random_walk", "eval_pseudo",
         "segment", "eval_segment", "report")


def load_stages() -> list[ModuleType]:
    """The stage modules in pipeline order."""
    return [importlib.import_module(f"stages.{name}") for name in ORDER]
