"""The run report's content: reads what the stages of a work directory wrote and lays out the HTML page.

Used by ``stages/report.py``; the HTML/plot primitives live in ``wsss.report``. See the stage's docstring for what
the page shows.
"""
from __future__ import annotations

import datetime as _dt
import importlib
from pathlib import Path
from typing import Any

TRAINERS = ("classify", "bao", "affinity")  # stages that log train_log.jsonl through wsss.training
PSEUDO = {"crf": "CRF", "random_walk": "affinity + random walk", "bao": "BAO (learned background)"}



def _pipeline_stages() -> list[str]:
    from stages import ORDER

    return [n for n in ORDER if n != "report"]


def _enabled(cfg: Any, name: str) -> bool:
    from pipeline.runner import stage_enabled

    return stage_enabled(importlib.import_module(f"stages.{name}"), cfg)


def stages_reported(cfg: Any) -> tuple[str, ...]:
    """Every enabled stage of the pipeline before the report."""
    return tuple(n for n in _pipeline_stages() if _enabled(cfg, n))


# ------------------------------------------------------------------------------------------------ gathering
class Run:
    """What the stages of one work dir left behind, with a reason for everything that is not there."""

    def __init__(self, ctx: Any):
        from wsss.report import read_json_or_none

        self.ctx, self.cfg, self.work = ctx, ctx.cfg, Path(ctx.work_dir)
        self.missing: list[str] = []  # every "not available" line, for the summary at the end
        summary, _ = read_json_or_none(self.work / "summary.json")
        self.summary = {s.get("stage"): s for s in summary.get("stages", [])} if isinstance(summary, dict) else {}
        self.stages = _pipeline_stages()
        self.enabled: dict[str, bool] = {}
        self.results: dict[str, dict | None] = {}
        self.why: dict[str, str | None] = {}
        for name in self.stages:
            try:
                self.enabled[name] = _enabled(self.cfg, name)
            except Exception as e:  # noqa: BLE001  (a stage module that does not import: report it, go on)
                self.enabled[name] = False
                self.results[name], self.why[name] = None, f"stage module stages.{name} cannot be loaded ({e})"
                continue
            if not self.enabled[name]:
                self.results[name], self.why[name] = None, f"stage '{name}' is disabled in the config"
                continue
            res, why = read_json_or_none(self.work / name / "results.json")
            if res is None:
                why = f"stage '{name}' has not finished in this work dir ({why})"
            elif not isinstance(res, dict):
                res, why = None, f"{self.work / name / 'results.json'} is not a JSON object"
            elif res.get("skipped"):
                why = f"stage '{name}' skipped: {res.get('reason', 'no reason given')}"
            self.results[name], self.why[name] = res, why

    def ok(self, name: str) -> bool:
        return self.results.get(name) is not None and self.why.get(name) is None

    def reason(self, name: str) -> str:
        return self.why.get(name) or (f"stage '{name}' is not part of this pipeline" if name not in self.stages
                                      else "no reason recorded")

    def na(self, what: str, reason: str) -> str:
        from wsss.report import na

        self.missing.append(f"{what}: {reason}")
        return na(reason)

    def file_json(self, stage: str, filename: str) -> tuple[Any, str | None]:
        from wsss.report import read_json_or_none

        if not self.ok(stage):
            return None, self.reason(stage)
        return read_json_or_none(self.work / stage / filename)


