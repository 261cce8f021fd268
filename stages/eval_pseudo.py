"""Pseudo-label quality against ground truth: the CRF-only path and the affinity (random walk) path, next to
the seed numbers of ``eval_seeds`` (read from its results.json when that stage has run).

mIoU, per-class IoU / precision / recall and the confusion matrix through wsss.metrics (the one mIoU), on the
reported images: the split minus the declared calibration images (``calib.split``). Each path's row
says how its background was set: "ground-truth-free" (learned background) or "tuned with ground truth (on
calib)" (a threshold taken from the calibration split), from the stage's own results.json.
A split without masks is not evaluated: the results say so (no number is made up).
"""
from __future__ import annotations

from typing import Any

NAME = "eval_pseudo"
INPUTS = ("crf", "random_walk")
CONFIG_KEYS = ("dataset", "calib", "eval_pseudo", "seeds.split")
REFINERS = {"crf": "crf", "random_walk": "affinity + random walk"}  # the refinement stages -> their names in tables


def seed_numbers(work_dir) -> dict[str, Any] | None:
    """The seed mIoU from ``eval_seeds/results.json`` (best threshold, chosen with GT; BAO), if it exists."""
    from pipeline.cache import read_json

    path = work_dir / "eval_seeds" / "results.json"
    if not path.is_file():
        return None
    data = read_json(path)
    res = data.get("results", data) if isinstance(data, dict) else {}
    keys = ("best_miou", "best_threshold", "best_threshold_note", "best_kind", "bao_miou", "skipped", "reason",
            "split", "num_calib_images")
    return {"file": str(path), **{k: res[k] for k in keys if k in res}}


def path_provenance(work_dir, stage: str) -> str:
    """The label of how a path's background was set, from its results.json ('unknown' for older runs)."""
    from pipeline.cache import read_json

    path = work_dir / stage / "results.json"
    res = read_json(path) if path.is_file() else {}
    return str(res.get("provenance_label", "unknown")) if isinstance(res, dict) else "unknown"


def run(ctx) -> dict:
    from pipeline.cache import atomic_write_json
    from wsss.datasets import split_reported
    from wsss.maps import seed_split
    from wsss.metrics import confusion_of_folders, format_table, summarize

    ds = ctx.dataset(seed_split(ctx.cfg, NAME))
    seeds = seed_numbers(ctx.work_dir)
    if not ds.has_masks:
        msg = f"dataset split '{ds.split}' has no ground-truth masks: pseudo-labels cannot be evaluated (skipped)"
        ctx.log.warning(msg)
        return {"skipped": True, "reason": msg, "split": ds.split, "seeds": seeds}
    ids, calib = split_reported(ctx.cfg, ds)
    if not ids:
        raise ValueError(f"split '{ds.split}': every image is in the calibration split; nothing left to report")
    cms = confusion_of_folders({p: ctx.input_dir(p) / "labels" for p in REFINERS}, ds.mask_path, ids, ds.num_classes,
                               workers=ctx.workers, log=ctx.log)
    names = list(ds.classes)
    kinds = {p: path_provenance(ctx.work_dir, p) for p in REFINERS}
    summaries: dict[str, dict] = {}
    for p, cm in cms.items():
        summaries[p] = summarize(cm, names)
        ctx.log.info("pseudo-labels, %s, %s (%s, %d images, %d calibration images excluded):\n%s", REFINERS[p],
                     kinds[p], ds.split, len(ids), len(calib), format_table(summaries[p], names))
    rows = []
    if seeds and seeds.get("bao_miou") is not None:
        rows.append(("seeds (BAO, no threshold)", seeds["bao_miou"], "ground-truth-free"))
    if seeds and seeds.get("best_miou") is not None:
        rows.append((f"seeds (t={seeds.get('best_threshold')})", seeds["best_miou"],
                     seeds.get("best_kind", "chosen with ground truth")))
    rows += [(REFINERS[p], summaries[p]["mIoU"], kinds[p]) for p in REFINERS]
    table = "\n".join([f"{'source':<28} {'mIoU':>6}  how its background was set",
                       *(f"{n:<28} " + (f"{m:6.2f}" if m is not None else f"{'-':>6}") + f"  {k}"
                         for n, m, k in rows)])
    ctx.log.info("summary (%d reported images of %s; %d calibration images excluded):\n%s", len(ids), ds.split,
                 len(calib), table)
    print(table)
    results = {"split": ds.split, "num_images": len(ids), "num_calib_images": len(calib), "seeds": seeds,
               **{f"{p}_miou": summaries[p]["mIoU"] for p in REFINERS}, **{f"{p}_kind": kinds[p] for p in REFINERS},
               "rows": [{"name": f"pseudo-labels, {REFINERS[p]}", "mIoU": summaries[p]["mIoU"], "kind": kinds[p]}
                        for p in REFINERS]}
    if ctx.is_main:
        atomic_write_json(ctx.out_dir / "eval.json", {**results, **{p: summaries[p] for p in REFINERS}})
    return results
