"""The run report: one self-contained ``report/index.html`` (inline CSS, PNGs next to it, nothing from the network).

It gathers what the other stages wrote: their ``results.json`` (metrics, wall time, peak memory), the evaluation
files (``eval_seeds/eval.json``, ``eval_pseudo/eval.json``, ``eval_segment/miou.json``), the training logs
(``train_log.jsonl`` of classify / bao / affinity, mmengine's ``vis_data/scalars.json`` of segment) and the
per-image outputs (seed maps, pseudo-label and prediction PNGs) for a contact sheet of a fixed sample: the first
``report.num_examples`` ids of the split (sorted) plus the ``report.num_worst`` images whose pseudo-labels (or
predictions) score the lowest per-image mIoU. Whatever is missing (a disabled stage, a split without masks, a
stage not run) is shown as "not available" with the reason; no number is made up.

The report reads every enabled stage before it (its ``inputs``), so it is remade whenever any of them changes.
"""
from __future__ import annotations

from typing import Any

NAME = "report"
INPUTS = ("eval_seeds", "eval_pseudo", "eval_segment")  # the usual set; the real one is inputs(cfg)
CONFIG_KEYS = ("report",)


def stages_before(cfg: Any) -> dict[str, bool | str]:
    """Every stage before the report, in order -> True when it runs, else why not (disabled in the config,
    nothing in the data for it, or its module cannot be loaded)."""
    import importlib

    from pipeline.plan import disabled_reason
    from stages import ORDER

    out: dict[str, bool | str] = {}
    for name in ORDER[:ORDER.index(NAME)]:
        try:
            off = disabled_reason(importlib.import_module(f"stages.{name}"), cfg)
            out[name] = f"stage '{name}' is disabled ({off})" if off else True
        except Exception as e:  # noqa: BLE001  (the report says so and goes on)
            out[name] = f"stage module stages.{name} cannot be loaded ({e})"
    return out


def inputs(cfg: Any) -> tuple[str, ...]:
    """Every stage of the pipeline before the report that runs (it reads their results, logs and outputs)."""
    return tuple(n for n, runs in stages_before(cfg).items() if runs is True)


def run(ctx) -> dict[str, Any]:
    from wsss.report.content import build_report

    res = build_report(ctx, stages_before(ctx.cfg))
    return {**res, "products": {"report (open in a browser)": res["html"]}}