# ------------------------------------------------------------------------------------------------ sections
def _metric_rows(run: Run) -> list[list[str]]:
    from wsss.report import esc, fmt

    rows: list[list[str]] = []

    def add(label: str, stage: str, key: str, note: str = "", missing_key_reason: str = "") -> None:
        res = run.results.get(stage)
        where = ""
        if run.ok(stage):
            where = esc(f"{res.get('split', '?')} ({res.get('num_images', '?')} images)")
            val = res.get(key)
            cell = (f"<b>{fmt(val)}</b>" if isinstance(val, (int, float)) and not isinstance(val, bool)
                    else run.na(label, missing_key_reason or f"'{key}' is not in {stage}/results.json"))
        else:
            cell = run.na(label, run.reason(stage))
        rows.append([esc(label), cell, where, esc(note)])

    seeds = run.results.get("eval_seeds") or {}
    t = seeds.get("best_threshold")
    add(f"seeds, best fixed background threshold (t={fmt(t)})" if t is not None else "seeds, best fixed threshold",
        "eval_seeds", "best_miou", "threshold chosen WITH the ground truth: an upper bound, not a weakly "
        "supervised number")
    add("seeds, learned background (BAO, no threshold)", "eval_seeds", "bao_miou", "threshold-free",
        missing_key_reason=str(seeds.get("bao_note") or "no BAO result"))
    add("pseudo-labels, CRF", "eval_pseudo", "crf_miou")
    add("pseudo-labels, affinity + random walk", "eval_pseudo", "random_walk_miou")
    seg = run.results.get("eval_segment") or {}
    ecfg = run.cfg.get("eval_segment", {})
    for key, label, flag in (("mIoU_single_scale", "final DeepLab, single scale", None),
                             ("mIoU_ms_flip", "final DeepLab, multi-scale + flip", "ms_flip"),
                             ("mIoU_crf", "final DeepLab, multi-scale + flip + CRF", "crf")):
        off = flag is not None and not ecfg.get(flag, True)
        add(label, "eval_segment", key, "", f"eval_segment.{flag} = False" if off else
            f"'{key}' is not in eval_segment/results.json" if seg else "")
    return rows


_SKIP_DETAIL = ("wall_s", "peak_rss_mb", "history", "final", "skipped", "reason", "labels", "background_maps",
                "plot", "best_threshold_note", "bao_note", "label_dir", "model_config", "loss_history")


def _details(res: dict) -> str:
    from wsss.report import esc, fmt

    parts = []
    for k, v in res.items():
        if k in _SKIP_DETAIL or isinstance(v, (dict, list)) or v is None:
            continue
        if isinstance(v, str) and (len(v) > 40 or "/" in v):
            continue
        parts.append(f"{k}={fmt(v, 3)}")
    return esc(", ".join(parts[:10]))


def _stage_rows(run: Run) -> list[list[str]]:
    from wsss.report import esc, fmt

    rows = []
    for name in run.stages:
        res, prev = run.results.get(name), run.summary.get(name, {})
        if not run.enabled.get(name):
            rows.append([esc(name), run.na(f"stage {name}", run.reason(name)), "-", "-", ""])
            continue
        if res is None:
            rows.append([esc(name), run.na(f"stage {name}", run.reason(name)), "-", "-", ""])
            continue
        status = f"skipped: {res.get('reason', '')}" if res.get("skipped") else "done"
        manifest = run.work / name / "manifest.json"
        if manifest.is_file():
            from wsss.report import read_json_or_none

            m, _ = read_json_or_none(manifest)
            if isinstance(m, dict) and m.get("state") not in (None, "done"):
                status = f"{m.get('state')} (results.json is from an earlier run)"
        wall = res.get("wall_s", prev.get("wall_s"))
        mem = res.get("peak_rss_mb", prev.get("peak_rss_mb"))
        rows.append([esc(name), esc(status), fmt(wall, 1), fmt(mem, 0), _details(res)])
    return rows


def _class_names(run: Run, ds: Any) -> list[str] | None:
    if ds is not None:
        return list(ds.classes)
    for stage, fname, key in (("eval_seeds", "eval.json", "best"), ("eval_pseudo", "eval.json", "crf")):
        data, _ = run.file_json(stage, fname)
        if isinstance(data, dict) and isinstance(data.get(key), dict) and data[key].get("class_names"):
            return list(data[key]["class_names"])
    data, _ = run.file_json("eval_segment", "miou.json")
    if isinstance(data, dict) and data.get("variants"):
        first = next(iter(data["variants"].values()))
        return list(first.get("per_class", {}))
    return None


