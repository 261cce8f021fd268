"""Seeds propagated by the learned affinities -> pseudo-labels (IRN's make_sem_seg_labels).

Per image: affinities within ``radius`` (5) on the affinity net's grid (image + flip), transition matrix from
``aff ** beta`` (beta 10) made symmetric and row-normalised, seed maps walked ``2 ** exp_times`` (256) steps
as a *sparse* radius-bounded matrix (wsss/random_walk.py: never a dense (hw)x(hw) matrix), upsampled, argmax ->
``labels/<id>.png``. Resumable. ``random_walk.max_image_side``: an image with a longer side walks at that long
side (affinities, grid and seeds on the scaled-down grid; the scores resized to full size before the argmax);
None = the native size (IRN).

Background (``random_walk.background``, wsss.background):
- ``'learned'`` (default, ground-truth free): the BAO learned background map, pooled to the walk grid, walks
  with the class maps as their first channel; argmax after the walk, no threshold;
- ``'seeds'`` (ground-truth free): the same walk with ``1 - max_c`` of the seed maps as that channel;
- ``'threshold'``: ``bg_mode`` 'threshold' (IRN: constant ``sem_seg_bg_thres`` after the walk, a number or
  ``'calib'``) or 'power' (PSA: ``(1 - max) ** bg_power`` walked).
``random_walk.class_norm``: the walked class maps divided by their global max ('global', IRN) or each by its own
max ('per_class') before the argmax with the background (not used by 'power'). None (default): 'per_class' with
the learned background (a weakly walked class then keeps its pixels: +2.0 / +5.3 final DeepLab mIoU on two realcut
datasets, bench/README.md), 'global' with IRN's threshold (which was set for it).
"""
from __future__ import annotations

import os
from typing import Any

NAME = "random_walk"
INPUTS = ("seeds", "affinity", "bao")  # the default (learned background); the real inputs are inputs(cfg)
AT_PHOTO_SIZE = True  # walks each photo's stride-4 grid (unless max_image_side bounds it)
CONFIG_KEYS = ("dataset", "classify", "random_walk", "seeds.split", "learned_background")


def inputs(cfg: Any) -> tuple[str, ...]:
    """Seeds and affinity net, plus the BAO background ('learned') or eval_seeds (a threshold from calib)."""
    from wsss.background import background_inputs

    return ("seeds", "affinity", *background_inputs(cfg, NAME, ("sem_seg_bg_thres",)))

_MODEL: dict[int, Any] = {}  # pid -> model: loaded lazily once per worker process (fork-safe)


def walk_scores(model, image, seeds, scfg: dict, device, background: Any = None) -> tuple[Any, tuple[int, int]]:
    """The walked scores (C, h, w) on the affinity grid of one image, and the (H, W) of the image the walk ran on
    (smaller than the seeds' size when ``max_image_side`` bounds it): affinities, seed scores, sparse walk.
    ``background``: the learned HxW background map (bg_mode 'learned'; walked as the first channel)."""
    import numpy as np
    import torch

    from wsss.affinity import pair_offsets
    from wsss.random_walk import random_walk, seed_scores
    from wsss.transforms import resize_long, to_tensor

    radius = int(scfg.get("radius", 5))
    bg_mode = "learned" if background is not None else scfg.get("bg_mode", "threshold")
    stride = model.grid_stride
    max_side = scfg.get("max_image_side")
    if max_side is not None and max(image.shape[:2]) > int(max_side):  # walk at the affinity net's scale
        image = resize_long(image, int(max_side))
    aff = model.infer(to_tensor(image).to(device), radius, flip=bool(scfg.get("flip", True)))[0]
    grid = tuple(aff.shape[-2:])
    source = scfg.get("seed_source", "stride4")
    if source not in ("stride4", "high"):
        raise ValueError(f"random_walk.seed_source must be 'stride4' or 'high', got {source!r}")
    high = source == "high"
    maps = seed_scores(seeds.high if high else seeds.stride4, grid, stride if high else None, bg_mode,
                       float(scfg.get("bg_power", 1.0)), float(scfg.get("seed_power", 1.0)), background, stride)
    walked = random_walk(torch.from_numpy(maps).to(device), aff, pair_offsets(radius), float(scfg.get("beta", 10)),
                         int(scfg.get("exp_times", 8)))
    return walked.cpu().numpy().astype(np.float32), image.shape[:2]


