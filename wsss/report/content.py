"""The run report's content: reads what the stages of a work directory wrote and lays out the HTML page.

Used by ``stages/report.py``; the HTML writer is ``wsss.report.page``, the pictures ``wsss.report.charts``, the
run's data ``wsss.report.run``, the sections ``wsss.report.sections`` and ``wsss.report.examples``. See the stage's
docstring for what the page shows.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from wsss.report.examples import example_rows
from wsss.report.run import RunRecord
from wsss.report.sections import (
    auto_settings_rows,
    class_names,
    grouped_metric_tables,
    per_class_series,
    stage_rows,
    training_curves,
)


# ------------------------------------------------------------------------------------------------ page
def build_report(ctx: Any, stages: dict[str, bool | str]) -> dict[str, Any]:
    """Write ``<out_dir>/index.html`` (+ PNGs, sample.json) for the run in ``ctx.work_dir``; returns its summary."""
    from pipeline.cache import atomic_write_json, atomic_write_text
    from wsss.report.charts import plot_per_class, plot_sweep
    from wsss.report.page import Page, esc, img, referenced_images, table
    from wsss.report.page import fmt as f

    if not ctx.is_main:
        return {}
    rcfg = dict(ctx.stage_cfg)
    out = ctx.out_dir
    out.mkdir(parents=True, exist_ok=True)
    r = RunRecord(ctx, stages)
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
    page.add("<h2>mIoU</h2>", *grouped_metric_tables(r),
             "<p class=\"note\">All numbers from the stages' results.json (wsss.metrics / mmseg IoUMetric), "
             "grouped by how their settings were chosen: ground truth chooses a setting only on the calibration "
             "split (section <code>calib</code>), whose images are left out of every train-split number.</p>")
    auto_rows = auto_settings_rows(r)
    if auto_rows:
        page.add("<h2>Settings derived from the data and the machine</h2>",
                 table(["config key", "value", "why"], auto_rows),
                 "<p class=\"note\">Config values given as 'auto' (wsss/auto_settings.py).</p>")
    page.add("<h2>Stages: time and memory</h2>",
             table(["stage", "status", "wall (s)", "peak memory (MB)", "details"], stage_rows(r), numeric=(2, 3)),
             "<p class=\"note\">Wall time and peak resident memory (process + workers) as the runner recorded "
             "them in each stage's results.json (summary.json for stages without).</p>")

    # examples first (they read the dataset, which gives the class names), rendered further down
    example_parts, info = example_rows(r, out, rcfg)
    ds = info.pop("_dataset", None)

    page.add("<h2>Per-class IoU</h2>")
    names = class_names(r, ds)
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
        cal = sres.get("calib_miou_per_threshold")
        cal = [float("nan") if v is None else float(v) for v in cal] if isinstance(cal, list) else None
        plot_sweep(out / "seed_miou_vs_threshold.png", ths, mious, best, sres.get("bao_miou"),
                   str(sres.get("split", "")), cal)
        page.add(img("seed_miou_vs_threshold.png", "seed mIoU vs threshold"),
                 f"<p class=\"note\">t={f(ths[best])}: {f(mious[best])} &mdash; "
                 f"{esc(sres.get('best_threshold_note', 'chosen with the ground truth'))}</p>")
    else:
        page.add(r.na("seed threshold curve", r.reason("eval_seeds") if not r.ok("eval_seeds")
                      else "eval_seeds/results.json has no threshold sweep"))

    page.add("<h2>Training curves</h2>", *training_curves(r, out))
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