def per_class_series(run: Run, names: list[str]) -> tuple[dict[str, list[float | None]], list[str]]:
    """{label: IoU per class (None undefined)} from the evaluation files, and the reasons for missing ones."""
    series: dict[str, list[float | None]] = {}
    missing: list[str] = []

    def from_summary(label: str, summ: Any) -> None:
        if not isinstance(summ, dict) or "iou" not in summ:
            missing.append(f"{label}: no per-class IoU recorded")
            return
        got = dict(zip(summ.get("class_names", names), summ["iou"]))
        series[label] = [got.get(c) for c in names]

    data, why = run.file_json("eval_seeds", "eval.json")
    if data is None:
        missing.append(f"seeds: {why}")
    else:
        from_summary(f"seeds, t={data.get('best_threshold')} (GT-chosen)", data.get("best"))
        if data.get("bao") is not None:
            from_summary("seeds, BAO", data.get("bao"))
        else:
            missing.append(f"seeds, BAO: {data.get('bao_note') or 'no BAO result'}")
    data, why = run.file_json("eval_pseudo", "eval.json")
    for key, label in (("crf", "pseudo, CRF"), ("random_walk", "pseudo, random walk")):
        if data is None:
            missing.append(f"{label}: {why}")
        else:
            from_summary(label, data.get(key))
    data, why = run.file_json("eval_segment", "miou.json")
    if data is None:
        missing.append(f"final DeepLab: {why}")
    else:
        for var, res in (data.get("variants") or {}).items():
            pc = res.get("per_class") if isinstance(res, dict) else None
            if isinstance(pc, dict):
                series[f"final, {var}"] = [pc.get(c) for c in names]
            else:
                missing.append(f"final, {var}: no per-class IoU recorded")
    return series, missing


def _curves(run: Run, out: Path) -> list[str]:
    """Training-curve sections (HTML); PNGs written to ``out``."""
    from wsss.report import esc, img, mmseg_scalar_files, mmseg_series, plot_curves, read_jsonl, train_log_series

    parts = []
    for name in TRAINERS:
        title = f"{name}: training scalars"
        if not run.enabled.get(name) or run.results.get(name) is None:
            parts.append(f"<h3>{esc(title)}</h3>" + run.na(title, run.reason(name)))
            continue
        log = run.work / name / "train_log.jsonl"
        series, x_label, src = {}, "iteration", str(log.relative_to(run.work))
        if log.is_file():
            series = train_log_series(read_jsonl(log))
        if not series:  # fall back to the per-epoch means in results.json
            hist = run.results[name].get("history") or []
            series = train_log_series(hist, x_key="epoch", skip=("epoch", "seconds"))
            x_label, src = "epoch (mean over the epoch)", f"{name}/results.json history"
        if not series:
            parts.append(f"<h3>{esc(title)}</h3>" + run.na(title, f"no {log.name} and no history in results.json"))
            continue
        png = f"curves_{name}.png"
        plot_curves(out / png, title, {"": series}, x_label)
        parts.append(f"<h3>{esc(title)}</h3><p class=\"note\">from {esc(src)}</p>{img(png, title)}")

    title = "segment: MMSegmentation training scalars"
    if not run.enabled.get("segment") or run.results.get("segment") is None:
        parts.append(f"<h3>{esc(title)}</h3>" + run.na(title, run.reason("segment")))
        return parts
    files = mmseg_scalar_files(run.work / "segment")
    train, val = mmseg_series(files) if files else ({}, {})
    src = ", ".join(str(f.relative_to(run.work)) for f in files)
    if not train:
        hist = run.results["segment"].get("loss_history") or []
        if hist:
            train = {"loss": (list(range(1, len(hist) + 1)), [float(v) for v in hist])}
            src = "segment/results.json loss_history (the last logged values, in order)"
    if not train and not val:
        parts.append(f"<h3>{esc(title)}</h3>" + run.na(
            title, "no vis_data/scalars.json under segment/mmseg/ and no loss_history in segment/results.json"))
        return parts
    plot_curves(out / "curves_segment.png", title, {"train": train, "val": val})
    parts.append(f"<h3>{esc(title)}</h3><p class=\"note\">from {esc(src)}</p>{img('curves_segment.png', title)}")
    return parts


