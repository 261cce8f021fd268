"""Our config -> an mmseg config: the model config file, backbone weights, data, schedule, class count."""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.cache import atomic_path
from pipeline.distributed import world
from wsss.datasets import DatasetError, SegDataset
from wsss.training import check_cpu_bf16_hardware, precision_options

from .checks import check_num_classes

log = logging.getLogger("wsss.segmentation")


REPO_ROOT = Path(__file__).resolve().parents[2]
MMSEG_CONFIGS = "mmseg::"  # mmengine's package-scoped config prefix: <mmseg package>/.mim/configs/


def mmseg_config_dir() -> Path:
    """The configs shipped inside the installed mmseg package (what ``mmseg::`` resolves to)."""
    import mmseg

    return Path(mmseg.__file__).resolve().parent / ".mim" / "configs"


def resolve_model_config(path: str | os.PathLike) -> Path:
    """A model config path: absolute, relative to the current directory, or relative to the repository root."""
    p = Path(path).expanduser()
    for cand in ([p] if p.is_absolute() else [Path.cwd() / p, REPO_ROOT / p]):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"segment.model: mmseg config {path} not found (looked in {Path.cwd()} and {REPO_ROOT})")


def label_dir_for(seg_cfg: Mapping[str, Any], work_dir: str | os.PathLike) -> Path | None:
    """Where the training labels come from: ``<work_dir>/<labels_from>/labels``, a folder path, or None for 'gt'."""
    src = str(seg_cfg.get("labels_from", "random_walk"))
    if src == "gt":
        return None
    if os.sep in src or src.startswith(".") or os.path.isabs(src):
        return Path(src).expanduser()
    return Path(work_dir) / src / "labels"


def background_only_ids(train_ds: SegDataset, label_dir: Path | None) -> list[str]:
    """Training images without any class (negatives): labelled all background, since the pseudo-label stages
    label only images with a class. None with ground-truth labels (``label_dir`` None), whose masks say it."""
    return [] if label_dir is None else train_ds.background_only_ids()


