"""Affinity labels (IRN's cam_to_ir_label): confident foreground / background from the seeds, the rest ignored.

Confident foreground: the label CRF on argmax [fg background, maps]; confident background: the label CRF on
argmax [bg background, maps] says background. Pixels that are foreground in the first map keep their class;
pixels that are background in both are 0; everything else is 255 (ignore). Both passes run on one set
of pairwise kernels. Stored at full resolution
(``labels/<id>.png``, as IRN); the affinity stage samples them down to its grid.

Where the two background scores come from (``ir_labels.background``, wsss.background):
- ``'learned'`` (default, ground-truth free): the BAO learned background map ``b`` scaled,
  ``conf_fg_scale * b`` for the foreground pass (a class must beat the background by that factor) and
  ``conf_bg_scale * b`` for the background pass (every class below that share of it). The defaults 1.25 / 0.5
  are the published ratios of the confidence thresholds to the label threshold (IRN 0.30 / 0.05 around 0.25:
  1.2 / 0.2; BAS 0.30 / 0.17 around 0.22: 1.36 / 0.77), not chosen with any ground truth of ours;
- ``'threshold'`` (IRN): constants ``conf_fg_thres`` / ``conf_bg_thres`` (numbers, or ``'calib'``: the
  calibration split's seed threshold times ``conf_fg_scale`` / ``conf_bg_scale``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

NAME = "ir_labels"
INPUTS = ("seeds", "bao")  # the default (learned background); the real inputs are inputs(cfg)
AT_PHOTO_SIZE = True  # two dense CRFs on each photo at its own size: the cost grows with the pixels
CONFIG_KEYS = ("dataset", "ir_labels", "seeds.split", "learned_background")


def inputs(cfg: Any) -> tuple[str, ...]:
    """The seeds, plus the BAO background ('learned') or eval_seeds (thresholds taken from calib)."""
    from wsss.background import background_inputs

    return ("seeds", *background_inputs(cfg, NAME, ("conf_fg_thres", "conf_bg_thres")))


def confident_labels(image: np.ndarray, maps: np.ndarray, keys: np.ndarray, fg_thres: float | np.ndarray,
                     bg_thres: float | np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """IRN's two label-CRF passes combined: class where confident fg, 0 where confident bg, 255 elsewhere.
    The background scores of the two passes are constants (thresholds) or HxW maps (scaled learned background).
    Both passes run on one set of pairwise kernels (same image, parameters and label count; only the unary
    differs), with the same results as two separate CRFs."""
    from wsss.crf import seed_label_crfs

    fg, bg = seed_label_crfs(image, maps, keys, (fg_thres, bg_thres), params)
    out = fg.copy()
    out[fg == 0] = 255
    out[(fg == 0) & (bg == 0)] = 0
    return out


def confidence_rule(ctx) -> tuple[str, float, float, str]:
    """(background mode, fg value, bg value, provenance): scales of the learned background, or thresholds."""
    from wsss.background import background_mode, threshold_value, uses_calib

    scfg = ctx.stage_cfg
    background = background_mode(ctx.cfg, NAME)
    fg_scale, bg_scale = float(scfg.get("conf_fg_scale", 1.25)), float(scfg.get("conf_bg_scale", 0.5))
    if background == "learned":
        if not 0 <= bg_scale < fg_scale:
            raise ValueError(f"ir_labels: need 0 <= conf_bg_scale < conf_fg_scale, got {bg_scale}, {fg_scale}")
        return background, fg_scale, bg_scale, "learned"
    values, provenance = [], "config"
    for key, scale, default in (("conf_fg_thres", fg_scale, 0.30), ("conf_bg_thres", bg_scale, 0.05)):
        raw = scfg.get(key)
        if uses_calib(raw):
            t, provenance = threshold_value(raw, ctx.work_dir, f"ir_labels.{key}", default)
            values.append(min(1.0, t * scale))
        else:
            values.append(threshold_value(raw, ctx.work_dir, f"ir_labels.{key}", default)[0])
    fg_thres, bg_thres = values
    if not 0 <= bg_thres < fg_thres <= 1:
        raise ValueError(f"ir_labels: need 0 <= conf_bg_thres < conf_fg_thres <= 1, got {bg_thres}, {fg_thres}")
    return background, fg_thres, bg_thres, provenance


def run(ctx) -> dict:
    from pipeline.parallel import exists, for_each_item
    from wsss.background import background_scale, load_background, provenance_label
    from wsss.crf import crf_params
    from wsss.maps import load_image_seeds, open_seed_folder, save_label_png

    scfg = ctx.stage_cfg
    background, fg_thres, bg_thres, provenance = confidence_rule(ctx)
    scale = background_scale(ctx.cfg)
    params = {**crf_params(scfg, (50, 5, 10)), "gt_prob": float(scfg.get("gt_prob", 0.7))}
    ds, ids, seed_dir = open_seed_folder(ctx, NAME)
    out = ctx.out_dir / "labels"
    path_for = lambda i: out / f"{i}.png"  # noqa: E731
    bao_dir = ctx.input_dir("bao")
    ctx.log.info("ir_labels: confident regions from the %s", f"learned background x {scale} x ({fg_thres}, {bg_thres})"
                 if background == "learned" else f"thresholds ({fg_thres:.3f}, {bg_thres:.3f}) ({provenance})")

    def work(id_: str) -> tuple[int, int, int]:
        image, seeds = load_image_seeds(ds, id_, seed_dir)
        fg_b, bg_b = fg_thres, bg_thres
        if background == "learned":
            bg = load_background(bao_dir, id_, seeds.size, scale)
            fg_b, bg_b = fg_thres * bg, bg_thres * bg
        lab = confident_labels(image, seeds.high, seeds.keys, fg_b, bg_b, params)
        save_label_png(path_for(id_), lab)
        return int((lab == 0).sum()), int(((lab > 0) & (lab < 255)).sum()), int(lab.size)

    ran = for_each_item(ids, work, exists(path_for), ctx.workers, desc="ir_labels", log=ctx.log)
    counts = np.array(list(ran.values()), np.int64).reshape(-1, 3).sum(0)
    frac = {} if not counts[2] else {"bg_fraction": counts[0] / counts[2], "fg_fraction": counts[1] / counts[2],
                                     "ignore_fraction": 1 - (counts[0] + counts[1]) / counts[2]}
    return {"split": ds.split, "background": background,
            "conf_fg": fg_thres, "conf_bg": bg_thres, "background_scale": scale if background == "learned" else None,
            "conf_rule": "x learned background" if background == "learned" else "threshold",
            "provenance": provenance, "provenance_label": provenance_label(provenance),
            "num_images": len(ids), "computed": len(ran), "labels": str(out), "confident_fractions_of_computed": frac}


def outputs(ctx) -> dict:
    from wsss.maps import label_outputs

    return label_outputs(ctx, NAME)


def progress(ctx) -> tuple[int, int]:
    from wsss.maps import label_progress

    return label_progress(ctx, NAME)
