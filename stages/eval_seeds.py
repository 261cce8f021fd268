"""Seed quality against ground truth: mIoU over a sweep of background thresholds, and the threshold-free BAO result.

One pass over the images accumulates one confusion matrix per threshold (and one for the BAO labels when that
stage is enabled). The best threshold is picked with the ground truth, so it is reported as such: an upper
bound for any fixed threshold, not something a weakly supervised pipeline could have chosen.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.stage import section_enabled
from wsss.maps import check_seed_keys, open_seed_folder

NAME = "eval_seeds"
INPUTS = ("seeds",)
CONFIG_KEYS = ("dataset", "eval_seeds", "bao.enabled", "seeds.split")
GT_NOTE = ("best threshold chosen WITH the ground truth (upper bound for a fixed threshold; "
           "not available to a weakly supervised method)")


def inputs(cfg: Any) -> tuple[str, ...]:
    """The seeds, plus the BAO labels when that stage is enabled."""
    return ("seeds", "bao") if section_enabled(cfg, "bao") else ("seeds",)


def thresholds_from(scfg: Any) -> list[float]:
    """The swept background thresholds: an explicit list, or (start, stop, step) with stop included."""
    explicit = scfg.get("thresholds", None)
    if explicit is not None:
        ths = [float(t) for t in explicit]
    else:
        start, stop, step = (float(v) for v in scfg.get("threshold_range", (0.05, 0.60, 0.05)))
        if step <= 0 or stop < start:
            raise ValueError(f"eval_seeds.threshold_range must be (start, stop, step) with step > 0 and stop >= "
                             f"start, got {(start, stop, step)}")
        n = int(math.floor((stop - start) / step + 1e-6)) + 1
        ths = [round(start + i * step, 6) for i in range(n)]
    if not ths or any(not 0.0 <= t <= 1.0 for t in ths):
        raise ValueError(f"eval_seeds thresholds must be a non-empty list in [0, 1], got {ths}")
    return sorted(set(ths))


def run(ctx) -> dict:
    from pipeline.cache import atomic_write_json
    from pipeline.parallel import map_chunks
    from wsss.maps import load_seeds, seed_labels
    from wsss.metrics import ConfusionMatrix, confusion_of_folders, format_table, missing_files, summarize

    scfg = ctx.stage_cfg
    ths = thresholds_from(scfg)
    ds, ids, seed_dir = open_seed_folder(ctx, "eval_seeds")
    if not ds.has_masks:
        msg = f"dataset split '{ds.split}' has no ground-truth masks: seeds cannot be evaluated (skipped)"
        ctx.log.warning(msg)
        return {"skipped": True, "reason": msg, "split": ds.split}
    n = ds.num_classes

    def work(chunk: list[str]) -> list[ConfusionMatrix]:
        cms = [ConfusionMatrix(n) for _ in ths]
        for id_ in chunk:
            path = seed_dir / f"{id_}.npz"
            seeds = load_seeds(path)
            check_seed_keys(path, seeds.keys, ds.label_set(id_), ds.classes)
            gt = ds.mask(id_)
            if tuple(seeds.size) != gt.shape:
                raise ValueError(f"{path}: seed size {seeds.size} differs from the mask size {gt.shape} "
                                 f"({ds.mask_path(id_)})")
            for cm, t in zip(cms, ths):
                cm.update(seed_labels(seeds, t), gt)
        return cms

    # One pass over the seeds: a confusion matrix per threshold per chunk of images, merged exactly.
    cms = [ConfusionMatrix(n) for _ in ths]
    for part in map_chunks(ids, work, workers=ctx.workers, desc="eval seeds", log=ctx.log):
        for cm, other in zip(cms, part):
            cm.merge(other)
    bao_cm = None
    if section_enabled(ctx.cfg, "bao"):
        bao_dir = ctx.input_dir("bao") / "labels"
        missing = missing_files(bao_dir, ids)
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {len(ids)} BAO label maps missing in {bao_dir}: "
                                    f"{missing[:20]} (run the bao stage to completion, or set bao.enabled=False)")
        bao_cm = confusion_of_folders({"bao": ctx.input_dir("bao") / "labels"}, ds.mask_path, ids, n,
                                      workers=ctx.workers, log=ctx.log)["bao"]

    names = list(ds.classes)
    sums = [summarize(cm, names) for cm in cms]
    mious = [s["mIoU"] if s["mIoU"] is not None else float("nan") for s in sums]
    if all(math.isnan(m) for m in mious):
        raise ValueError(f"split '{ds.split}': the masks have no valid (non-ignore) pixel; nothing to evaluate")
    best = int(np.nanargmax(mious))
    bao_sum = summarize(bao_cm, names) if bao_cm is not None else None
    at_edge = len(ths) > 1 and best in (0, len(ths) - 1)
    if at_edge:
        ctx.log.warning("the best threshold %.2f is at the edge of the sweep %s: the optimum may lie outside it; "
                        "widen eval_seeds.threshold_range", ths[best], ths)

    lines = [f"seed mIoU vs background threshold ({ds.split}, {len(ids)} images):"]
    lines += [f"  t={t:.2f}  mIoU {m:6.2f}" + ("   <- best (chosen with ground truth)" if k == best else "")
              for k, (t, m) in enumerate(zip(ths, mious))]
    ctx.log.info("\n".join(lines))
    ctx.log.info("per-class at the best threshold t=%.2f (%s):\n%s", ths[best], GT_NOTE,
                 format_table(sums[best], names))
    if bao_sum is not None:
        ctx.log.info("threshold-free learned background (BAO), no threshold:\n%s", format_table(bao_sum, names))

    results: dict[str, Any] = {
        "split": ds.split,
        "num_images": len(ids),
        "thresholds": ths,
        "miou_per_threshold": mious,
        "best_threshold": ths[best],
        "best_miou": mious[best],
        "best_threshold_note": GT_NOTE,
        "best_at_sweep_edge": at_edge,
        "bao_miou": None if bao_sum is None else bao_sum["mIoU"],
        "bao_note": "threshold-free: learned background channel, argmax, no threshold" if bao_cm is not None
        else "bao stage disabled",
    }
    if ctx.is_main:
        plot_path = ctx.out_dir / "miou_vs_threshold.png"
        plot_sweep(plot_path, ths, mious, best, None if bao_sum is None else bao_sum["mIoU"], ds.split)
        results["plot"] = str(plot_path)
        atomic_write_json(ctx.out_dir / "eval.json", {
            **results,
            "per_threshold": [{"threshold": t, "mIoU": s["mIoU"], "mean_precision": s["mean_precision"],
                               "mean_recall": s["mean_recall"], "pixel_accuracy": s["pixel_accuracy"],
                               "iou": s["iou"]} for t, s in zip(ths, sums)],
            "best": sums[best],
            "bao": bao_sum,
        })
    return results


def plot_sweep(path: Path, ths: list[float], mious: list[float], best: int, bao_miou: float | None,
               split: str) -> None:
    """mIoU vs background threshold, best point marked, the BAO result as a horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.cache import atomic_path

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(ths, mious, "o-", label="seeds, fixed background threshold")
    ax.plot([ths[best]], [mious[best]], "r*", markersize=14,
            label=f"best t={ths[best]:.2f}: {mious[best]:.1f} (chosen with GT)")
    if bao_miou is not None:
        ax.axhline(bao_miou, color="g", linestyle="--", label=f"BAO, no threshold: {bao_miou:.1f}")
    ax.set_xlabel("background threshold")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(f"seed mIoU vs background threshold ({split})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