def segment_inputs(seg_cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """The stage the segment stage reads: the stage named by ``labels_from`` (none for 'gt' or a folder path)."""
    src = str(seg_cfg.get("labels_from", "random_walk"))
    if src == "gt" or os.sep in src or src.startswith(".") or os.path.isabs(src):
        return ()
    return (src,)


def val_split_name(dataset_cfg: Mapping[str, Any]) -> str:
    """The val split of a dataset config (its ``val_split``, else its type's preset)."""
    from wsss.datasets import PRESETS

    if dataset_cfg.get("val_split"):
        return str(dataset_cfg["val_split"])
    return str(PRESETS.get(dataset_cfg.get("type", "custom"), PRESETS["custom"])["val_split"])


# ------------------------------------------------------------------------------------------- config
def _replace_type(obj: Any, old: str, new: str) -> Any:
    if isinstance(obj, Mapping):
        return {k: (new if k == "type" and v == old else _replace_type(v, old, new)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace_type(v, old, new) for v in obj]
    return obj


def apply_backbone_weights(mm: Any, pretrained: Any, where: str) -> str:
    """Point the mmseg model config ``mm`` at local backbone weights; returns how the backbone starts.

    ``pretrained`` (``segment.pretrained``): True = the weights the model config names (mmseg's own recipe:
    ``open-mmlab://resnet101_v1c`` and the like through mmengine's table; torchvision's ImageNet MobileNetV2 for
    ``TVMobileNetV2``), found in or downloaded to torch.hub's cache, else a PretrainedWeightsError naming the
    file; a path or checkpoint name = that checkpoint; False = random init (said in the result)."""
    from wsss.weights import PretrainedWeightsError, cached_checkpoint, resolve_checkpoint, torchvision_url

    backbone = mm.model.backbone
    tv = backbone.get("type") == "TVMobileNetV2"
    if pretrained in (False, None, ""):
        mm.model.pretrained = None
        backbone.init_cfg = None
        if tv:
            backbone.tv_checkpoint = None
        return "random init (segment.pretrained=False)"
    if pretrained is True:
        if tv:
            file = cached_checkpoint(torchvision_url("mobilenet_v2"), "segment.pretrained")
        else:
            spec = mm.model.get("pretrained") or (backbone.get("init_cfg") or {}).get("checkpoint")
            if not spec:
                raise PretrainedWeightsError(
                    f"segment.pretrained=True but the model config {where} names no backbone weights "
                    "(model.pretrained or model.backbone.init_cfg.checkpoint): set segment.pretrained to a "
                    "checkpoint path, or to False for random init")
            file = resolve_checkpoint(spec, "segment.pretrained")
    else:
        file = resolve_checkpoint(pretrained, "segment.pretrained")
    mm.model.pretrained = None
    if tv:
        backbone.tv_checkpoint = str(file)
        backbone.init_cfg = None
    else:
        backbone.init_cfg = dict(type="Pretrained", checkpoint=str(file))
    return f"checkpoint {file}"


def model_config(cfg: Any) -> tuple[Any, Path]:
    """The mmseg model config named by ``segment.model`` (loaded) and its path."""
    from mmengine.config import Config

    path = resolve_model_config(cfg.get("segment", {}).get("model"))
    return Config.fromfile(str(path)), path


def build_mmseg_config(cfg: Any, work_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       train_ds: SegDataset, val_ds: SegDataset | None, label_dir: Path | None) -> Any:
    """The mmseg ``Config`` for one training run: our model config + our data + the ``segment`` section."""
    import torch
    from mmengine.config import Config

    import wsss.mmseg_ext  # noqa: F401  (registers WSSSSegDataset, transforms, TVMobileNetV2, CPUFriendlyDDP)

    seg = cfg.get("segment", {})
    runtime = cfg.get("runtime", {})
    model_path = resolve_model_config(seg.get("model"))
    mm = Config.fromfile(str(model_path))
    num_classes = train_ds.num_classes
    if seg.get("num_classes") is not None and int(seg["num_classes"]) != num_classes:
        raise ValueError(f"segment.num_classes = {seg['num_classes']} but dataset {train_ds.root} has {num_classes} "
                         f"classes (background included): {train_ds.classes}")

    def opt(key: str, default: Any) -> Any:
        v = seg.get(key)
        return default if v is None else v

    crop = opt("crop_size", mm.get("crop_size", (512, 512)))
    crop = (int(crop), int(crop)) if isinstance(crop, (int, float)) else tuple(int(c) for c in crop)
    img_scale = tuple(opt("img_scale", (2048, 512)))
    iters = int(opt("iters", mm.train_cfg.get("max_iters", 20000)))
    val_interval = int(opt("val_interval", mm.train_cfg.get("val_interval", 2000)))
    ckpt_interval = int(opt("checkpoint_interval", mm.default_hooks.checkpoint.get("interval", 2000)))
    batch = int(opt("batch_size", 4))
    workers = int(opt("num_workers", 2))
    cuda = torch.cuda.is_available() and str(runtime.get("device", "auto")) != "cpu"
    world_size = world()[1]

    # ---- model: heads sized from our dataset, no download, BN instead of SyncBN where it cannot run
    mm.model.decode_head.num_classes = num_classes
    if mm.model.get("auxiliary_head"):
        mm.model.auxiliary_head.num_classes = num_classes
    mm.model.data_preprocessor.size = crop
    mm.data_preprocessor = mm.model.data_preprocessor
    backbone_init = apply_backbone_weights(mm, seg.get("pretrained", True), str(model_path))
    if not cuda:
        mm.model = _replace_type(mm.model.to_dict(), "SyncBN", "BN")
    check_num_classes(mm, num_classes, str(model_path))

    # ---- data
    meta = dict(classes=list(train_ds.classes))
    ratio = tuple(opt("ratio_range", (0.5, 2.0)))
    train_pipeline = [
        dict(type="WSSSLoadImage"),
        dict(type="WSSSLoadAnnotations"),
        dict(type="RandomResize", scale=img_scale, ratio_range=ratio, keep_ratio=True),
        dict(type="RandomCrop", crop_size=crop, cat_max_ratio=0.75),
        dict(type="RandomFlip", prob=0.5),
        dict(type="PhotoMetricDistortion"),
        dict(type="PackSegInputs"),
    ]
    test_pipeline = [
        dict(type="WSSSLoadImage"),
        dict(type="Resize", scale=img_scale, keep_ratio=True),
        dict(type="WSSSLoadAnnotations"),
        dict(type="PackSegInputs"),
    ]
    if label_dir is None:
        if not train_ds.has_masks:
            raise DatasetError(f"{train_ds.root}: segment.labels_from='gt' but split '{train_ds.split}' has no masks")
        lab_dir, lab_suffix = train_ds.mask_dir, train_ds.mask_suffix
    else:
        lab_dir, lab_suffix = label_dir, ".png"
    mm.train_dataloader = dict(
        batch_size=batch, num_workers=workers, persistent_workers=workers > 0,
        sampler=dict(type="InfiniteSampler", shuffle=True),
        dataset=dict(type="WSSSSegDataset", ids=list(train_ds.ids),
                     img_paths=[str(train_ds.image_path(i)) for i in train_ds.ids], label_dir=str(lab_dir),
                     label_suffix=lab_suffix,
                     background_ids=background_only_ids(train_ds, label_dir), classes=meta["classes"],
                     pipeline=train_pipeline))
    if val_ds is not None and val_interval > 0:
        mm.val_dataloader = dict(
            batch_size=1, num_workers=workers, persistent_workers=workers > 0,
            sampler=dict(type="DefaultSampler", shuffle=False),
            dataset=dict(type="WSSSSegDataset", ids=list(val_ds.ids),
                         img_paths=[str(val_ds.image_path(i)) for i in val_ds.ids], label_dir=str(val_ds.mask_dir),
                         label_suffix=val_ds.mask_suffix, classes=meta["classes"], pipeline=test_pipeline,
                         test_mode=True))
        mm.val_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
        mm.val_cfg = dict(type="ValLoop")
        mm.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=val_interval)
    else:
        mm.val_dataloader = None
        mm.val_evaluator = None
        mm.val_cfg = None
        mm.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters + 1)
    mm.test_dataloader = None
    mm.test_evaluator = None
    mm.test_cfg = None
    mm.test_pipeline = test_pipeline
    mm.img_scale = img_scale
    mm.crop_size = crop

    # ---- schedule
    if seg.get("lr") is not None:
        mm.optim_wrapper.optimizer.lr = float(seg["lr"])
    for sch in mm.param_scheduler if isinstance(mm.param_scheduler, list) else [mm.param_scheduler]:
        if sch.get("end") is not None:
            sch["end"] = iters
    amp = seg.get("amp")
    amp = bool(runtime.get("amp", False)) if amp is None else bool(amp)
    if amp and cuda:
        mm.optim_wrapper.type = "AmpOptimWrapper"
        mm.optim_wrapper.loss_scale = "dynamic"
    elif not cuda and precision_options(runtime)["cpu_bf16"]:
        mm.optim_wrapper.type = "CPUBF16OptimWrapper"  # bfloat16 autocast of the forward (wsss.mmseg_ext)
        check_cpu_bf16_hardware(log, "DeepLab's training")

    # ---- runtime: where, resume, hooks, logging, distributed
    mm.work_dir = str(Path(out_dir) / "mmseg")
    mm.resume = True  # from out_dir/mmseg; train() picks the checkpoint there (segmentation.train.resume_checkpoint)
    mm.load_from = None
    mm.launcher = "pytorch" if world_size > 1 else "none"
    mm.env_cfg = dict(cudnn_benchmark=cuda, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                      dist_cfg=dict(backend="nccl" if cuda else "gloo"))
    if world_size > 1 and not cuda:
        mm.model_wrapper_cfg = dict(type="CPUFriendlyDDP")
    mm.randomness = dict(seed=int(runtime.get("seed", 0)))
    mm.custom_hooks = [*mm.get("custom_hooks", []), dict(type="ResumeRNGHook"),  # exact resume (wsss.mmseg_ext)
                       dict(type="SpaceToBatchHook")]  # faster dilated convs on CPU (wsss.models.atrous)
    if bool(runtime.get("channels_last", True)) and world_size == 1:
        mm.custom_hooks.append(dict(type="ChannelsLastHook"))
    mm.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=ckpt_interval,
                                       max_keep_ckpts=int(opt("max_keep_ckpts", 2)), save_last=True)
    mm.default_hooks.logger = dict(type="LoggerHook", interval=int(opt("log_interval", 50)),
                                   log_metric_by_epoch=False)
    vis = [dict(type="LocalVisBackend")]
    if opt("tensorboard", True):
        try:
            import tensorboard  # noqa: F401

            vis.append(dict(type="TensorboardVisBackend"))
        except ImportError:
            log.warning("segment.tensorboard: tensorboard is not installed; scalars go to vis_data/scalars.json only")
    mm.visualizer = dict(type="SegLocalVisualizer", vis_backends=vis, name="visualizer")
    mm.custom_imports = dict(imports=["wsss.mmseg_ext"], allow_failed_imports=False)
    mm.custom_hooks = [*(mm.get("custom_hooks") or []), dict(type="ConsoleProgressHook")]
    mm.wsss = dict(model_config=str(model_path), labels=str(lab_dir), train_split=train_ds.split,
                   val_split=val_ds.split if val_ds is not None else None, num_classes=num_classes,
                   backbone_init=backbone_init)
    return mm


def dump_config(mm: Any, path: str | os.PathLike) -> None:
    """Write the mmseg config atomically (``Config.dump``)."""
    with atomic_path(path, suffix=".py") as tmp:
        mm.dump(str(tmp))