def class_norm(scfg: dict, background: str) -> str:
    """``random_walk.class_norm`` resolved: None -> 'global' with a threshold (IRN), else 'per_class'."""
    from wsss.random_walk import CLASS_NORMS

    norm = scfg.get("class_norm")
    if norm is None:
        return "global" if background == "threshold" else "per_class"
    if norm not in CLASS_NORMS:
        raise ValueError(f"random_walk.class_norm must be None or one of {CLASS_NORMS}, got {norm!r}")
    return norm


def walk_image(model, image, seeds, scfg: dict, device, background: Any = None,
               bg_threshold: float | None = None) -> Any:
    """The label map of one image: :func:`walk_scores`, background, argmax.
    ``background``: the learned HxW background map (bg_mode 'learned'); ``bg_threshold``: the resolved
    threshold (default ``scfg.sem_seg_bg_thres``)."""
    from wsss.crf import label_map_crf
    from wsss.random_walk import scores_to_labels

    bg_mode = "learned" if background is not None else scfg.get("bg_mode", "threshold")
    walked, walked_size = walk_scores(model, image, seeds, scfg, device, background)
    ignore = float(scfg.get("ignore_threshold", 0.3)) if scfg.get("keep_low_confidence_as_ignore", False) else None
    if bg_threshold is None:  # only the 'threshold' mode reads it (a resolved number; 'calib' is resolved in run)
        bg_threshold = float(scfg.get("sem_seg_bg_thres", 0.25)) if bg_mode == "threshold" else 0.0
    labels = scores_to_labels(walked, seeds.keys, walked_size, model.grid_stride, bg_mode, bg_threshold, ignore,
                              out_size=seeds.size, class_norm=class_norm(scfg, bg_mode))
    crf = label_crf(scfg)
    return labels if crf is None else label_map_crf(image, labels, seeds.keys, crf)


LABEL_CRF_KEYS = ("gt_prob", "gaussian", "bilateral", "iters")


def label_crf(scfg: dict) -> dict | None:
    """``random_walk.label_crf`` checked: None when absent, None or ``enabled=False`` (no CRF, IRN), else the label
    CRF's settings (``gt_prob``, ``gaussian``, ``bilateral``, ``iters``: each one given)."""
    crf = scfg.get("label_crf")
    if crf is None:
        return None
    if not isinstance(crf, dict) or not set(crf) <= {"enabled", *LABEL_CRF_KEYS}:
        raise ValueError(f"random_walk.label_crf must be None or a dict of 'enabled' and {LABEL_CRF_KEYS}, "
                         f"got {crf!r}")
    if not crf.get("enabled", True):
        return None
    if set(crf) - {"enabled"} != set(LABEL_CRF_KEYS):
        raise ValueError(f"random_walk.label_crf needs each of {LABEL_CRF_KEYS}, got {crf!r}")
    gt_prob = crf["gt_prob"]
    if isinstance(gt_prob, bool) or not isinstance(gt_prob, (int, float)) or not 0 < gt_prob < 1:
        raise ValueError(f"random_walk.label_crf.gt_prob must be a number in (0, 1), got {gt_prob!r}")
    if len(tuple(crf["gaussian"])) != 2 or len(tuple(crf["bilateral"])) != 3:
        raise ValueError("random_walk.label_crf: gaussian is (sxy, compat) and bilateral (sxy, srgb, compat), got "
                         f"{crf['gaussian']!r} and {crf['bilateral']!r}")
    return dict(gt_prob=float(gt_prob), gaussian=tuple(crf["gaussian"]), bilateral=tuple(crf["bilateral"]),
                iters=int(crf["iters"]))


