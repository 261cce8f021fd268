"""Report examples: per-image scores of the pseudo-labels, the best / worst / random images and their cells."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wsss.report.run import PSEUDO, RunRecord


def image_miou(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> float | None:
    """mIoU (percent) of one image, over the classes in its ground truth or prediction; None if no valid pixel."""
    from wsss.metrics import ConfusionMatrix, summarize

    cm = ConfusionMatrix(num_classes)
    cm.update(pred, gt)
    return summarize(cm, [str(i) for i in range(num_classes)])["mIoU"]


# ------------------------------------------------------------------------------------------------ examples
def _chunked_scores(ctx: Any, ids: list[str], label_dir: Path, ds: Any) -> tuple[dict[str, float], dict[str, str]]:
    """(per-image mIoU of ``label_dir/<id>.png`` against the masks, {id: why not scored}) -- an image that
    cannot be scored (file missing, unreadable, other size) is counted and named in the report, never dropped
    silently."""
    from pipeline.parallel import map_chunks
    from wsss.datasets import DatasetError, read_label_png

    def work(chunk: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        out: dict[str, float] = {}
        skipped: dict[str, str] = {}
        for id_ in chunk:
            path = label_dir / f"{id_}.png"
            if not path.is_file():
                skipped[id_] = f"{path.name} missing"
                continue
            try:
                pred, gt = read_label_png(path), ds.mask(id_)
            except (DatasetError, ValueError, OSError) as e:
                skipped[id_] = str(e)
                continue
            if pred.shape != gt.shape:
                skipped[id_] = f"{path.name}: {pred.shape} vs mask {gt.shape}"
                continue
            out[id_] = image_miou(pred, gt, ds.num_classes)
        return out, skipped

    scores: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for part, why in map_chunks(ids, work, workers=ctx.workers, desc="report: per-image IoU", log=ctx.log):
        scores.update(part)
        skipped.update(why)
    if skipped:
        ctx.log.warning("report: %d of %d images in %s could not be scored, e.g. %s", len(skipped), len(ids),
                        label_dir, "; ".join(list(skipped.values())[:3]))
    return scores, skipped


def _skip_note(skipped: dict[str, str], total: int) -> str:
    from wsss.report.page import esc

    if not skipped:
        return ""
    return (f" <b>{len(skipped)} of {total} images could not be scored</b> (left out of the ranking), e.g. "
            + esc("; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:3])) + ".")


def pick_sample(ids: list[str], scores: dict[str, float | None], num_examples: int,
                num_worst: int) -> tuple[list[str], list[str]]:
    """(fixed sample = first ids sorted, worst = lowest scores among the rest); deterministic (ties by id)."""
    first = sorted(ids)[:max(0, num_examples)]
    rest = [(s, i) for i, s in scores.items() if s is not None and i not in first]
    worst = [i for _, i in sorted(rest)[:max(0, num_worst)]]
    return first, worst


def _label_cell(path: Path, height: int, what: str):
    from wsss.datasets import read_label_png
    from wsss.maps import colorize
    from wsss.report.charts import Cell, thumbnail

    if not path.is_file():
        return Cell(text=f"no {what}")
    try:
        return Cell(thumbnail(colorize(read_label_png(path)), height, nearest=True))
    except Exception as e:  # noqa: BLE001  (an unreadable file shows as such in its cell)
        return Cell(text=f"unreadable {what}:\n{type(e).__name__}")


def _image_cells(ds: Any, id_: str, height: int):
    from wsss.maps import colorize
    from wsss.report.charts import Cell, thumbnail

    try:
        image = Cell(thumbnail(ds.image(id_), height, nearest=False))
    except Exception as e:  # noqa: BLE001
        image = Cell(text=f"unreadable image:\n{type(e).__name__}")
    if not ds.has_masks:
        gt = Cell(text="no masks")
    else:
        try:
            gt = Cell(thumbnail(colorize(ds.mask(id_)), height, nearest=True))
        except Exception as e:  # noqa: BLE001
            gt = Cell(text=f"unreadable mask:\n{type(e).__name__}")
    return image, gt


def _seed_cell(path: Path, t: float, height: int):
    from wsss.maps import colorize, load_seeds, seed_labels
    from wsss.report.charts import Cell, thumbnail

    if not path.is_file():
        return Cell(text="no seed file")
    try:
        return Cell(thumbnail(colorize(seed_labels(load_seeds(path), t)), height, nearest=True))
    except Exception as e:  # noqa: BLE001
        return Cell(text=f"unreadable seeds:\n{type(e).__name__}")


def _row_label(id_: str, kind: str, score: float | None, what: str) -> str:
    return f"{id_}\n{kind}" + (f", {what} mIoU {score:.1f}" if score is not None else "")


def _pseudo_source(run: RunRecord) -> str | None:
    """The pseudo-labels whose worst images are shown: those segment trained on, else the first available."""
    want = str(run.cfg.get("segment", {}).get("labels_from", "random_walk"))
    order = [want] + [s for s in ("random_walk", "crf", "bao") if s != want]
    for s in order:
        if s in PSEUDO and run.ok(s) and (run.work / s / "labels").is_dir():
            return s
    return None


def example_rows(run: RunRecord, out: Path, rcfg: dict) -> tuple[list[str], dict[str, Any]]:
    """Contact sheets (HTML parts) and what was sampled."""
    from wsss.maps import seed_split
    from wsss.report.charts import Cell, contact_sheet
    from wsss.report.page import colour_legend, esc, img
    from wsss.report.page import fmt as f

    ctx, cfg = run.ctx, run.cfg
    n_ex, n_worst = int(rcfg.get("num_examples", 6)), int(rcfg.get("num_worst", 4))
    height = int(rcfg.get("thumb_height", 160))
    parts: list[str] = []
    info: dict[str, Any] = {}
    try:
        ds = ctx.dataset(seed_split(cfg, "seeds"))
    except Exception as e:  # noqa: BLE001  (the dataset moved: say so, keep the rest of the report)
        parts.append(run.na("examples", f"the dataset cannot be read ({e})"))
        return parts, info
    ids = list(ds.ids)

    # chosen seed threshold: eval_seeds' best (GT-chosen) else the CRF's threshold
    seeds_res = run.results.get("eval_seeds") or {}
    if run.ok("eval_seeds") and seeds_res.get("best_threshold") is not None:
        t, t_note = float(seeds_res["best_threshold"]), str(seeds_res.get("best_kind") or "chosen with GT")
    else:
        raw = cfg.get("crf", {}).get("bg_threshold", 0.25)
        t, t_note = (float(raw) if isinstance(raw, (int, float)) else 0.25), "crf.bg_threshold"
        run.missing.append(f"seed threshold from eval_seeds: {run.reason('eval_seeds')}; using {t_note}={t}")

    src = _pseudo_source(run)
    scores: dict[str, float | None] = {}
    unscored: dict[str, str] = {}
    worst_why = None
    if not ds.has_masks:
        worst_why = f"split '{ds.split}' has no ground-truth masks"
    elif src is None:
        worst_why = "no pseudo-label stage (random_walk, crf, bao) has finished"
    else:
        scores, unscored = _chunked_scores(ctx, ids, run.work / src / "labels", ds)
        info.update(unscored=len(unscored))
    first, worst = pick_sample(ids, scores, n_ex, n_worst)
    info.update(split=ds.split, sample_ids=first, worst_ids=worst, worst_source=src, seed_threshold=t)

    pred_res = run.results.get("eval_segment") or {}
    # predictions written but not scored (a val split without masks) are shown too
    pred_split = pred_res.get("split") if run.ok("eval_segment") or pred_res.get("pred_dir") else None
    pred_dir = run.work / "eval_segment" / "pred"
    columns = ["image", f"seed, t={f(t)} ({t_note})"]
    sources = []
    if run.enabled.get("bao"):
        sources.append("bao")
    sources += [s for s in ("crf", "random_walk") if run.enabled.get(s)]
    columns += [f"pseudo, {PSEUDO[s]}" for s in sources]
    with_pred = pred_split == ds.split
    if with_pred:
        columns.append("prediction (final)")
    columns.append("ground truth")
    rows = []
    for kind, group in (("sample", first), ("worst", worst)):
        for id_ in group:
            image, gt = _image_cells(ds, id_, height)
            cells = [image, _seed_cell(run.work / "seeds" / "maps" / f"{id_}.npz", t, height)]
            for s in sources:
                cells.append(_label_cell(run.work / s / "labels" / f"{id_}.png", height, f"{s} labels")
                             if run.ok(s) else Cell(text=f"{s}: not run"))
            if with_pred:
                cells.append(_label_cell(pred_dir / f"{id_}.png", height, "prediction"))
            cells.append(gt)
            rows.append((_row_label(id_, kind, scores.get(id_), src or ""), cells))
    parts.append(f"<h3>Seeds and pseudo-labels, split '{esc(ds.split)}'</h3>")
    notes = [f"Fixed sample: the first {len(first)} ids of the split (sorted)."]
    if worst_why:
        notes.append("Worst images: " + run.na("worst pseudo-label images", worst_why))
    else:
        notes.append(f"Worst images: the {len(worst)} lowest per-image mIoU of the {esc(PSEUDO[src])} pseudo-labels "
                     f"({len(scores)} of {len(ids)} images scored)." + _skip_note(unscored, len(ids)))
    for s in ("bao", "crf", "random_walk"):
        if not run.enabled.get(s):
            notes.append(f"{esc(PSEUDO[s])}: " + run.na(f"{s} column", run.reason(s)))
        elif not run.ok(s):
            notes.append(f"{esc(PSEUDO[s])}: " + run.na(f"{s} column", run.reason(s)))
    if not run.ok("seeds"):
        notes.append("seeds: " + run.na("seed column", run.reason("seeds")))
    if not with_pred:
        why = (run.reason("eval_segment") if pred_split is None
               else f"the segmentation model predicted split '{pred_split}' (see below)")
        notes.append("Predictions for this split: " + run.na("predictions on the seed split", why))
    if rows:
        contact_sheet(out / "examples_pseudo.png", columns, rows, f"split '{ds.split}'")
        parts.append("<p class=\"note\">" + "<br>".join(notes) + "</p>" + img("examples_pseudo.png", "examples"))
    else:
        parts.append(run.na("examples", f"split '{ds.split}' has no images to show"))

    # predictions on the evaluated split, when it is another split
    if pred_split is not None and not with_pred:
        parts.append(f"<h3>Predictions, split '{esc(pred_split)}'</h3>")
        try:
            vds = ctx.dataset(pred_split, require_foreground=False)
        except Exception as e:  # noqa: BLE001
            parts.append(run.na("predictions", f"split '{pred_split}' cannot be read ({e})"))
            vds = None
        if vds is not None:
            vids = list(vds.ids)
            vscores, vunscored = _chunked_scores(ctx, vids, pred_dir, vds) if vds.has_masks else ({}, {})
            if vunscored:
                parts.append("<p class=\"note\">" + _skip_note(vunscored, len(vids)) + "</p>")
            vfirst, vworst = pick_sample(vids, vscores, n_ex, n_worst)
            info.update(pred_split=pred_split, pred_sample_ids=vfirst, pred_worst_ids=vworst)
            variants = (run.file_json("eval_segment", "miou.json")[0] or {}).get("variants") or {}
            vcols = ["image"]
            vdirs = []
            for var, res in variants.items():
                d = Path(res.get("pred_dir", "")) if isinstance(res, dict) else Path()
                d = run.work / "eval_segment" / d.name if d.name else pred_dir
                vcols.append(f"prediction, {var}")
                vdirs.append(d)
            if not vdirs:
                vcols.append("prediction (final)")
                vdirs.append(pred_dir)
            vcols.append("ground truth")
            vrows = []
            for kind, group in (("sample", vfirst), ("worst", vworst)):
                for id_ in group:
                    image, gt = _image_cells(vds, id_, height)
                    cells = [image] + [_label_cell(d / f"{id_}.png", height, "prediction") for d in vdirs] + [gt]
                    vrows.append((_row_label(id_, kind, vscores.get(id_), "final"), cells))
            if vrows:
                contact_sheet(out / "examples_pred.png", vcols, vrows, f"split '{pred_split}'")
                parts.append(f"<p class=\"note\">Fixed sample: the first {len(vfirst)} ids (sorted); worst: the "
                             f"{len(vworst)} lowest per-image mIoU of the final predictions.</p>"
                             + img("examples_pred.png", "prediction examples"))
    parts.append("<p class=\"note\">Colours (VOC palette):</p>" + colour_legend(ds.classes))
    info["_dataset"] = ds
    return parts, info
