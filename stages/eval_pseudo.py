"""Pseudo-label quality against ground truth: the CRF-only path and the affinity (random walk) path, next to
the seed numbers of ``eval_seeds`` (read from its results.json when that stage has run).

mIoU, per-class IoU / precision / recall and the confusion matrix through wsss.metrics (the one mIoU).
A split without masks is not evaluated: the results say so (no number is made up).
"""
from __future__ import annotations

from typing import Any

NAME = "eval_pseudo"
INPUTS = ("crf", "random_walk")
CONFIG_KEYS = ("dataset", "eval_pseudo", "seeds.split")
PATHS = {"crf": "crf", "random_walk": "affinity + random walk"}


def seed_numbers(work_dir) -> dict[str, Any] | None:
    """The seed mIoU from ``eval_seeds/results.json`` (best threshold, chosen with GT; BAO), if it exists."""
    from pipeline.cache import read_json

    path = work_dir / "eval_seeds" / "results.json"
    if not path.is_file():
        return None
    data = read_json(path)
    res = data.get("results", data) if isinstance(data, dict) else {}
    keys = ("best_miou", "best_threshold", "best_threshold_note", "bao_miou", "skipped", "reason", "split")
    return {"file": str(path), **{k: res[k] for k in keys if k in res}}


def run(ctx) -> dict:
    from pipeline.cache import atomic_write_json
    from wsss.maps import seed_split
    from wsss.metrics import confusion_of_folders, format_table, summarize

    ds = ctx.dataset(seed_split(ctx.cfg, NAME))
    seeds = seed_numbers(ctx.work_dir)
    if not ds.has_masks:
        msg = f"dataset split '{ds.split}' has no ground-truth masks: pseudo-labels cannot be evaluated (skipped)"
        ctx.log.warning(msg)
        return {"skipped": True, "reason": msg, "split": ds.split, "seeds": seeds}
    ids = list(ds.ids)
    cms = confusion_of_folders({p: ctx.input_dir(p) / "labels" for p in PATHS}, ds.mask_path, ids, ds.num_classes,
                               workers=ctx.workers, log=ctx.log)
    names = list(ds.classes)
    summaries: dict[str, dict] = {}
    for p, cm in cms.items():
        summaries[p] = summarize(cm, names)
        ctx.log.info("pseudo-labels, %s (%s, %d images):\n%s", PATHS[p], ds.split, len(ids),
                     format_table(summaries[p], names))
    lines = [f"{'source':<28} mIoU", f"{'seeds (best bg threshold*)':<28} "
             + (f"{seeds['best_miou']:.2f}" if seeds and seeds.get("best_miou") is not None else "-")]
    if seeds and seeds.get("bao_miou") is not None:
        lines.append(f"{'seeds (BAO, no threshold)':<28} {seeds['bao_miou']:.2f}")
    lines += [f"{PATHS[p]:<28} {summaries[p]['mIoU']:.2f}" if summaries[p]["mIoU"] is not None
              else f"{PATHS[p]:<28} -" for p in PATHS]
    if seeds and seeds.get("best_miou") is not None:
        lines.append("* threshold chosen with the ground truth (upper bound)")
    table = "\n".join(lines)
    ctx.log.info("summary:\n%s", table)
    print(table)
    results = {"split": ds.split, "num_images": len(ids), "seeds": seeds,
               **{f"{p}_miou": summaries[p]["mIoU"] for p in PATHS}}
    if ctx.is_main:
        atomic_write_json(ctx.out_dir / "eval.json", {**results, **{p: summaries[p] for p in PATHS}})
    return results
