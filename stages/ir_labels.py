"""Affinity labels (IRN's cam_to_ir_label): confident foreground / background from the seeds, the rest ignored.

Confident foreground: the label CRF on argmax [``conf_fg_thres``, maps]; confident background: the label CRF on
argmax [``conf_bg_thres``, maps] says background (all maps low). Both passes run on one set of pairwise kernels.
Pixels that are foreground in the first map keep their class; pixels that are background in both are 0;
everything else is 255 (ignore). Stored at full resolution (``labels/<id>.png``, as IRN); the affinity stage
samples them down to its grid.
"""
from __future__ import annotations

from typing import Any

import numpy as np

NAME = "ir_labels"
INPUTS = ("seeds",)
CONFIG_KEYS = ("dataset", "ir_labels", "seeds.split")


def confident_labels(image: np.ndarray, maps: np.ndarray, keys: np.ndarray, fg_thres: float, bg_thres: float,
                     params: dict[str, Any]) -> np.ndarray:
    """IRN's two label-CRF passes combined: class where confident fg, 0 where confident bg, 255 elsewhere.

    Both passes run on one set of pairwise kernels (same image, parameters and label count; only the unary
    differs), with the same results as two separate CRFs.
    """
    from wsss.crf import seed_label_crfs

    fg, bg = seed_label_crfs(image, maps, keys, (fg_thres, bg_thres), params)
    out = fg.copy()
    out[fg == 0] = 255
    out[(fg == 0) & (bg == 0)] = 0
    return out


def run(ctx) -> dict:
    from pipeline.parallel import exists, for_each_item
    from wsss.crf import crf_params
    from wsss.maps import load_image_seeds, open_seed_folder, save_label_png

    scfg = ctx.stage_cfg
    fg_thres, bg_thres = float(scfg.get("conf_fg_thres", 0.30)), float(scfg.get("conf_bg_thres", 0.05))
    if not 0 <= bg_thres < fg_thres <= 1:
        raise ValueError(f"ir_labels: need 0 <= conf_bg_thres < conf_fg_thres <= 1, got {bg_thres}, {fg_thres}")
    params = {**crf_params(scfg, (50, 5, 10)), "gt_prob": float(scfg.get("gt_prob", 0.7))}
    ds, ids, seed_dir = open_seed_folder(ctx, NAME)
    out = ctx.out_dir / "labels"
    path_for = lambda i: out / f"{i}.png"  # noqa: E731

    def work(id_: str) -> tuple[int, int, int]:
        image, seeds = load_image_seeds(ds, id_, seed_dir)
        lab = confident_labels(image, seeds.high, seeds.keys, fg_thres, bg_thres, params)
        save_label_png(path_for(id_), lab)
        return int((lab == 0).sum()), int(((lab > 0) & (lab < 255)).sum()), int(lab.size)

    ran = for_each_item(ids, work, exists(path_for), ctx.workers, desc="ir_labels", log=ctx.log)
    counts = np.array(list(ran.values()), np.int64).reshape(-1, 3).sum(0)
    frac = {} if not counts[2] else {"bg_fraction": counts[0] / counts[2], "fg_fraction": counts[1] / counts[2],
                                     "ignore_fraction": 1 - (counts[0] + counts[1]) / counts[2]}
    return {"split": ds.split, "num_images": len(ids), "computed": len(ran), "labels": str(out),
            "confident_fractions_of_computed": frac}


def outputs(ctx) -> dict:
    from wsss.maps import label_outputs

    return label_outputs(ctx, NAME)


def progress(ctx) -> tuple[int, int]:
    from wsss.maps import label_progress

    return label_progress(ctx, NAME)
