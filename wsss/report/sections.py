"""Report sections from a run's results: metric tables, derived settings, stage table, per-class series, curves."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from wsss.report.kinds import GT_FREE, TUNED  # result kinds, shared with eval_seeds
from wsss.report.run import TRAINERS, RunRecord

# ------------------------------------------------------------------------------------------------ sections


def _metric_rows(run: RunRecord) -> list[tuple[str, list[str]]]:
    """(kind, row) per result; kind says how the result's settings were chosen (ground-truth-free, tuned with
    ground truth on the calibration split, oracle, fully supervised), so the report keeps the groups apart."""
    from wsss.report.page import esc, fmt

    rows: list[tuple[str, list[str]]] = []

    def add(label: str, stage: str, key: str, kind: str, note: str = "", missing_key_reason: str = "") -> None:
        res = run.results.get(stage)
        where = ""
        if run.ok(stage):
            n_cal = res.get("num_calib_images")
            where = esc(f"{res.get('split', '?')} ({res.get('num_images', '?')} images"
                        + (f"; {n_cal} calibration images excluded" if n_cal else "") + ")")
            val = res.get(key)
            cell = (f"<b>{fmt(val)}</b>" if isinstance(val, (int, float)) and not isinstance(val, bool)
                    else run.na(label, missing_key_reason or f"'{key}' is not in {stage}/results.json"))
        else:
            cell = run.na(label, run.reason(stage))
        rows.append((kind or "unknown", [esc(label), cell, where, esc(note)]))

    seeds = run.results.get("eval_seeds") or {}
    t = seeds.get("best_threshold")
    add("seeds, learned background (BAO, no threshold)", "eval_seeds", "bao_miou", GT_FREE, "threshold-free",
        missing_key_reason=str(seeds.get("bao_note") or "no BAO result"))
    add(f"seeds, fixed background threshold (t={fmt(t)})" if t is not None else "seeds, fixed threshold",
        "eval_seeds", "best_miou", str(seeds.get("best_kind") or "chosen with ground truth"),
        str(seeds.get("best_threshold_note") or "threshold chosen WITH the ground truth"))
    pseudo = run.results.get("eval_pseudo") or {}
    add("pseudo-labels, CRF", "eval_pseudo", "crf_miou", str(pseudo.get("crf_kind") or "unknown"))
    add("pseudo-labels, affinity + random walk", "eval_pseudo", "random_walk_miou",
        str(pseudo.get("random_walk_kind") or "unknown"))
    seg = run.results.get("eval_segment") or {}
    ecfg = run.cfg.get("eval_segment", {})
    for key, label, flag in (("mIoU_single_scale", "final DeepLab, single scale", None),
                             ("mIoU_ms_flip", "final DeepLab, multi-scale + flip", "ms_flip"),
                             ("mIoU_crf", "final DeepLab, multi-scale + flip + CRF", "crf")):
        off = flag is not None and not ecfg.get(flag, True)
        add(label, "eval_segment", key, str(seg.get("labels_kind") or "unknown"), "trained on labels that are "
            + str(seg.get("labels_kind") or "of unknown provenance"), f"eval_segment.{flag} = False" if off else
            f"'{key}' is not in eval_segment/results.json" if seg else "")
    return rows


def grouped_metric_tables(run: RunRecord) -> list[str]:
    """One mIoU table per kind, ground-truth-free first, tuned with ground truth next, the rest after."""
    from wsss.report.page import esc, table

    groups: dict[str, list[list[str]]] = {}
    for kind, row in _metric_rows(run):
        groups.setdefault(kind, []).append(row)
    order = sorted(groups, key=lambda k: (k != GT_FREE, k != TUNED, k))
    parts = []
    for kind in order:
        parts += [f"<h3>{esc(kind[:1].upper() + kind[1:])}</h3>",
                  table(["result", "mIoU (%)", "split", "note"], groups[kind], numeric=(1,))]
    return parts


def auto_settings_rows(run: RunRecord) -> list[list[str]]:
    """The settings derived from the data and the machine ('auto'), from summary.json, with the reason."""
    from wsss.report.page import esc
    from wsss.report.reading import read_json_or_none

    summary, _ = read_json_or_none(run.work / "summary.json")
    auto = (summary or {}).get("auto_settings") if isinstance(summary, dict) else None
    auto = auto or run.cfg.get("auto_settings", None) or {}
    return [[esc(k), esc(str(v.get("value"))), esc(str(v.get("why", "")))] for k, v in dict(auto).items()
            if isinstance(v, dict) and "value" in v]


_SKIP_DETAIL = ("wall_s", "peak_rss_mb", "history", "final", "skipped", "reason", "labels", "background_maps",
                "plot", "best_threshold_note", "bao_note", "label_dir", "model_config", "loss_history")


def _details(res: dict) -> str:
    from wsss.report.page import esc, fmt

    parts = []
    for k, v in res.items():
        if k in _SKIP_DETAIL or isinstance(v, (dict, list)) or v is None:
            continue
        if isinstance(v, str) and (len(v) > 40 or "/" in v):
            continue
        parts.append(f"{k}={fmt(v, 3)}")
    return esc(", ".join(parts[:10]))


def stage_rows(run: RunRecord) -> list[list[str]]:
    from wsss.report.page import esc, fmt

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
            from wsss.report.reading import read_json_or_none

            m, _ = read_json_or_none(manifest)
            if isinstance(m, dict) and m.get("state") not in (None, "done"):
                status = f"{m.get('state')} (results.json is from an earlier run)"
        wall = res.get("wall_s", prev.get("wall_s"))
        mem = res.get("peak_rss_mb", prev.get("peak_rss_mb"))
        rows.append([esc(name), esc(status), fmt(wall, 1), fmt(mem, 0), _details(res)])
    return rows


def class_names(run: RunRecord, ds: Any) -> list[str] | None:
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


def per_class_series(run: RunRecord, names: list[str]) -> tuple[dict[str, list[float | None]], list[str]]:
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
        how = "on calib" if data.get("calib_threshold") is not None else "oracle"
        from_summary(f"seeds, t={data.get('best_threshold')} ({how})", data.get("best"))
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


def training_curves(run: RunRecord, out: Path) -> list[str]:
    """Training-curve sections (HTML); PNGs written to ``out``."""
    from wsss.report.charts import plot_curves
    from wsss.report.page import esc, img
    from wsss.report.reading import mmseg_scalar_files, mmseg_series, read_jsonl, train_log_series

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