# ------------------------------------------------------------------------------------------------ examples
def _chunked_scores(ctx: Any, ids: list[str], label_dir: Path, ds: Any) -> tuple[dict[str, float], dict[str, str]]:
    """(per-image mIoU of ``label_dir/<id>.png`` against the masks, {id: why not scored}) -- an image that
    cannot be scored (file missing, unreadable, other size) is counted and named in the report, never dropped
    silently."""
    from pipeline.parallel import map_chunks
    from wsss.datasets import DatasetError, read_label_png
    from wsss.report import image_miou

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
    from wsss.report import esc

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
    from wsss.report import Cell, thumbnail

    if not path.is_file():
        return Cell(text=f"no {what}")
    try:
        return Cell(thumbnail(colorize(read_label_png(path)), height, nearest=True))
    except Exception as e:  # noqa: BLE001  (an unreadable file shows as such in its cell)
        return Cell(text=f"unreadable {what}:\n{type(e).__name__}")


def _image_cells(ds: Any, id_: str, height: int):
    from wsss.maps import colorize
    from wsss.report import Cell, thumbnail

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
    from wsss.report import Cell, thumbnail

    if not path.is_file():
        return Cell(text="no seed file")
    try:
        return Cell(thumbnail(colorize(seed_labels(load_seeds(path), t)), height, nearest=True))
    except Exception as e:  # noqa: BLE001
        return Cell(text=f"unreadable seeds:\n{type(e).__name__}")


def _row_label(id_: str, kind: str, score: float | None, what: str) -> str:
    return f"{id_}\n{kind}" + (f", {what} mIoU {score:.1f}" if score is not None else "")


def _pseudo_source(run: Run) -> str | None:
    """The pseudo-labels whose worst images are shown: those segment trained on, else the first available."""
    want = str(run.cfg.get("segment", {}).get("labels_from", "random_walk"))
    order = [want] + [s for s in ("random_walk", "crf", "bao") if s != want]
    for s in order:
        if s in PSEUDO and run.ok(s) and (run.work / s / "labels").is_dir():
            return s
    return None


def _examples(run: Run, out: Path, rcfg: dict) -> tuple[list[str], dict[str, Any]]:
    """Contact sheets (HTML parts) and what was sampled."""
    from wsss.maps import seed_split
    from wsss.report import Cell, colour_legend, contact_sheet, esc, img
    from wsss.report import fmt as f

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
        t, t_note = float(seeds_res["best_threshold"]), "best, chosen with GT"
    else:
        t, t_note = float(cfg.get("crf", {}).get("bg_threshold", 0.25)), "crf.bg_threshold"
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
    pred_split = pred_res.get("split") if run.ok("eval_segment") else None
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
               else f"the segmentation model was evaluated on split '{pred_split}' (see below)")
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