def run(ctx) -> dict:
    import torch

    from pipeline.parallel import exists, for_each_item
    from wsss.background import background_mode, background_scale, load_background, provenance_label, threshold_value
    from wsss.maps import load_image_seeds, open_seed_folder, save_label_png, seeds_background
    from wsss.models.affinity_net import load_affinity_net

    scfg = dict(ctx.stage_cfg)
    bound = scfg.get("max_image_side")
    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int) or bound < 32):
        raise ValueError(f"random_walk.max_image_side must be None or a number of pixels >= 32, got {bound!r}")
    background = background_mode(ctx.cfg, NAME)
    scale = background_scale(ctx.cfg)
    norm = class_norm(scfg, background)
    crf = label_crf(scfg)
    if crf is not None:
        ctx.log.info("the walked labels go through a label CRF (random_walk.label_crf): %s", crf)
    if scfg.get("bg_mode", "threshold") not in ("threshold", "power"):
        raise ValueError(f"random_walk.bg_mode must be 'threshold' or 'power', got {scfg.get('bg_mode')!r}")
    threshold, provenance = None, "seeds" if background == "seeds" else "learned"
    if background == "threshold":
        if scfg.get("bg_mode", "threshold") == "threshold":
            threshold, provenance = threshold_value(scfg.get("sem_seg_bg_thres"), ctx.work_dir,
                                                    "random_walk.sem_seg_bg_thres", 0.25)
        else:
            provenance = "config"
    bao_dir = ctx.input_dir("bao") if background == "learned" else None
    ds, ids, seed_dir = open_seed_folder(ctx, NAME)
    model_path = ctx.input_dir("affinity") / "model.pth"
    device = ctx.device
    workers = 1 if device.type == "cuda" else ctx.workers  # one process drives the GPU
    out = ctx.out_dir / "labels"
    path_for = lambda i: out / f"{i}.png"  # noqa: E731
    classify_cfg, num_fg = dict(ctx.cfg.get("classify", {})), ds.num_fg
    load_affinity_net(model_path, classify_cfg, num_fg)  # fail early (missing/mismatched) before the pool starts

    def work(id_: str) -> None:
        model = _MODEL.get(os.getpid())
        if model is None:
            model = _MODEL[os.getpid()] = ctx.place(load_affinity_net(model_path, classify_cfg, num_fg))
        image, seeds = load_image_seeds(ds, id_, seed_dir)
        bg = (load_background(bao_dir, id_, seeds.size, scale) if background == "learned" else
              seeds_background(seeds.high, seeds.size) if background == "seeds" else None)
        with torch.no_grad():
            save_label_png(path_for(id_), walk_image(model, image, seeds, scfg, device, bg, threshold))

    ran = for_each_item(ids, work, exists(path_for), workers, desc="random walk", log=ctx.log)
    _MODEL.clear()
    return {"split": ds.split, "num_images": len(ids), "computed": len(ran), "labels": str(out),
            "radius": int(scfg.get("radius", 5)), "beta": float(scfg.get("beta", 10)),
            "steps": 2 ** int(scfg.get("exp_times", 8)), "background": background,
            "class_norm": norm, "label_crf": crf,
            "background_scale": scale if background == "learned" else None,
            "bg_mode": scfg.get("bg_mode", "threshold") if background == "threshold" else "learned",
            "sem_seg_bg_thres": threshold, "provenance": provenance, "provenance_label": provenance_label(provenance),
            "products": {f"pseudo-labels, affinity + random walk ({ds.split})": str(out)}}


def outputs(ctx) -> dict:
    from wsss.maps import label_outputs

    return label_outputs(ctx, NAME)


def progress(ctx) -> tuple[int, int]:
    from wsss.maps import label_progress

    return label_progress(ctx, NAME)
