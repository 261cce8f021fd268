"""Pieces of the run report: reading what the stages wrote, the charts (matplotlib Agg), the contact sheet and a
tiny self-contained HTML writer.

Everything here reads files and draws; nothing computes a new mIoU except :func:`image_miou`, which scores one
image with :class:`wsss.metrics.ConfusionMatrix` (the project's one mIoU) to find the worst pseudo-labels.
A value that cannot be read is returned as ``None`` and the caller shows "not available" with the reason: the
report never invents a number.
"""
from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cache import atomic_path

# How a reported number's settings were chosen (kept apart in every table): no ground truth at all; with ground
# truth on the declared calibration split only; with ground truth on the reported split itself (an oracle bound).
GT_FREE = "ground-truth-free"
TUNED = "tuned with ground truth (on calib)"
ORACLE = "oracle: chosen with ground truth on the reported split"

# ---------------------------------------------------------------------------------------------- reading


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


def image_miou(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> float | None:
    """mIoU (percent) of one image, over the classes in its ground truth or prediction; None if no valid pixel."""
    from wsss.metrics import ConfusionMatrix, summarize

    cm = ConfusionMatrix(num_classes)
    cm.update(pred, gt)
    return summarize(cm, [str(i) for i in range(num_classes)])["mIoU"]


# ---------------------------------------------------------------------------------------------- charts


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    _plt().close(fig)


def plot_curves(path: Path, title: str, groups: Mapping[str, Mapping[str, tuple[list[float], list[float]]]],
                x_label: str = "iteration", ncols: int = 3) -> None:
    """One subplot per scalar; ``groups`` = {subplot title prefix: {scalar: (x, y)}} (e.g. train and val)."""
    plt = _plt()
    panels = [(f"{g}: {k}" if g else k, xy) for g, series in groups.items() for k, xy in series.items()]
    if not panels:
        raise ValueError(f"{title}: no scalars to plot")
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.8 * nrows + 0.4), dpi=90, squeeze=False)
    for ax, (name, (xs, ys)) in zip(axes.flat, panels):
        ax.plot(xs, ys, "-" if len(xs) > 1 else "o", linewidth=1.2)
        if len(ys) > 20:  # a running mean makes noisy per-step losses readable
            w = max(2, len(ys) // 20)
            sm = np.convolve(ys, np.ones(w) / w, mode="valid")
            ax.plot(xs[w - 1:], sm, "-", linewidth=1.8, color="C3", label=f"mean of {w}")
            ax.legend(fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(x_label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def plot_per_class(path: Path, class_names: Sequence[str], series: Mapping[str, Sequence[float | None]],
                   title: str = "per-class IoU") -> None:
    """Grouped bars: one group per class, one bar per stage; undefined IoU (None) leaves a gap."""
    plt = _plt()
    if not series:
        raise ValueError("plot_per_class: no series")
    n, m = len(class_names), len(series)
    width = 0.8 / m
    fig, ax = plt.subplots(figsize=(min(30.0, max(7.0, 0.12 * n * m + 2.5)), 4.8), dpi=90)
    x = np.arange(n)
    for k, (label, vals) in enumerate(series.items()):
        if len(vals) != n:
            raise ValueError(f"plot_per_class: series '{label}' has {len(vals)} values for {n} classes")
        ys = np.array([np.nan if v is None else float(v) for v in vals])
        ax.bar(x - 0.4 + width * (k + 0.5), np.nan_to_num(ys), width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(class_names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(m, 4), loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    fig.tight_layout()
    _save(fig, path)


# ---------------------------------------------------------------------------------------------- contact sheet


@dataclass
class Cell:
    """One tile of the contact sheet: an RGB image, or a short text when there is nothing to show."""

    image: np.ndarray | None = None
    text: str = "n/a"


def thumbnail(rgb: np.ndarray, height: int, nearest: bool) -> np.ndarray:
    """Resize to ``height`` (keep aspect); label maps use nearest neighbour so colours stay exact."""
    from PIL import Image

    h, w = rgb.shape[:2]
    if h <= height:
        return rgb
    size = (max(1, round(w * height / h)), height)
    return np.asarray(Image.fromarray(rgb).resize(size, Image.NEAREST if nearest else Image.BILINEAR))


def contact_sheet(path: Path, columns: Sequence[str], rows: Sequence[tuple[str, Sequence[Cell]]],
                  title: str = "") -> None:
    """A grid: one row per image (``(row label, cells)``), one column per source, headers on top."""
    plt = _plt()
    if not rows:
        raise ValueError("contact_sheet: no rows")
    ncols = len(columns)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.1 * ncols + 0.6, 1.8 * len(rows) + 0.6), dpi=80,
                             squeeze=False)
    for r, (label, cells) in enumerate(rows):
        if len(cells) != ncols:
            raise ValueError(f"contact_sheet: row '{label}' has {len(cells)} cells for {ncols} columns")
        for c, cell in enumerate(cells):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if cell.image is not None:
                ax.imshow(cell.image, interpolation="nearest")
            else:
                ax.set_facecolor("#eeeeee")
                ax.text(0.5, 0.5, cell.text, ha="center", va="center", fontsize=7, color="#666666", wrap=True,
                        transform=ax.transAxes)
            if r == 0:
                ax.set_title(columns[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


# ---------------------------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc;padding-bottom:3px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef2f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.na{color:#a33;font-style:italic}.note{color:#555;font-size:12px}
.meta{color:#555;font-size:13px}img{max-width:100%;border:1px solid #ddd;margin:4px 0}
.sw{display:inline-block;width:14px;height:14px;border:1px solid #888;vertical-align:middle;margin-right:4px}
.legend span.item{display:inline-block;margin:2px 10px 2px 0;font-size:12px}
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(v: Any, digits: int = 2) -> str:
    """A number for a table cell ('-' for None/NaN)."""
    if v is None or isinstance(v, bool):
        return "-" if v is None else str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "-" if not math.isfinite(v) else f"{float(v):.{digits}f}"
    return str(v)


def na(reason: str) -> str:
    """The one way the report says something is missing."""
    return f'<span class="na">not available: {esc(reason)}</span>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """An HTML table; cells are HTML already (escape text with :func:`esc`); ``numeric`` columns align right."""
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="num">{c}</td>' if k in numeric else f"<td>{c}</td>"
                                    for k, c in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def img(src: str, alt: str) -> str:
    """An image by relative path (the report folder is self-contained)."""
    if "/" in src or src.startswith("."):
        raise ValueError(f"report images must sit next to index.html, got {src!r}")
    return f'<img src="{esc(src)}" alt="{esc(alt)}">'


def colour_legend(class_names: Sequence[str]) -> str:
    """Class colour swatches (VOC palette) as inline styles: no image needed."""
    from wsss.maps import voc_palette

    pal = voc_palette()
    items = [(i, n) for i, n in enumerate(class_names)] + [(255, "ignore")]
    return '<div class="legend">' + "".join(
        f'<span class="item"><span class="sw" style="background:rgb({pal[i][0]},{pal[i][1]},{pal[i][2]})">'
        f"</span>{esc(n)}</span>" for i, n in items) + "</div>"


@dataclass
class Page:
    """Sections of HTML in order; :meth:`html` wraps them into one document with inline CSS."""

    title: str
    parts: list[str] = field(default_factory=list)

    def add(self, *chunks: str) -> None:
        self.parts.extend(chunks)

    def html(self) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{esc(self.title)}</title><style>{CSS}</style></head>\n<body>\n"
                + "\n".join(self.parts) + "\n</body></html>\n")


def referenced_images(html_text: str) -> list[str]:
    """The ``src`` of every ``<img>`` (for checks: all must be local files next to the page)."""
    import re

    return re.findall(r'<img[^>]*\ssrc="([^"]*)"', html_text)


def relative_ok(src: str) -> bool:
    return not (src.startswith(("http:", "https:", "//", "data:", "file:")) or os.path.isabs(src))


def plot_sweep(path: Path, ths: list[float], mious: list[float], best: int, bao_miou: float | None,
               split: str, calib_mious: list[float] | None = None, kind: str = ORACLE) -> None:
    """mIoU vs background threshold, the chosen point marked, the calibration sweep and BAO beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(ths, mious, "o-", label="seeds, fixed background threshold")
    if calib_mious is not None:
        ax.plot(ths, calib_mious, "x:", color="gray", label="same, calibration images (choose t)")
    ax.plot([ths[best]], [mious[best]], "r*", markersize=14,
            label=f"t={ths[best]:.2f}: {mious[best]:.1f} ({'chosen on calib' if calib_mious else 'oracle'})")
    if bao_miou is not None:
        ax.axhline(bao_miou, color="g", linestyle="--", label=f"BAO, no threshold ({GT_FREE}): {bao_miou:.1f}")
    ax.set_xlabel("background threshold")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(f"seed mIoU vs background threshold ({split})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
