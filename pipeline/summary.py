"""The end-of-run summary: the stage table, the labelled result rows, ``summary.json``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .cache import atomic_write_json, read_json

IN_STAGE_DIR = "products_in_stage_dir"  # results.json key: {what: path relative to the stage's directory}


def with_stage_relative_products(results: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """``results`` plus, for each product inside the stage directory ``out_dir``, its path relative to that
    directory (written to results.json), so that a copied or moved work dir lists its own files, not the ones of
    the directory the stage ran in."""
    products = results.get("products")
    if not isinstance(products, dict):
        return results
    here = Path(os.path.abspath(out_dir))
    absolute = {what: Path(os.path.abspath(path)) for what, path in products.items()}
    rel = {what: str(p.relative_to(here)) for what, p in absolute.items() if p.is_relative_to(here)}
    return {**results, IN_STAGE_DIR: rel} if rel else results


def _brief(results: dict[str, Any], out_dir: Path | None = None) -> dict[str, Any]:
    """What the summary keeps of a stage's results; products inside its directory are given under ``out_dir``
    (where the stage's directory is now)."""
    keep = {k: v for k, v in results.items()
            if k in ("wall_s", "peak_rss_mb", "backbone_init") or ("miou" in k.lower() and isinstance(v, (int, float)))}
    if isinstance(results.get("rows"), list):  # labelled result rows: {name, mIoU, kind}
        keep["rows"] = results["rows"]
    if isinstance(results.get("products"), dict):  # {what: path} a user comes for (labels, model, report)
        rel = results.get(IN_STAGE_DIR) if out_dir is not None else None
        rel = rel if isinstance(rel, dict) else {}
        keep["products"] = {what: str(out_dir / rel[what]) if what in rel else path
                            for what, path in results["products"].items()}
    return keep


def rows_table(stages: list[dict[str, Any]]) -> str:
    """The labelled result rows of the stages, grouped by kind (e.g. ground-truth-free vs tuned with ground
    truth), in first-seen order of the kinds."""
    groups: dict[str, list[str]] = {}
    for s in stages:
        for r in s.get("rows") or []:
            m = r.get("mIoU")
            value = f"{m:6.2f}" if isinstance(m, (int, float)) else "     -"
            groups.setdefault(str(r.get("kind", "")), []).append(f"  {s['stage']:<13} {r.get('name', ''):<58} {value}")
    return "\n".join(f"{kind}:\n" + "\n".join(lines) for kind, lines in groups.items())


def _write_summary(work_dir: Path, summary: list[dict[str, Any]], derived: Any = None) -> None:
    """summary.json (and the printed table); ``derived``: settings a config hook derived (with why), if any."""
    rows = []
    for s in summary:
        m = " ".join(f"{k}={v:.2f}" for k, v in s.items() if "miou" in k.lower() and isinstance(v, (int, float)))
        ran = "ran" if s["ran"] else s["action"]
        wall = f"{s['wall_s']:.1f}" if "wall_s" in s else "-"
        mem = f"{s['peak_rss_mb']:.0f}" if "peak_rss_mb" in s else "-"
        rows.append(f"{s['stage']:<14} {ran:<9} {wall:>9} {mem:>9}  {m}")
    notes = [f"note: {s['stage']} backbone: {s['backbone_init']}" for s in summary
             if str(s.get("backbone_init", "")).startswith("random")]
    table = "\n".join([f"{'stage':<14} {'this run':<9} {'wall (s)':>9} {'peak MB':>9}  metrics", *rows, *notes])
    print(table)
    if derived:
        from .config import plain

        derived = plain(derived)
        lines = [f"  {k} = {v['value']}  ({v['why']})" for k, v in derived.items() if isinstance(v, dict)
                 and "value" in v]
        if lines:
            print("settings derived from the data and the machine ('auto'):\n" + "\n".join(lines))
    old = read_json(work_dir / "summary.json") if (work_dir / "summary.json").is_file() else {}
    stages = {s["stage"]: s for s in old.get("stages", [])} if isinstance(old, dict) else {}
    stages.update({s["stage"]: s for s in summary})
    results = rows_table(list(stages.values()))
    if results:
        print("results (mIoU %), by how their settings were chosen:\n" + results)
    products = [f"  {what:<52} {path}" for s in stages.values() for what, path in (s.get("products") or {}).items()]
    if products:
        print("outputs:\n" + "\n".join(products))
    out = {"stages": list(stages.values()), "table": table, "results_table": results}
    if derived:
        out["auto_settings"] = derived
    atomic_write_json(work_dir / "summary.json", out)
