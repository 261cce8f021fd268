"""Seed quality against ground truth: mIoU over a sweep of background thresholds, and the threshold-free BAO result.

Ground truth chooses a setting only on the declared calibration split (``calib.split``, wsss.datasets):
the sweep runs on the calibration images, the best threshold there (``calib_threshold``) is applied to the
reported images (the split minus the calibration images), and that number is labelled "tuned with ground truth
(on calib)". The learned background (BAO) is "ground-truth-free". Without a calibration split the best threshold
of the reported split itself is shown, labelled as an oracle (an upper bound, not a result). One pass per group
of images accumulates one confusion matrix per threshold.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.stage import section_enabled
from wsss.maps import check_seed_keys, open_seed_folder
from wsss.report.charts import plot_sweep
from wsss.report.kinds import GT_FREE, ORACLE, TUNED  # noqa: F401  (TUNED: the third result kind)

NAME = "eval_seeds"
INPUTS = ("seeds",)
CONFIG_KEYS = ("dataset", "calib", "eval_seeds", "bao.enabled", "seeds.split", "learned_background")
GT_NOTE = ("best threshold chosen WITH the ground truth of the reported split itself (no calibration split "
           "declared): an oracle upper bound for a fixed threshold, not a weakly supervised result")
CALIB_NOTE = ("threshold chosen with ground truth on the calibration split ({n} images), applied to the reported "
              "images (calibration images excluded)")


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


def sweep(ctx, ds: Any, ids: list[str], seed_dir: Path, ths: list[float]) -> list[Any]:
    """One confusion matrix per threshold over ``ids`` (one pass over the seed files, in chunks)."""
    from pipeline.parallel import map_chunks
    from wsss.maps import load_seeds, seed_labels
    from wsss.metrics import ConfusionMatrix

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

    cms = [ConfusionMatrix(n) for _ in ths]
    if not ids:
        return cms
    for part in map_chunks(ids, work, workers=ctx.workers, desc="eval seeds", log=ctx.log):
        for cm, other in zip(cms, part):
            cm.merge(other)
    return cms


def learned_background_cm(ctx, ds: Any, ids: list[str], seed_dir: Path, bao_dir: Path) -> Any:
    """Confusion matrix of argmax [learned background map, seed maps]: the refinement stages' default labels."""
    from pipeline.parallel import map_chunks
    from wsss.background import background_scale, load_background
    from wsss.maps import load_seeds, seed_labels
    from wsss.metrics import ConfusionMatrix

    scale = background_scale(ctx.cfg)

    def work(chunk: list[str]) -> ConfusionMatrix:
        cm = ConfusionMatrix(ds.num_classes)
        for id_ in chunk:
            seeds = load_seeds(seed_dir / f"{id_}.npz")
            background = load_background(bao_dir, id_, seeds.size, scale)
            cm.update(seed_labels(seeds, 0.0, background=background), ds.mask(id_))
        return cm

    total = ConfusionMatrix(ds.num_classes)
    for part in map_chunks(ids, work, workers=ctx.workers, desc="eval learned bg", log=ctx.log):
        total.merge(part)
    return total


def _mious(sums: list[dict]) -> list[float]:
    return [s["mIoU"] if s["mIoU"] is not None else float("nan") for s in sums]


