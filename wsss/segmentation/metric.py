"""mmseg's IoUMetric over (prediction, ground truth) pairs, and the table of the results."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.cache import atomic_write_text


def iou_metric(pairs: Callable[[], Any], classes: Sequence[str]) -> dict[str, Any]:
    """mmseg's ``IoUMetric`` over (pred, gt) uint8 maps: mIoU, aAcc, mAcc and per-class IoU (percent)."""
    import torch
    from mmseg.evaluation import IoUMetric

    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = dict(classes=list(classes))
    for pred, gt in pairs():
        metric.process({}, [dict(pred_sem_seg=dict(data=torch.from_numpy(pred.astype(np.int64))[None]),
                                 gt_sem_seg=dict(data=torch.from_numpy(gt.astype(np.int64))[None]))])
    if not metric.results:
        raise ValueError("iou_metric: no images")
    results = tuple(zip(*metric.results))
    areas = [sum(r) for r in results]
    ret = IoUMetric.total_area_to_metrics(*areas, ["mIoU"], metric.nan_to_num, metric.beta)
    iou = ret["IoU"]
    return dict(mIoU=float(np.nanmean(iou) * 100), aAcc=float(ret["aAcc"] * 100),
                mAcc=float(np.nanmean(ret["Acc"]) * 100), num_images=len(metric.results),
                per_class={c: (None if np.isnan(v) else float(v * 100)) for c, v in zip(classes, iou)})


def format_iou_table(results: Mapping[str, Mapping[str, Any]], classes: Sequence[str]) -> str:
    """Per-class IoU table, one column per evaluated variant."""
    names = list(results)
    w = max(len(c) for c in list(classes) + ["mIoU"])
    cw = [max(8, len(n)) for n in names]
    lines = [f"{'class':<{w}} | " + " | ".join(f"{n:>{c}}" for n, c in zip(names, cw))]
    lines.append("-" * len(lines[0]))

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for cls in classes:
        row = [f"{f(results[n]['per_class'][cls]):>{c}}" for n, c in zip(names, cw)]
        lines.append(f"{cls:<{w}} | " + " | ".join(row))
    lines.append("-" * len(lines[0]))
    lines.append(f"{'mIoU':<{w}} | " + " | ".join(f"{f(results[n]['mIoU']):>{c}}" for n, c in zip(names, cw)))
    return "\n".join(lines)


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_text(path, text if text.endswith("\n") else text + "\n")
