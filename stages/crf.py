"""Dense CRF on the seeds -> pseudo-labels (the CRF-only refinement path).

Background score (``crf.background``, wsss.background):
- ``'learned'`` (default, ground-truth free): the BAO stage's learned background map ``bao/bg/<id>.npz``;
- ``'threshold'``: the constant ``bg_threshold`` (a number, or ``'calib'``: chosen on the calibration split).

Two unary modes (``crf.mode``):
- ``'labels'`` (IRN's ``crf_inference_label``): seed label map = argmax over [background, class maps],
  refined by the label-unary CRF (trust ``gt_prob`` in each seed label);
- ``'probs'`` (PSA family): background score as above, or ``(1 - max_k s_k) ** bg_power`` (``bg='power'``);
  scores normalised to sum 1 per pixel, softmax-unary CRF, argmax.
Writes ``labels/<id>.png`` (VOC palette; 0 = background, key + 1 = class) per image; resumable.
"""
from __future__ import annotations

from typing import Any

NAME = "crf"
INPUTS = ("seeds", "bao")  # the default (learned background); the real inputs are inputs(cfg)
AT_PHOTO_SIZE = True  # a dense CRF on each photo at its own size: its cost grows with the pixels
CONFIG_KEYS = ("dataset", "crf", "seeds.split", "learned_background")


def inputs(cfg: Any) -> tuple[str, ...]:
    """The seeds, plus the BAO background ('learned') or eval_seeds (a threshold taken from calib)."""
    from wsss.background import background_inputs

    return ("seeds", *background_inputs(cfg, NAME, ("bg_threshold",)))


def run(ctx) -> dict:
    from pipeline.parallel import exists, for_each_item
    from wsss.background import background_mode, background_scale, load_background, provenance_label, threshold_value
    from wsss.crf import crf_params, seed_label_crf, seed_prob_crf
    from wsss.maps import load_image_seeds, open_seed_folder, save_label_png

    scfg = ctx.stage_cfg
    mode = scfg.get("mode", "labels")
    if mode not in ("labels", "probs"):
        raise ValueError(f"crf.mode must be 'labels' or 'probs', got {mode!r}")
    background = background_mode(ctx.cfg, NAME)
    scale = background_scale(ctx.cfg)
    if background == "learned":
        threshold, provenance = 0.0, "learned"
    else:
        threshold, provenance = threshold_value(scfg.get("bg_threshold"), ctx.work_dir, "crf.bg_threshold", 0.25)
    params = crf_params(scfg, (50, 5, 10) if mode == "labels" else (80, 13, 10))
    if mode == "labels":
        params["gt_prob"] = float(scfg.get("gt_prob", 0.7))
    ds, ids, seed_dir = open_seed_folder(ctx, NAME)
    out = ctx.out_dir / "labels"
    path_for = lambda i: out / f"{i}.png"  # noqa: E731
    bao_dir = ctx.input_dir("bao")
    bg_rule = "learned" if background == "learned" else scfg.get("bg", "threshold")
    ctx.log.info("crf: %s unary, background %s", mode, f"learned (BAO maps x {scale})" if background == "learned"
                 else f"threshold {threshold:.3f} ({provenance})")

    def work(id_: str) -> None:
        image, seeds = load_image_seeds(ds, id_, seed_dir)
        bg = load_background(bao_dir, id_, seeds.size, scale) if background == "learned" else threshold
        if mode == "labels":
            lab = seed_label_crf(image, seeds.high, seeds.keys, bg, params)
        else:
            lab = seed_prob_crf(image, seeds.high, seeds.keys, bg_rule, bg, float(scfg.get("bg_power", 8.0)),
                                params)
        save_label_png(path_for(id_), lab)

    ran = for_each_item(ids, work, exists(path_for), ctx.workers, desc="crf", log=ctx.log)
    return {"split": ds.split, "mode": mode, "background": background,
            "bg_threshold": None if background == "learned" else threshold,
            "background_scale": scale if background == "learned" else None, "provenance": provenance,
            "provenance_label": provenance_label(provenance), "num_images": len(ids), "computed": len(ran),
            "labels": str(out), "products": {f"pseudo-labels, CRF ({ds.split})": str(out)}}


def outputs(ctx) -> dict:
    from wsss.maps import label_outputs

    return label_outputs(ctx, NAME)


def progress(ctx) -> tuple[int, int]:
    from wsss.maps import label_progress

    return label_progress(ctx, NAME)
