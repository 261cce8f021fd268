"""DeepLab (MMSegmentation 1.x, mmengine Runner) trained on the pseudo-labels; validated on the val ground truth.

Training images are the dataset's training split; labels come from ``<work_dir>/<segment.labels_from>/labels``
(default: the random walk's), any folder of ``<id>.png``, or the ground truth (``labels_from='gt'``: the fully
supervised upper bound, same recipe); a training image without any class (a negative) is all background.
Inputs are checked before training starts (missing label files, values outside the class range, wrong sizes, a
class count that disagrees). mmengine keeps checkpoints in ``<out>/mmseg/`` and resumes from the latest one; the
stage exports ``model.pth`` (weights of the last iteration) and ``mmseg_config.py`` (the exact config used).
Under torchrun it trains data-parallel.
"""
from __future__ import annotations

from typing import Any

NAME = "segment"
INPUTS = ("random_walk",)  # the default; the real inputs depend on segment.labels_from, see inputs()
CONFIG_KEYS = ("dataset", "segment", "runtime.seed", "runtime.amp", "runtime.cpu_bf16")


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
    results = train(ctx.cfg, ctx.work_dir, ctx.out_dir, train_ds, val_ds, logger=ctx.log)
    return {**(results or {}), "labels_kind": labels_kind(ctx),
            "products": {"DeepLab checkpoint": str(ctx.out_dir / "model.pth")}}


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
    path = ctx.input_dir(stages[0]) / "results.json"
    res = read_json(path) if path.is_file() else {}
    return str(res.get("provenance_label", "unknown")) if isinstance(res, dict) else "unknown"
