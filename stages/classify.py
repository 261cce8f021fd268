"""Train the multi-label classifier on image-level labels: BAS (foreground generator + background activation
suppression) or the plain CAM baseline (``classify.method``). Writes ``model.pth`` (weights + architecture).
Background-only images train as negatives when the class loss can use them (``Classifier.learns_from_negatives``);
a class in every training image is an error (nothing shows where it is), classes in exactly the same training
images a warning (nothing tells them apart).

Resumes from ``checkpoints/latest.pth`` (wsss.training). The log holds per-step losses; the metrics hold the
per-epoch means, including BAS's mean foreground-map area and the share of steps where the background score
beat the class score, the two numbers docs/METHOD.md (section 1) asks a user to watch.
"""
from __future__ import annotations

from typing import Any

NAME = "classify"
INPUTS = ()
CONFIG_KEYS = ("dataset", "classify", "runtime.seed", "runtime.amp", "runtime.cpu_bf16")

# Keys of the `classify` section that are not training/model options
_TRAIN_KEYS = ("epochs", "iters", "batch_size", "lr", "momentum", "weight_decay", "poly_power", "ckpt_interval",
               "num_workers", "log_interval")


def outputs(ctx) -> dict:
    """What verifies before it is reused (pipeline.verify)."""
    return {ctx.out_dir / "model.pth": "torch"}


def check_classes(ds: Any, wanted: Any) -> None:
    """``classify.classes`` (optional) must match the dataset's class list, in order."""
    if wanted is None:
        return
    wanted = list(wanted)
    missing = [c for c in wanted if c not in ds.classes]
    if missing:
        raise ValueError(f"classify.classes names {missing}, which the dataset at {ds.root} does not have "
                         f"(its classes: {ds.classes})")
    if wanted != list(ds.classes) and wanted != list(ds.classes[1:]):
        raise ValueError(f"classify.classes {wanted} differ in order/extent from the dataset's {ds.classes}; "
                         "remove classify.classes or make it match the dataset's classes.txt")


def _white_object_hint(ds: Any) -> str:
    """A hint when the masks look like white-on-black binary masks (0 and 255 only): 255 means ignore here."""
    ids = (list(ds.ids) or list(ds.skipped_no_foreground))[:1]
    if not ds.has_masks or not ids:
        return ""
    import numpy as np

    values = np.unique(ds.mask(ids[0])).tolist()
    if 255 not in values or not set(values) <= {0, 255}:
        return ""
    return (f" (the masks hold only 0 and 255, e.g. {ds.mask_path(ids[0])}: 255 means 'ignore' in VOC-layout "
            "masks; write each object's class index instead, 1 for the first class of classes.txt)")


def check_learnable(ds: Any) -> list[str]:
    """Image-level labels teach where a class is only by contrast: a class in every training image has no
    image without it, so nothing tells the classifier which pixels are the class (its maps would be noise): an
    error, as is a split where no image has a class. Returns the classes in no training image (never seeded or
    predicted; the caller warns)."""
    from wsss.datasets import DatasetError

    counts = ds.class_image_counts()
    if not counts.any():
        raise DatasetError(f"{ds.root}: no training image of split '{ds.split}' has a foreground class, nothing "
                           f"to learn{_white_object_hint(ds)}")
    everywhere = [ds.classes[c + 1] for c in range(ds.num_fg) if counts[c] == len(ds)]
    if everywhere:
        raise DatasetError(
            f"{ds.root}: class(es) {everywhere} are in every one of the {len(ds)} training images of split "
            f"'{ds.split}': image-level labels cannot show where a class is without images that lack it. Add "
            "images without it to the train split (background-only images, with an all-background mask or an "
            "empty label list, train as negatives)")
    return [ds.classes[c + 1] for c in range(ds.num_fg) if counts[c] == 0]


def inseparable_classes(ds: Any) -> list[list[str]]:
    """Groups of two or more classes that are in exactly the same training images: their image-level labels are
    identical, so nothing in training tells their pixels apart (the caller warns; they still train)."""
    having: dict[int, set[str]] = {}  # class -> the images that have it, in one pass over the labels
    for i in ds.ids:
        for c in ds.label_sets[i]:
            having.setdefault(c, set()).add(i)
    groups: dict[frozenset, list[str]] = {}
    for c in sorted(having):
        groups.setdefault(frozenset(having[c]), []).append(ds.classes[c + 1])
    return [group for group in groups.values() if len(group) > 1]


