"""Seed maps: per image, the class maps of the classes present, multi-scale + flip, summed, max-normalised.

Sources (``seeds.source``): 'bas' (the sigmoid generator maps), 'cam' (relu of the classifier-head map), or
'bas+cam' (each normalised, summed, normalised again; what the released BAS VOC seeds do), or 'external': maps
made by any other method, imported from ``seeds.external_dir`` (IRN's ``.npy`` format; wsss.external_seeds).
One source per run. ``seeds.max_image_side``: an image with a longer side is labelled at that long side (the
scales apply to it; wsss.transforms.bounded_scales), its maps still at full size; None = the native size.
Each image's flip is in the same forward pass as the image (a batch of 2 per scale). One ``.npz`` per image in
``maps/`` (wsss.maps.save_seeds): ``stride4`` on the stride-4 grid (IRN's ``cam``, what the random walk
starts from) and ``high`` at full resolution (IRN's ``high_res``), both made with IRN's geometry.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

NAME = "seeds"
INPUTS = ("classify",)
CONFIG_KEYS = ("dataset", "seeds")
SOURCES = ("bas", "cam", "bas+cam")


def inputs(cfg: Any) -> tuple[str, ...]:
    """The classifier, unless the maps come from another method (``seeds.source='external'``)."""
    return () if cfg.get("seeds", {}).get("source", "bas") == "external" else INPUTS


def _split(ctx) -> str | None:
    return ctx.stage_cfg.get("split", None)


def maps_dir(ctx) -> Path:
    return ctx.out_dir / "maps"


def progress(ctx) -> tuple[int, int]:
    from pipeline.parallel import count_done

    d = maps_dir(ctx)
    return count_done(ctx.dataset(_split(ctx)).ids, lambda i: d / f"{i}.npz")


def outputs(ctx) -> dict:
    d = maps_dir(ctx)
    return {d / f"{i}.npz": "npz:keys,stride4_planar,high_planar,size" for i in ctx.dataset(_split(ctx)).ids}


def image_seeds(model, image, keys, scales=(1.0, 0.5, 1.5, 2.0), source: str = "bas", flip: bool = True,
                batched: bool = True, device=None):
    """(stride4, high) float32 arrays (K, ceil(H/4), ceil(W/4)) / (K, H, W) in [0, 1] for the classes ``keys``.

    IRN's ``make_cam`` geometry: each scale's map (image + flip summed) is resized straight to the stride-4 grid
    for ``stride4``, and to the padded stride multiple ``ceil(H/16)*16`` then cropped to (H, W) for ``high`` (a
    stride-16 cell covers pixels [16i, 16i+16)); the scales are summed and each class map max-normalised.
    'bas+cam': both normalised, summed, normalised again (the released BAS seeds). ``batched``: image and flip
    in one forward pass (False: one pass each; for the benchmark).
    """
    import torch
    import torch.nn.functional as F

    from wsss.transforms import scaled_batch

    if source not in SOURCES:
        raise ValueError(f"seeds.source must be one of {SOURCES}, got '{source}'")
    device = device or next(model.parameters()).device
    H, W = image.shape[:2]
    keys_t = torch.as_tensor(list(keys), dtype=torch.long, device=device)
    names = ("bas", "cam") if source == "bas+cam" else (source,)
    stride4: dict[str, torch.Tensor] = {}
    high: dict[str, torch.Tensor] = {}
    stride4_size = (math.ceil(H / 4), math.ceil(W / 4))
    padded_size = (math.ceil(H / 16) * 16, math.ceil(W / 16) * 16)
    with torch.no_grad():
        for s in scales:
            x = scaled_batch(image, s, flip).to(device)
            if batched:
                outs = model.class_maps(x)
            else:
                parts = [model.class_maps(x[i:i + 1]) for i in range(len(x))]
                outs = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
            for name in names:
                if name not in outs:
                    raise ValueError(f"seeds.source '{source}' needs '{name}' maps, but the classifier "
                                     f"(method '{model.method}') gives only {sorted(outs)}")
                m = outs[name][:, keys_t].float()
                m = m[:1] + m[1:].flip(-1) if flip else m  # (1,K,h,w)
                s4 = F.interpolate(m, stride4_size, mode="bilinear", align_corners=False)
                hi = F.interpolate(m, padded_size, mode="bilinear", align_corners=False)[..., :H, :W]
                stride4[name] = stride4[name] + s4 if name in stride4 else s4
                high[name] = high[name] + hi if name in high else hi

    def norm(t):
        t = t.clamp(min=0)
        return t / (t.flatten(1).max(1).values[:, None, None] + 1e-5)

    def fuse(maps: dict[str, torch.Tensor]) -> torch.Tensor:
        return norm(maps[names[0]][0]) if len(names) == 1 else norm(sum(norm(maps[n][0]) for n in names))

    s4, hi = fuse(stride4), fuse(high)
    return s4.cpu().numpy(), hi.cpu().numpy()


def run(ctx) -> dict[str, Any]:
    from pipeline.parallel import exists, for_each_item
    from wsss.maps import save_seeds
    from wsss.models.classifier import load_classifier
    from wsss.transforms import bounded_scales

    scfg = dict(ctx.stage_cfg)
    source = scfg.get("source", "bas")
    if source == "external":  # maps made by another method, checked and converted (wsss.external_seeds)
        from wsss.external_seeds import import_seeds

        return import_seeds(ctx.dataset(_split(ctx)), scfg, maps_dir(ctx), ctx.workers, ctx.log)
    if source not in SOURCES:
        raise ValueError(f"seeds.source must be one of {SOURCES}, got '{source}'")
    scales = tuple(float(s) for s in scfg.get("scales", (1.0, 0.5, 1.5, 2.0)))
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"seeds.scales must be positive numbers, got {scales}")
    flip = bool(scfg.get("flip", True))
    ds = ctx.dataset(_split(ctx))
    empty = [i for i in ds.ids if not ds.label_set(i)]
    if empty:
        raise ValueError(f"{len(empty)} image(s) of split '{ds.split}' have no foreground class, so no seed maps "
                         f"can be made for them, e.g. {empty[:5]}; use a split whose images all have labels")
    ckpt = ctx.input_dir("classify") / "model.pth"
    device = ctx.device
    # the classifier architecture comes from the classify section (a mismatch with the checkpoint is an error)
    model = ctx.place(load_classifier(ckpt, ctx.cfg.get("classify", {}), ds.num_fg))
    if source != "cam" and model.method != "bas":
        raise ValueError(f"{ckpt}: seeds.source '{source}' needs a BAS classifier, this one is '{model.method}' "
                         "(set seeds.source='cam' or classify.method='bas')")
    out = maps_dir(ctx)
    out.mkdir(parents=True, exist_ok=True)
    path_for = lambda i: out / f"{i}.npz"  # noqa: E731

    max_side = scfg.get("max_image_side")

    def work(id_: str) -> int:
        image = ds.image(id_)
        per_image = bounded_scales(image.shape[:2], scales, max_side)
        s4, hi = image_seeds(model, image, ds.label_set(id_), per_image, source, flip, device=device)
        save_seeds(path_for(id_), ds.label_set(id_), s4, hi)
        return 1

    workers = 1 if device.type == "cuda" else max(1, ctx.workers)
    t0 = time.time()
    done = for_each_item(ds.ids, work, done=exists(path_for), workers=workers, desc="seeds", log=ctx.log)
    seconds = time.time() - t0
    sizes = [path_for(i).stat().st_size for i in ds.ids if path_for(i).is_file()]
    return {"source": source, "scales": list(scales), "max_image_side": max_side, "flip": flip, "split": ds.split,
            "images": len(ds.ids),
            "computed": len(done), "seconds": round(seconds, 3),
            "images_per_s": round(len(done) / seconds, 3) if done and seconds > 0 else None,
            "bytes_per_image": round(sum(sizes) / len(sizes)) if sizes else None}
