"""Train the inter-pixel affinity network on the confident regions of the affinity labels (IRN's train_irn).

The classifier's backbone is frozen (as IRN); a small multi-level head embeds its features on the stride-4
grid and pairs within ``train_radius`` get PSA's affinity ``exp(-mean|f_i - f_j|)`` (see wsss/affinity.py for
why PSA's pairwise formulation rather than IRN's boundary map). Loss balanced over bg-bg, same-class fg-fg
and different-label pairs. wsss.training gives SGD + poly, AMP, DDP under torchrun, checkpoints and resume.
Writes ``model.pth``. ``cache_features`` (demo): the frozen backbone's features are computed once at a fixed
scale (+ mirror) and training runs the head only (wsss.feature_cache); ``train_chunk``: offsets per
checkpointed group of the pair loss (0 = none, fastest when memory allows).
"""
from __future__ import annotations

NAME = "affinity"
INPUTS = ("classify", "ir_labels")
CONFIG_KEYS = ("dataset", "classify", "affinity", "ir_labels.split", "seeds.split", "runtime.seed",
               "runtime.amp", "runtime.cpu_bf16")


def inputs(cfg) -> tuple[str, ...]:
    """The affinity labels, and the trained classifier when the classify stage is enabled (with it disabled, e.g.
    for external seeds, the frozen backbone is the ImageNet-initialised one of ``classify``, as IRN's is)."""
    from pipeline.stage import section_enabled

    return INPUTS if section_enabled(cfg, "classify") else ("ir_labels",)


TRAIN_KEYS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "poly_power", "ckpt_interval",
              "num_workers", "log_interval")


def outputs(ctx) -> dict:
    return {ctx.out_dir / "model.pth": "torch"}


def run(ctx) -> dict:
    import time

    from pipeline.stage import section_enabled
    from wsss.affinity import affinity_step, pair_offsets
    from wsss.affinity_data import AffinityDataset
    from wsss.feature_cache import FeatureCache
    from wsss.maps import seed_split
    from wsss.models import build_classifier, load_classifier
    from wsss.models.affinity_net import build_affinity_net, save_affinity_net
    from wsss.training import precision_options, train

    scfg = dict(ctx.stage_cfg)
    ds = ctx.dataset(seed_split(ctx.cfg, "ir_labels"))
    label_dir = ctx.input_dir("ir_labels") / "labels"
    missing = [i for i in ds.ids if not (label_dir / f"{i}.png").is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(ds.ids)} affinity-label PNGs missing in {label_dir}: "
                                f"{missing[:20]} (run the ir_labels stage to completion)")
    device = ctx.device
    if section_enabled(ctx.cfg, "classify"):
        classifier = load_classifier(ctx.input_dir("classify") / "model.pth", ctx.cfg.get("classify", {}), ds.num_fg)
    else:
        classifier = build_classifier(ctx.cfg.get("classify", {}), ds.num_fg)
    model = ctx.place(build_affinity_net(classifier, scfg))
    stride = model.grid_stride
    offsets = pair_offsets(int(scfg.get("train_radius", 10)))
    runtime = ctx.cfg.get("runtime", {})
    crop, seed, cache = int(scfg.get("crop_size", 512)), int(runtime.get("seed", 0)), bool(scfg.get("cache_features"))
    data = AffinityDataset(ds, label_dir, resize_range=(crop, crop) if cache else scfg.get("resize_range", (320, 640)),
                           crop=crop, grid_stride=stride, flip=False if cache else scfg.get("flip", True), seed=seed)
    if cache:  # frozen backbone: its features at one fixed scale (+ mirror) are computed once, not every iteration
        t0 = time.time()
        data = FeatureCache(model.frozen_features, data, device, flip=scfg.get("flip", True), seed=seed,
                            config_key="affinity.cache_features")
        ctx.log.info("cached frozen-backbone features of %d images (+ mirrors) in %.1fs", len(data), time.time() - t0)
    tcfg = {k: scfg[k] for k in TRAIN_KEYS if k in scfg}
    tcfg.update(precision_options(runtime), seed=runtime.get("seed", 0))
    ctx.log.info("affinity net: grid stride %d, %d training offsets (radius %s), %d images, levels %s",
                 stride, len(offsets), scfg.get("train_radius", 10), len(data), model.levels)
    stats = train(model, [dict(params=model.trainable_parameters(), lr_mult=1.0)], data,
                  affinity_step(offsets, int(scfg.get("train_chunk", 8))),
                  tcfg, ctx.out_dir, ctx.log)
    if ctx.is_main:
        save_affinity_net(ctx.out_dir / "model.pth", model, {**scfg, "grid_stride": stride})
    last = stats["history"][-1] if stats.get("history") else {}
    return {"grid_stride": stride, "cached_features": cache,
            "train_radius": int(scfg.get("train_radius", 10)), "num_offsets": len(offsets),
            "num_images": len(data), "final": last, "iterations": stats.get("iterations"),
            "seconds": stats.get("seconds"), "images_per_s": stats.get("images_per_s")}
