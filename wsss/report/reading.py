"""Reading what the stages wrote, for the report: JSON / JSON-lines files, training logs, mmseg's scalars.

A value that cannot be read is returned as ``None`` with the reason, and the caller shows "not available": the
report never invents a number.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def read_json_or_none(path: Path) -> tuple[Any, str | None]:
    """(data, None) or (None, reason): a missing or broken file is a reason, not an exception."""
    if not path.is_file():
        return None, f"{path} does not exist"
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f), None
    except (OSError, ValueError) as e:
        return None, f"{path} cannot be read ({e})"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines log; blank and truncated lines (a killed writer) are skipped."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for ln in f:
            ln = ln.strip()
            if not ln:
                continue
            try:
                row = json.loads(ln)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def train_log_series(rows: Sequence[Mapping[str, Any]], x_key: str = "iter",
                     skip: Sequence[str] = ("iter", "epoch", "step")) -> dict[str, tuple[list[float], list[float]]]:
    """{scalar: (x, y)} from log rows; rows of a resumed run that repeat an x keep the last value."""
    by_x: dict[float, dict[str, float]] = {}
    for k, row in enumerate(rows):
        x = row.get(x_key, row.get("step", k))
        if not isinstance(x, (int, float)):
            continue
        vals = by_x.setdefault(float(x), {})
        for key, v in row.items():
            if key in skip or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            vals[key] = float(v)
    series: dict[str, tuple[list[float], list[float]]] = {}
    for x in sorted(by_x):
        for key, v in by_x[x].items():
            xs, ys = series.setdefault(key, ([], []))
            xs.append(x)
            ys.append(v)
    return series


def mmseg_scalar_files(seg_dir: Path) -> list[Path]:
    """mmengine's ``<segment>/mmseg/<timestamp>/vis_data/scalars.json`` files, oldest run first."""
    return sorted((seg_dir / "mmseg").glob("*/vis_data/scalars.json"))


def mmseg_series(files: Sequence[Path]) -> tuple[dict[str, tuple[list[float], list[float]]],
                                                 dict[str, tuple[list[float], list[float]]]]:
    """(training scalars, validation scalars) from mmengine LocalVisBackend logs; later runs (resumes) win."""
    train_rows, val_rows = [], []
    for f in files:
        for row in read_jsonl(f):
            (val_rows if "mIoU" in row or "aAcc" in row else train_rows).append(row)
    keep = lambda s: {k: v for k, v in s.items() if "loss" in k or "acc" in k or k == "lr"}  # noqa: E731
    val = train_log_series(val_rows, x_key="step")
    return keep(train_log_series(train_rows, x_key="iter")), {k: v for k, v in val.items()
                                                               if k in ("mIoU", "aAcc", "mAcc")}
