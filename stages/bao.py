"""BAO: learn an explicit background channel from the first seeds, then label every image with no threshold.

Training (wsss.training: SGD + poly, AMP, DDP, checkpoints/resume): the student is the trained classifier's
backbone and classifier head plus a label-conditioned head with C+1 outputs (wsss.models.bao). Losses:
multi-label classification + class-balanced, label-smoothed cross-entropy on teacher labels.

Teacher labels, by epoch (``bao.teacher_from_epoch``):
- before it: the first seeds' labels, argmax over [1 - max_c normCAM_c, normCAM_c] (no tuned threshold);
  meanwhile the teacher is kept equal to the student, so it starts from a head that has learned the seeds;
- from it on: the EMA teacher's own prediction on the same augmented batch (single scale, argmax over the
  background and the present classes), recomputed on the fly without gradient; the teacher follows the
  student by EMA (``bao.ema_momentum``) every step.
The EMA step is taken at the start of each training step (it then sees the previous optimizer update) and
once after training, so a resumed run gives the same teacher as an uninterrupted one.

Inference with the EMA teacher (``bao.infer_with``): multi-scale + flip (``bao.scales``, default the seeds'
scales; an image longer than ``seeds.max_image_side`` scaled down to it first, as for the seeds), the learned
background channel and the present classes' maps, each normalised per channel, argmax.
Writes ``labels/<id>.png`` (label PNG) and ``bg/<id>.npz`` (``bg``: float16 HxW background map), resumable.

``bao.freeze_backbone``: False = everything learns; 'mid' = the backbone up to its stride-16 mid level keeps the
classifier's weights and its last stage + the heads learn; True = only the label-conditioned head learns (as the
affinity stage's head does); with ``bao.head_levels`` that head reads several backbone levels (strides 4-16, the
affinity net's fusion) instead of the stride-16 map alone. ``bao.cache_features`` (needs a frozen part): the
frozen part's output is computed once per image and mirror at one scale (the whole image in the crop) and training
runs the rest alone (wsss.feature_cache). Speed and quality of each student: bench/README.md ("BAO student").

Training scale and lr default to the classifier's (``bao.resize/resize_range/crop_size/lr`` = None): the
backbone learned the classes, and the seeds were made, at that scale (numbers: docs/DEVLOG.md).
"""
from __future__ import annotations

import zipfile
from typing import Any

import numpy as np

NAME = "bao"
INPUTS = ("classify", "seeds")
CONFIG_KEYS = ("dataset", "bao", "seeds.split", "seeds.scales", "seeds.max_image_side", "classify.resize",
               "classify.scale_range", "classify.crop_size", "classify.lr", "runtime.seed", "runtime.amp",
               "runtime.cpu_bf16")

_TRAIN_KEYS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "poly_power", "ckpt_interval",
               "num_workers", "log_interval")
DEFAULT_SCALES = (1.0, 0.5, 1.5, 2.0)
_STUDENTS = {"none": "backbone and heads learn", "mid": "backbone frozen up to its mid level, the rest learns",
             "all": "frozen backbone, head only", "levels": "frozen backbone, a head on its levels %s"}


def check_seed_classes(ds: Any, seed_dir, ids: list[str]) -> None:
    """Every seed file's class keys must be the image's labels in this dataset (reads only the keys)."""
    from wsss.maps import check_seed_keys

    for id_ in ids:
        path = seed_dir / f"{id_}.npz"
        try:
            with np.load(path) as z:
                keys = z["keys"]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path}: not a seed file of this pipeline ({e}); re-run the seeds stage") from None
        check_seed_keys(path, keys, ds.label_set(id_), ds.classes)


def inference_scales(cfg: Any) -> tuple[float, ...]:
    scales = cfg.get("bao", {}).get("scales") or cfg.get("seeds", {}).get("scales") or DEFAULT_SCALES
    scales = tuple(float(s) for s in scales)
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"bao.scales must be positive numbers, got {scales}")
    return scales