def check(ctx) -> None:
    """Before any stage runs: the backbone's pretrained weights are there (or downloadable)."""
    from wsss.models.backbones import check_pretrained

    section = ctx.stage_cfg
    check_pretrained(section.get("backbone", "resnet50"), section.get("pretrained", True))


def run(ctx) -> dict[str, Any]:
    import torch

    from wsss.models.backbones import describe_init
    from wsss.models.classifier import build_classifier, save_classifier
    from wsss.train_data import LabeledImages
    from wsss.training import precision_options, train

    scfg = dict(ctx.stage_cfg)
    runtime = dict(ctx.cfg.get("runtime", {}))
    ds = ctx.dataset(require_foreground=False)
    check_classes(ds, scfg.get("classes"))
    seed = int(runtime.get("seed", 0))
    torch.manual_seed(seed)  # same initial heads on every rank (DDP broadcasts rank 0's anyway)
    model = ctx.place(build_classifier(scfg, ds.num_fg))
    if not model.learns_from_negatives:
        ds = ctx.dataset()  # background-only images skipped (and counted): this loss gets nothing from them
    negatives = len(ds.background_only_ids())
    absent = check_learnable(ds)
    if absent:
        ctx.log.warning("classify: class(es) %s are in no training image of split '%s': they will never be "
                        "seeded or predicted", absent, ds.split)
    for group in inseparable_classes(ds):
        ctx.log.warning("classify: classes %s are in exactly the same training images of split '%s': their "
                        "image-level labels are identical, so nothing tells their pixels apart; add images that "
                        "have one of them without the other", group, ds.split)
    ctx.log.info("classify: %s on %s (%d images, %d of them background-only negatives; %d foreground classes), "
                 "backbone %s", scfg.get("method", "bas"), ds.split, len(ds), negatives, ds.num_fg,
                 scfg.get("backbone", "resnet50"))
    if scfg.get("pretrained", True) is False:
        ctx.log.warning("classify: backbone from RANDOM init (classify.pretrained=False)")
    data = LabeledImages(ds, resize=int(scfg.get("resize", 512)), scale_range=scfg.get("scale_range", (0.7, 1.3)),
                         crop=int(scfg.get("crop_size", 448)), flip=bool(scfg.get("flip", True)), seed=seed)
    tcfg = {k: scfg[k] for k in _TRAIN_KEYS if k in scfg}
    tcfg.update(precision_options(runtime), seed=seed)

    def step(net, batch):
        return net(batch["image"], batch["labels"])

    result = train(model, model.param_groups(), data, step, tcfg, ctx.out_dir, ctx.log)
    if ctx.is_main:
        save_classifier(ctx.out_dir / "model.pth", model, ds.classes)
    history = result["history"]
    final = {k: round(v, 5) for k, v in history[-1].items() if k not in ("epoch", "seconds")} if history else {}
    metrics: dict[str, Any] = {
        "method": model.method, "backbone": model.backbone.name, "num_classes": ds.num_fg,
        "images": len(ds), "negative_images": negatives, "cls_loss": model.cls_loss, "epochs": result["epochs"],
        "iterations": result["iterations"],
        "images_per_s": result["images_per_s"], "train_seconds": result["seconds"],
        "final": final,
        # accuracy on the (augmented) training batches of the last epoch: top-1 = the highest score is a
        # present class; acc = per-label accuracy of score > 0
        "train_top1": final.get("top1"), "train_label_acc": final.get("acc"),
        "history": history,
        "backbone_init": describe_init(scfg.get("pretrained", True), "classify.pretrained"),
    }
    if model.method == "bas" and history:
        metrics["area_per_epoch"] = [round(h.get("area", float("nan")), 4) for h in history]
        metrics["bg_wins_per_epoch"] = [round(h.get("bg_wins", float("nan")), 4) for h in history]
        area = history[-1].get("area", 0.5)
        if area < 0.02:
            ctx.log.warning("mean foreground-map area ended at %.3f: the maps have collapsed; lower "
                            "classify.loss_weights.area or train longer (docs/METHOD.md, section 1)", area)
        elif area > 0.9:
            ctx.log.warning("mean foreground-map area ended at %.3f: the maps cover nearly everything; the area "
                            "constraint is too weak or training too short", area)
    return metrics
