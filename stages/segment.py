"""DeepLab (MMSegmentation 1.x, mmengine Runner) trained on the pseudo-labels; validated on the val ground truth.

Training images are the dataset's training split; labels come from ``<work_dir>/<segment.labels_from>/labels``
(default: the random walk's), the agreement of several such stages (``labels_from='crf+random_walk'``: a pixel
keeps the label they share, or is ignored where they differ; written to ``<out>/agreement/``), any folder of
``<id>.png``, or the ground truth (``labels_from='gt'``: the fully supervised upper bound, same recipe); a training
image without any class (a negative) is all background.
Inputs are checked before training starts (missing label files, values outside the class range, wrong sizes, a
class count that disagrees). mmengine keeps checkpoints in ``<out>/mmseg/`` and resumes from the latest one; the
stage exports ``model.pth`` (weights of the last iteration) and ``mmseg_config.py`` (the exact config used).
Under torchrun it trains data-parallel.
"""
from __future__ import annotations

from typing import Any

NAME = "segment"
INPUTS = ("random_walk",)  # the default; the real inputs depend on segment.labels_from, see inputs()
CONFIG_KEYS = ("dataset", "segment", "runtime.seed", "runtime.amp")


def config_files(cfg: Any) -> dict[str, Any]:
    """The content of the mmseg model config that ``segment.model`` names (resolved with its ``_base_`` chain), so
    an edit to that file reruns the stage as a changed key would (the path alone is in ``CONFIG_KEYS``; an inline
    dict is a key already). A file that cannot be loaded is left to ``check``, which names it."""
    import os

    from wsss.segmentation import model_config

    if not isinstance(cfg.get("segment", {}).get("model"), (str, os.PathLike)):
        return {}
    try:
        content = model_config(cfg)[0].to_dict()
    except Exception as e:  # noqa: BLE001  (check() reports it before any stage runs)
        content = f"unreadable: {type(e).__name__}"
    return {"segment.model (file content)": content}


def data_splits(cfg: Any) -> tuple[str, ...]:
    """The training split, and the val split when it validates during training."""
    return ("train", "val") if cfg.get("segment", {}).get("val_interval", None) != 0 else ("train",)


def check(ctx) -> None:
    """Before any stage runs: the DeepLab backbone's pretrained weights are there (or downloadable), and the
    val split's masks are in range (when it validates on them)."""
    from wsss.datasets import MissingSplit, read_split_ids
    from wsss.segmentation import apply_backbone_weights, model_config, val_split_name

    mm, path = model_config(ctx.cfg)
    apply_backbone_weights(mm, ctx.stage_cfg.get("pretrained", True), str(path))
    try:
        val_ids = read_split_ids(ctx.cfg.dataset, val_split_name(ctx.cfg.dataset))
    except MissingSplit:  # no val split: run() trains without validation and says so
        return
    shared = sorted(set(val_ids) & set(read_split_ids(ctx.cfg.dataset)))
    if shared:
        ctx.log.warning("segment: %d of the %d val images are in the train split too (e.g. %s): DeepLab trains on "
                        "their pseudo-labels, so its val mIoU is partly measured on training images", len(shared),
                        len(val_ids), shared[:3])
    if ctx.stage_cfg.get("val_interval", None) != 0:
        ctx.dataset(val_split_name(ctx.cfg.dataset), require_foreground=False)


def outputs(ctx) -> dict:
    return {ctx.out_dir / "model.pth": "torch"}


def inputs(cfg: Any) -> tuple[str, ...]:
    """The stage whose labels we train on (none for 'gt' or an explicit folder)."""
    from wsss.segmentation import segment_inputs

    return segment_inputs(cfg.get("segment", {}))


def run(ctx) -> dict[str, Any]:
    from wsss.datasets import MissingSplit
    from wsss.segmentation import check_label_folder, train, val_split_name

    train_ds = ctx.dataset(require_foreground=False)  # background-only images train as all background
    val_ds = None
    seg = ctx.stage_cfg
    if seg.get("val_interval", None) != 0:
        try:
            val_ds = ctx.dataset(val_split_name(ctx.cfg.dataset), require_foreground=False)
        except MissingSplit as e:  # no val split: train without validation, say so (a damaged one is an error)
            ctx.log.warning("segment: no validation during training (%s)", e)
        if val_ds is not None and not val_ds.has_masks:
            ctx.log.warning("segment: val split '%s' has no masks; no validation during training", val_ds.split)
            val_ds = None
        if val_ds is not None:  # a damaged val mask must fail now, not after training at the first validation
            check_label_folder(val_ds, val_ds.mask_dir, val_ds.mask_suffix)
    if val_ds is not None and val_ds.classes != train_ds.classes:
        raise ValueError(f"val split classes {val_ds.classes} differ from the training split's {train_ds.classes}")
    agreement = write_agreement(ctx, train_ds)
    results = train(ctx.cfg, ctx.work_dir, ctx.out_dir, train_ds, val_ds, logger=ctx.log)
    return {**(results or {}), **agreement, "labels_kind": labels_kind(ctx),
            "products": {"DeepLab checkpoint": str(ctx.out_dir / "model.pth")}}


def write_agreement(ctx, train_ds) -> dict[str, Any]:
    """``labels_from`` of several stages ('crf+random_walk'): their labels where they agree, ignore (255) where
    they do not, written to ``<out>/agreement/<id>.png`` for every training image with a class (resumable; the
    others train as background). Returns the share of ignored pixels."""
    import numpy as np

    from pipeline.parallel import exists, for_each_item
    from wsss.maps import agreement_labels, save_label_png
    from wsss.segmentation.mmseg_config import AGREEMENT_DIR, label_sources

    names = label_sources(ctx.stage_cfg)
    if len(names) < 2:
        return {}
    sources, out = [ctx.input_dir(n) / "labels" for n in names], ctx.out_dir / AGREEMENT_DIR
    path_for = lambda i: out / f"{i}.png"  # noqa: E731

    def work(id_: str) -> tuple[int, int]:
        labels = agreement_labels(sources, id_)
        save_label_png(path_for(id_), labels)
        return int((labels == 255).sum()), int(labels.size)

    ids = [i for i in train_ds.ids if train_ds.label_set(i)]
    ran = for_each_item(ids, work, exists(path_for), ctx.workers, desc="label agreement", log=ctx.log)
    ignored, pixels = np.array(list(ran.values()) or [(0, 0)], np.int64).sum(0)
    share = float(ignored / pixels) if pixels else None
    if share is not None:
        ctx.log.info("segment: %s agree on %.1f%% of the pixels of %d images; the rest is ignored in training",
                     " and ".join(names), 100 * (1 - share), len(ran))
    return {"agreement": {"sources": names, "labels": str(out), "ignored_share_of_computed": share}}


def labels_kind(ctx) -> str:
    """How the training labels were made: 'fully supervised (ground-truth labels)', the label stage's own
    provenance ('ground-truth-free' / 'tuned with ground truth (on calib)'), or 'external labels'."""
    from pipeline.cache import read_json

    src = str(ctx.stage_cfg.get("labels_from", "random_walk"))
    if src == "gt":
        return "fully supervised (ground-truth labels)"
    stages = inputs(ctx.cfg)
    if not stages:
        return "external labels"
    kinds = []
    for stage in stages:
        path = ctx.input_dir(stage) / "results.json"
        res = read_json(path) if path.is_file() else {}
        kinds.append(str(res.get("provenance_label", "unknown")) if isinstance(res, dict) else "unknown")
    return " + ".join(dict.fromkeys(kinds))  # one kind when the sources share it