def run(ctx) -> dict:
    from pipeline.cache import atomic_write_json
    from wsss.datasets import split_reported
    from wsss.metrics import confusion_of_folders, format_table, missing_files, summarize

    scfg = ctx.stage_cfg
    ths = thresholds_from(scfg)
    ds, all_ids, seed_dir = open_seed_folder(ctx, "eval_seeds")
    if not ds.has_masks:
        msg = f"dataset split '{ds.split}' has no ground-truth masks: seeds cannot be evaluated (skipped)"
        ctx.log.warning(msg)
        return {"skipped": True, "reason": msg, "split": ds.split}
    ids, calib = split_reported(ctx.cfg, ds)
    if not ids:
        raise ValueError(f"split '{ds.split}': every image is in the calibration split; nothing left to report")
    names = list(ds.classes)
    sums = [summarize(cm, names) for cm in sweep(ctx, ds, ids, seed_dir, ths)]
    mious = _mious(sums)
    if all(math.isnan(m) for m in mious):
        raise ValueError(f"split '{ds.split}': the masks have no valid (non-ignore) pixel; nothing to evaluate")
    oracle = int(np.nanargmax(mious))
    calib_mious: list[float] | None = None
    if calib:
        calib_mious = _mious([summarize(cm, names) for cm in sweep(ctx, ds, calib, seed_dir, ths)])
        if all(math.isnan(m) for m in calib_mious):
            raise ValueError(f"the calibration images of split '{ds.split}' have no valid mask pixel")
        best, note, kind = int(np.nanargmax(calib_mious)), CALIB_NOTE.format(n=len(calib)), TUNED
        sweep_for_edge = calib_mious
    else:
        ctx.log.warning("no calibration split declared (calib.split): the best seed threshold is chosen on "
                        "the reported split itself and labelled as an oracle")
        best, note, kind = oracle, GT_NOTE, ORACLE
        sweep_for_edge = mious
    at_edge = len(ths) > 1 and int(np.nanargmax(sweep_for_edge)) in (0, len(ths) - 1)
    if at_edge:
        ctx.log.warning("the best threshold %.2f is at the edge of the sweep %s: the optimum may lie outside it; "
                        "widen eval_seeds.threshold_range", ths[best], ths)
    bao_sum = learned_sum = None
    if section_enabled(ctx.cfg, "bao"):
        bao_dir = ctx.input_dir("bao") / "labels"
        missing = missing_files(bao_dir, all_ids)
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {len(all_ids)} BAO label maps missing in {bao_dir}: "
                                    f"{missing[:20]} (run the bao stage to completion, or set bao.enabled=False)")
        bao_cm = confusion_of_folders({"bao": bao_dir}, ds.mask_path, ids, ds.num_classes, workers=ctx.workers,
                                      log=ctx.log)["bao"]
        bao_sum = summarize(bao_cm, names)
        bg_dir = ctx.input_dir("bao") / "bg"
        if all((bg_dir / f"{i}.npz").is_file() for i in ids):
            learned_sum = summarize(learned_background_cm(ctx, ds, ids, seed_dir, ctx.input_dir("bao")), names)

    lines = [f"seed mIoU vs background threshold ({ds.split}, {len(ids)} reported images"
             + (f"; sweep chosen on {len(calib)} calibration images" if calib else "") + "):"]
    for k, (t, m) in enumerate(zip(ths, mious)):
        c = f"  calib {calib_mious[k]:6.2f}" if calib_mious is not None else ""
        lines.append(f"  t={t:.2f}  mIoU {m:6.2f}{c}" + (f"   <- {kind}" if k == best else ""))
    ctx.log.info("\n".join(lines))
    ctx.log.info("per-class at t=%.2f (%s):\n%s", ths[best], note, format_table(sums[best], names))
    if bao_sum is not None:
        ctx.log.info("threshold-free learned background (BAO), %s:\n%s", GT_FREE, format_table(bao_sum, names))
    rows = []
    if bao_sum is not None:
        rows.append({"name": "seeds, learned background (BAO), no threshold", "mIoU": bao_sum["mIoU"],
                     "kind": GT_FREE})
    if learned_sum is not None:
        rows.append({"name": "seeds, learned background map vs the seed maps", "mIoU": learned_sum["mIoU"],
                     "kind": GT_FREE})
    rows.append({"name": f"seeds, background threshold t={ths[best]:.2f}", "mIoU": mious[best], "kind": kind})
    if calib:
        rows.append({"name": f"seeds, oracle threshold t={ths[oracle]:.2f} (reference only)",
                     "mIoU": mious[oracle], "kind": ORACLE})

    results: dict[str, Any] = {
        "split": ds.split,
        "num_images": len(ids),
        "num_calib_images": len(calib),
        "calib_excluded": bool(calib),
        "thresholds": ths,
        "miou_per_threshold": mious,
        "calib_miou_per_threshold": calib_mious,
        "calib_threshold": ths[best] if calib else None,
        "best_threshold": ths[best],
        "best_miou": mious[best],
        "best_threshold_note": note,
        "best_kind": kind,
        "best_at_sweep_edge": at_edge,
        "oracle": {"threshold": ths[oracle], "mIoU": mious[oracle], "note": ORACLE},
        "bao_miou": None if bao_sum is None else bao_sum["mIoU"],
        "bao_note": f"{GT_FREE}: learned background channel, argmax, no threshold" if bao_sum is not None
        else "bao stage disabled",
        # the background the refinement stages use by default: BAO's map against the classifier's seed maps
        "learned_bg_seeds_miou": None if learned_sum is None else learned_sum["mIoU"],
        "rows": rows,
    }
    if ctx.is_main:
        plot_path = ctx.out_dir / "miou_vs_threshold.png"
        plot_sweep(plot_path, ths, mious, best, None if bao_sum is None else bao_sum["mIoU"], ds.split,
                   calib_mious, kind)
        results["plot"] = str(plot_path)
        atomic_write_json(ctx.out_dir / "eval.json", {
            **results,
            "calib_ids": calib,
            "per_threshold": [{"threshold": t, "mIoU": s["mIoU"], "mean_precision": s["mean_precision"],
                               "mean_recall": s["mean_recall"], "pixel_accuracy": s["pixel_accuracy"],
                               "iou": s["iou"]} for t, s in zip(ths, sums)],
            "best": sums[best],
            "bao": bao_sum,
            "learned_bg_seeds": learned_sum,
        })
    return results
