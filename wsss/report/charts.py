"""The report's pictures (matplotlib Agg, written atomically): training curves, per-class bars, the threshold
sweep, and the contact sheet of example images."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cache import atomic_path
from wsss.report.kinds import GT_FREE, ORACLE


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



def plot_sweep(path: Path, ths: list[float], mious: list[float], best: int, bao_miou: float | None,
               split: str, calib_mious: list[float] | None = None, kind: str = ORACLE) -> None:
    """mIoU vs background threshold, the chosen point marked, the calibration sweep and BAO beside it."""
    fig, ax = _plt().subplots(figsize=(6, 4), dpi=100)
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
    _save(fig, path)



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