# ------------------------------------------------------------------------------------------------ page
def build_report(ctx: Any) -> dict[str, Any]:
    """Write ``<out_dir>/index.html`` (+ PNGs, sample.json) for the run in ``ctx.work_dir``; returns its summary."""
    from pipeline.cache import atomic_write_json, atomic_write_text
    from stages.eval_seeds import plot_sweep
    from wsss.report import Page, esc, img, plot_per_class, referenced_images, table
    from wsss.report import fmt as f

    if not ctx.is_main:
        return {}
    rcfg = dict(ctx.stage_cfg)
    out = ctx.out_dir
    out.mkdir(parents=True, exist_ok=True)
    r = Run(ctx)
    title = f"WSSS run report: {ctx.cfg.get('experiment', Path(ctx.work_dir).name)}"
    page = Page(title)
    ds_cfg = dict(ctx.cfg.get("dataset", {}))
    page.add(f"<h1>{esc(title)}</h1>",
             f"<p class=\"meta\">work dir {esc(ctx.work_dir)} &middot; dataset {esc(ds_cfg.get('type', '?'))} at "
             f"{esc(ds_cfg.get('root', '?'))} &middot; generated "
             f"{esc(_dt.datetime.now().isoformat(timespec='seconds'))}</p>")

    inits = [(n, str(res["backbone_init"])) for n, res in r.results.items()
             if isinstance(res, dict) and res.get("backbone_init")]
    if inits:
        items = "".join(f"<li><b>{esc(n)}</b>: {'<b>RANDOM INIT</b> ' if i.startswith('random') else ''}{esc(i)}</li>"
                        for n, i in inits)
        page.add("<h2>Backbone initialisation</h2>", f"<ul>{items}</ul>")
    page.add("<h2>mIoU</h2>",
             table(["result", "mIoU (%)", "split", "note"], _metric_rows(r), numeric=(1,)),
             "<p class=\"note\">All numbers from the stages' results.json (wsss.metrics / mmseg IoUMetric).</p>")
    page.add("<h2>Stages: time and memory</h2>",
             table(["stage", "status", "wall (s)", "peak memory (MB)", "details"], _stage_rows(r), numeric=(2, 3)),
             "<p class=\"note\">Wall time and peak resident memory (process + workers) as the runner recorded "
             "them in each stage's results.json (summary.json for stages without).</p>")

    # examples first (they read the dataset, which gives the class names), rendered further down
    example_parts, info = _examples(r, out, rcfg)
    ds = info.pop("_dataset", None)

    page.add("<h2>Per-class IoU</h2>")
    names = _class_names(r, ds)
    if names is None:
        page.add(r.na("per-class IoU", "no evaluation file and no readable dataset give the class list"))
    else:
        series, missing = per_class_series(r, names)
        if series:
            plot_per_class(out / "per_class_iou.png", names, series)
            page.add(img("per_class_iou.png", "per-class IoU"),
                     table(["class", *series], [[esc(c), *(f(series[s][k]) for s in series)]
                                                for k, c in enumerate(names)], numeric=range(1, len(series) + 1)))
        else:
            page.add(r.na("per-class IoU", "no evaluation stage has per-class results"))
        for m in missing:
            label, _, why = m.partition(": ")
            page.add(f"<p>{esc(label)}: {r.na('per-class IoU, ' + label, why)}</p>")

    page.add("<h2>Seed mIoU vs background threshold</h2>")
    sres = r.results.get("eval_seeds") or {}
    if r.ok("eval_seeds") and sres.get("thresholds") and sres.get("miou_per_threshold"):
        ths = [float(v) for v in sres["thresholds"]]
        mious = [float("nan") if v is None else float(v) for v in sres["miou_per_threshold"]]
        best = ths.index(float(sres["best_threshold"])) if sres.get("best_threshold") in ths else \
            max(range(len(mious)), key=lambda k: -1e9 if mious[k] != mious[k] else mious[k])
        plot_sweep(out / "seed_miou_vs_threshold.png", ths, mious, best, sres.get("bao_miou"),
                   str(sres.get("split", "")))
        page.add(img("seed_miou_vs_threshold.png", "seed mIoU vs threshold"),
                 f"<p class=\"note\">best t={f(ths[best])}: {f(mious[best])} &mdash; "
                 f"{esc(sres.get('best_threshold_note', 'chosen with the ground truth'))}</p>")
    else:
        page.add(r.na("seed threshold curve", r.reason("eval_seeds") if not r.ok("eval_seeds")
                      else "eval_seeds/results.json has no threshold sweep"))

    page.add("<h2>Training curves</h2>", *_curves(r, out))
    page.add("<h2>Examples</h2>", *example_parts)
    page.add("<h2>Not available in this run</h2>")
    page.add("<ul>" + "".join(f"<li>{esc(m)}</li>" for m in dict.fromkeys(r.missing)) + "</ul>" if r.missing
             else "<p>Everything the report shows was available.</p>")

    text = page.html()
    srcs = referenced_images(text)
    absent = [s for s in srcs if not (out / s).is_file()]
    if absent:
        raise RuntimeError(f"report: index.html would reference missing images {absent} in {out}")
    atomic_write_text(out / "index.html", text)
    atomic_write_json(out / "sample.json", info)
    ctx.log.info("report: %s (%d images, %d items not available)", out / "index.html", len(srcs), len(r.missing))
    return {"html": str(out / "index.html"), "images": srcs, "not_available": list(dict.fromkeys(r.missing)),
            **{k: v for k, v in info.items() if k.endswith("ids")}}