def classifier_scale(scfg: dict, ccfg: dict) -> tuple[int, tuple[float, float], int]:
    """(resize, resize_range, crop) for training: bao's own values, else the classifier's (the scale at which
    the backbone learned the classes and at which the seeds are computed). A BAO resize of 512 on the 128 px
    demo images trained the head on 4x zoomed crops it never sees at inference."""
    resize = int(scfg.get("resize") or ccfg.get("resize") or 512)
    lo, hi = scfg.get("resize_range") or ccfg.get("scale_range") or (0.7, 1.3)
    crop = int(scfg.get("crop_size") or ccfg.get("crop_size") or 448)
    return resize, (float(lo), float(hi)), crop


def run(ctx) -> dict[str, Any]:
    import torch

    from pipeline.cache import atomic_save_npz
    from pipeline.parallel import for_each_item
    from wsss.bao_data import SeedLabelImages
    from wsss.maps import SeedMaps, open_seed_folder, save_label_png, seed_labels
    from wsss.models.bao import BAOModel, BAOStudent, freeze_mode, predict_maps
    from wsss.models.classifier import load_classifier
    from wsss.training import precision_options, train
    from wsss.transforms import bounded_scales, to_tensor

    scfg = dict(ctx.stage_cfg)
    runtime = dict(ctx.cfg.get("runtime", {}))
    ds, ids, seed_dir = open_seed_folder(ctx, NAME)
    check_seed_classes(ds, seed_dir, ids)
    scales = inference_scales(ctx.cfg)
    flip = bool(scfg.get("flip", True))
    teacher_from = int(scfg.get("teacher_from_epoch", 1))
    infer_with = scfg.get("infer_with", "teacher")
    if infer_with not in ("teacher", "student"):
        raise ValueError(f"bao.infer_with must be 'teacher' or 'student', got {infer_with!r}")

    seed = int(runtime.get("seed", 0))
    torch.manual_seed(seed)  # the same new head on every rank
    device = ctx.device
    classifier = load_classifier(ctx.input_dir("classify") / "model.pth", ctx.cfg.get("classify", {}), ds.num_fg,
                                 "cpu")
    freeze, cache = freeze_mode(scfg.get("freeze_backbone", False)), bool(scfg.get("cache_features", False))
    if cache and freeze == "none":
        raise ValueError("bao.cache_features=True needs bao.freeze_backbone='mid' or True (a backbone that learns "
                         "changes its features every step)")
    student = BAOStudent.from_classifier(classifier, hidden=int(scfg.get("hidden", 256)), frozen_backbone=freeze,
                                         head_levels=scfg.get("head_levels"), head_dims=scfg.get("head_dims"),
                                         cam_prior=float(scfg.get("cam_prior") or 0.0))
    del classifier
    model = ctx.place(BAOModel(student, ema_momentum=float(scfg.get("ema_momentum", 0.99)),
                               smoothing=float(scfg.get("label_smoothing", 0.4)),
                               cls_weight=float(scfg.get("cls_weight", 1.0)),
                               seg_weight=float(scfg.get("seg_weight", 1.0))))
    ccfg = dict(ctx.cfg.get("classify", {}))
    resize, resize_range, crop = classifier_scale(scfg, ccfg)
    if cache:  # one fixed scale (the whole image in the crop) + mirror, features computed once
        import time

        from wsss.feature_cache import FeatureCache

        t0 = time.time()
        data = FeatureCache(student.features, SeedLabelImages(ds, seed_dir, resize=crop, scale_range=(1.0, 1.0),
                                                              crop=crop, flip=False, seed=seed),
                            device, flip=True, seed=seed, flip_keys=("target",), dtype=torch.float16,
                            config_key="bao.cache_features")
        ctx.log.info("bao: cached the frozen part's features (%s) of %d images (+ mirrors) in %.1fs", freeze,
                     len(data), time.time() - t0)
    else:
        data = SeedLabelImages(ds, seed_dir, resize=resize, scale_range=resize_range, crop=crop, flip=True,
                               seed=seed)
    tcfg = {k: scfg[k] for k in _TRAIN_KEYS if scfg.get(k) is not None}
    tcfg["lr"] = float(scfg.get("lr") or ccfg.get("lr") or 0.01)
    tcfg.update(precision_options(runtime), seed=seed)
    epochs = int(tcfg.get("epochs", 1))
    ctx.log.info("bao: %d images of %s, %d foreground classes; %s; %d epochs, seed labels for epochs < %d then "
                 "the EMA teacher (momentum %s); inference scales %s%s with the %s", len(ids), ds.split, ds.num_fg,
                 (_STUDENTS[freeze] if student.head_levels is None else _STUDENTS["levels"] % student.head_levels)
                 + (f" + {student.cam_prior:g} x the classifier's CAM" if student.cam_prior else "")
                 + (" on cached features" if cache else ""), epochs, teacher_from,
                 model.ema_momentum, scales, " + flip" if flip else "", infer_with)

    def step(net, batch):
        m = getattr(net, "module", net)
        use_teacher = data.epoch >= teacher_from  # train() sets the epoch on the dataset before each epoch
        m.update_teacher() if use_teacher else m.sync_teacher()
        return net(batch["feats"] if "feats" in batch else batch["image"], batch["labels"], batch["target"],
                   use_teacher)

    result = train(model, model.param_groups(), data, step, tcfg, ctx.out_dir, ctx.log)
    # the step after the last optimizer update (the checkpoint never holds it, so this is exact on resume)
    model.update_teacher() if epochs > teacher_from else model.sync_teacher()
    if ctx.is_main:
        from pipeline.cache import atomic_path

        with atomic_path(ctx.out_dir / "model.pth") as tmp:
            torch.save({"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                        "meta": {"classes": list(ds.classes), "num_classes": ds.num_fg}}, tmp)

    net = (model.teacher if infer_with == "teacher" else model.student).eval()
    max_side = ctx.cfg.get("seeds", {}).get("max_image_side")  # large photos: labelled at the seeds' size bound
    labels_dir, bg_dir = ctx.out_dir / "labels", ctx.out_dir / "bg"

    def work(id_: str) -> tuple[int, int, int]:
        image = ds.image(id_)
        keys = np.asarray(ds.label_set(id_), np.int64)
        x = to_tensor(image)[0].to(device)
        lab = torch.from_numpy(ds.labels(id_)).to(device)
        maps = predict_maps(net, x, lab, bounded_scales(image.shape[:2], scales, max_side), flip).cpu().numpy()
        bg, fg = maps[0], maps[1:][keys]
        labels = seed_labels(SeedMaps(keys=keys, stride4=fg[:, :1, :1], high=fg), 0.0, background=bg)
        atomic_save_npz(bg_dir / f"{id_}.npz", bg=bg.astype(np.float16))
        save_label_png(labels_dir / f"{id_}.png", labels)  # last: its existence marks the item done
        return int((labels == 0).sum()), int((labels > 0).sum()), int(labels.size)

    workers = 1 if device.type == "cuda" else ctx.workers
    done = lambda i: (labels_dir / f"{i}.png").is_file() and (bg_dir / f"{i}.npz").is_file()  # noqa: E731
    with torch.inference_mode():
        ran = for_each_item(ids, work, done, workers, desc="bao labels", log=ctx.log)
    counts = np.array(list(ran.values()), np.int64).reshape(-1, 3).sum(0)
    history = result["history"]
    final = {k: round(v, 5) for k, v in history[-1].items() if k not in ("epoch", "seconds")} if history else {}
    fg_frac = float(counts[1] / counts[2]) if counts[2] else None
    if fg_frac is not None and (fg_frac < 0.01 or fg_frac > 0.99):
        ctx.log.warning("bao labels are %.1f%% foreground: the background channel has %s; check the seeds and "
                        "the training losses", 100 * fg_frac, "taken over" if fg_frac < 0.01 else "vanished")
    return {"split": ds.split, "num_images": len(ids), "computed": len(ran), "labels": str(labels_dir),
            "background_maps": str(bg_dir),
            "inference": {"scales": list(scales), "max_image_side": max_side, "flip": flip, "model": infer_with,
                          "rule": "argmax over normalised [background, classes]"},
            "fg_fraction_of_computed": fg_frac, "frozen_backbone": freeze, "head_levels": student.head_levels,
            "cam_prior": student.cam_prior,
            "cached_features": cache,
            "epochs": result["epochs"], "iterations": result["iterations"],
            "train_seconds": result["seconds"], "images_per_s": result["images_per_s"], "final": final,
            "history": history}


def outputs(ctx) -> dict:
    from wsss.maps import label_outputs

    return label_outputs(ctx, NAME, bg="npz:bg")


def progress(ctx) -> tuple[int, int]:
    from wsss.maps import label_progress

    return label_progress(ctx, NAME)
