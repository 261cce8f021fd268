"""DeepLab in MMSegmentation 1.x on pseudo-labels: build the mmseg config from ours, train, evaluate, export.

The mmseg model configs in ``configs/segment/`` inherit from the configs shipped inside the mmseg package
(``_base_ = 'mmseg::deeplabv3plus/...'``: mmengine resolves ``mmseg::`` to ``<mmseg>/.mim/configs`` at run time),
so nothing of mmseg is copied. :func:`build_mmseg_config` then replaces the data part with our dataset
(``WSSSSegDataset``: training images of the split + pseudo-label folder; validation on the val split's ground
truth), sets ``num_classes`` from our dataset, and applies the ``segment`` section (iterations, crop, lr ...).
Training runs mmengine's ``Runner`` (checkpoints, ``resume=True``, TensorBoard scalars, ``launcher='pytorch'``
under torchrun). Evaluation fuses softmax over scales and flips itself (the same arithmetic as mmseg's
``SegTTAModel``), optionally applies the DeepLab dense CRF, writes palette PNGs and scores them with mmseg's
``IoUMetric``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cache import atomic_path, atomic_write_text
from pipeline.compat import QuietStackMessages, trusted_checkpoints
from pipeline.distributed import shutdown_distributed, world
from wsss.datasets import DatasetError, SegDataset, image_size, out_of_range_values, read_label_png

log = logging.getLogger("wsss.segmentation")

REPO_ROOT = Path(__file__).resolve().parents[1]
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


# ------------------------------------------------------------------------------------------- input checks
def check_label_folder(ds: SegDataset, label_dir: Path, suffix: str = ".png", check_sizes: bool = True) -> None:
    """Every image of the split has a label PNG in ``label_dir`` with values in [0, C) or 255, of the image's size."""
    if not label_dir.is_dir():
        raise DatasetError(f"{label_dir}: label folder does not exist (segment.labels_from)")
    missing = [i for i in ds.ids if not (label_dir / f"{i}{suffix}").is_file()]
    if missing:
        raise DatasetError(f"{label_dir}: {len(missing)} of {len(ds.ids)} images of split '{ds.split}' have no "
                           f"label file, e.g. {missing[:20]}")
    bad: list[str] = []
    wrong_size: list[str] = []
    for i in ds.ids:
        path = label_dir / f"{i}{suffix}"
        lab = read_label_png(path)
        out = out_of_range_values(lab, ds.num_classes)
        if out:
            bad.append(f"{path.name}: {out[:5]}")
        if check_sizes:
            h, w = image_size(ds.image_path(i))
            if tuple(lab.shape) != (h, w):
                wrong_size.append(f"{path.name}: {lab.shape[1]}x{lab.shape[0]} vs image {w}x{h}")
    if bad:
        raise DatasetError(f"{label_dir}: {len(bad)} label file(s) have values outside the class range "
                           f"0..{ds.num_classes - 1} (255 = ignore): {bad[:10]}")
    if wrong_size:
        raise DatasetError(f"{label_dir}: {len(wrong_size)} label file(s) differ in size from their image: "
                           f"{wrong_size[:10]}")


def check_num_classes(mm_cfg: Any, num_classes: int, where: str) -> None:
    """The heads of an mmseg config must predict ``num_classes`` (the dataset's, background included)."""
    for head in ("decode_head", "auxiliary_head"):
        h = mm_cfg.model.get(head)
        heads = h if isinstance(h, (list, tuple)) else [h] if h else []
        for one in heads:
            if one.get("num_classes") not in (None, num_classes):
                raise ValueError(f"{where}: model.{head}.num_classes = {one['num_classes']} but the dataset has "
                                 f"{num_classes} classes (background included)")


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
        dataset=dict(type="WSSSSegDataset", ids=list(train_ds.ids), img_dir=str(train_ds.img_dir),
                     img_suffix=train_ds.img_suffix, label_dir=str(lab_dir), label_suffix=lab_suffix,
                     classes=meta["classes"], pipeline=train_pipeline))
    if val_ds is not None and val_interval > 0:
        mm.val_dataloader = dict(
            batch_size=1, num_workers=workers, persistent_workers=workers > 0,
            sampler=dict(type="DefaultSampler", shuffle=False),
            dataset=dict(type="WSSSSegDataset", ids=list(val_ds.ids), img_dir=str(val_ds.img_dir),
                         img_suffix=val_ds.img_suffix, label_dir=str(val_ds.mask_dir),
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

    # ---- runtime: where, resume, hooks, logging, distributed
    mm.work_dir = str(Path(out_dir) / "mmseg")
    mm.resume = True
    mm.load_from = None
    mm.launcher = "pytorch" if world_size > 1 else "none"
    mm.env_cfg = dict(cudnn_benchmark=cuda, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                      dist_cfg=dict(backend="nccl" if cuda else "gloo"))
    if world_size > 1 and not cuda:
        mm.model_wrapper_cfg = dict(type="CPUFriendlyDDP")
    mm.randomness = dict(seed=int(runtime.get("seed", 0)))
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


# ------------------------------------------------------------------------------------------- training
def _init_cpu_distributed(backend: str) -> bool:
    """mmengine's pytorch launcher calls ``torch.cuda.set_device`` (fails on CPU torch): start gloo ourselves.

    Returns True when this call created the group (then ``train`` ends it when done)."""
    import torch.distributed as dist

    if world()[1] > 1 and not dist.is_initialized():
        dist.init_process_group(backend=backend)
        return True
    return False


def _loss_history(runner: Any) -> list[float]:
    try:
        values, _ = runner.message_hub.get_scalar("train/loss").data
        return [float(v) for v in values]
    except KeyError:
        return []


_DEVNULL: Any = None


@contextlib.contextmanager
def mmengine_console_quiet(enabled: bool = True) -> Iterator[None]:
    """Keep mmengine's console output off the console while its Runner is built and trains.

    mmengine's logger binds its console handler to ``sys.stdout`` when the Runner builds it, then logs the
    environment, the whole config and the hook table there (~550 lines on the demo): ``sys.stdout`` points to
    os.devnull meanwhile. mmengine's own file log (``mmseg/<timestamp>/<timestamp>.log``) keeps everything; the
    caller adds a WARNING handler on stderr so that mmengine's warnings still show."""
    if not enabled:
        yield
        return
    global _DEVNULL
    if _DEVNULL is None:  # stays open: mmengine's logger outlives the Runner and keeps writing to its stream
        _DEVNULL = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    real, sys.stdout = sys.stdout, _DEVNULL
    try:
        yield
    finally:
        sys.stdout = real


def train(cfg: Any, work_dir: str | os.PathLike, out_dir: str | os.PathLike,
          train_ds: SegDataset, val_ds: SegDataset | None,
          logger: logging.Logger | None = None) -> dict[str, Any]:
    """Check the inputs, train with mmengine's Runner (resuming from ``out_dir/mmseg``), export model + config.

    Writes ``out_dir/mmseg_config.py`` (the config used) and ``out_dir/model.pth`` (weights + dataset meta of
    the last iteration). Returns training metrics (losses, s/iter, val mIoU when validated).
    """
    import torch
    from mmengine.runner import Runner

    lg = logger or log
    seg = cfg.get("segment", {})
    out_dir = Path(out_dir)
    label_dir = label_dir_for(seg, work_dir)
    if label_dir is not None and seg.get("check_labels", True):
        check_label_folder(train_ds, label_dir)
    mm = build_mmseg_config(cfg, work_dir, out_dir, train_ds, val_ds, label_dir)
    rank, world_size = world()
    if rank == 0:
        dump_config(mm, out_dir / "mmseg_config.py")
    if mm.wsss.backbone_init.startswith("random"):
        lg.warning("segment: backbone from RANDOM init (segment.pretrained=False)")
    lg.info("segment: %s on %d images of '%s' with labels from %s; %d iterations, batch %d, crop %s",
            Path(mm.wsss.model_config).name, len(train_ds), train_ds.split, mm.wsss.labels,
            mm.train_cfg.max_iters, mm.train_dataloader.batch_size, mm.crop_size)
    owns_group = mm.launcher == "pytorch" and mm.env_cfg.dist_cfg.backend == "gloo" and _init_cpu_distributed("gloo")
    # mmengine's visualizer is a per-name singleton: a second run in this process must not write into the first's dir
    mm.visualizer.name = f"wsss_segment_{os.getpid()}_{time.time_ns()}"
    with mmengine_console_quiet(os.environ.get("WSSS_VERBOSE") != "1"):
        runner = Runner.from_cfg(mm)
        warnings_to_console = logging.StreamHandler(sys.stderr)
        warnings_to_console.setLevel(logging.WARNING)
        warnings_to_console.addFilter(QuietStackMessages())
        runner.logger.addHandler(warnings_to_console)
        t0 = time.perf_counter()
        try:
            with trusted_checkpoints():  # mmengine resumes from its own checkpoint in our work dir
                runner.train()
        except BaseException:
            if owns_group:
                shutdown_distributed(synchronize=False)
            raise
        finally:
            runner.logger.removeHandler(warnings_to_console)
    lg.info("segment: mmengine's full log is in %s", Path(runner.log_dir))
    elapsed = time.perf_counter() - t0
    losses = _loss_history(runner)
    done_iters = int(runner.iter)
    metrics: dict[str, Any] = dict(iters=done_iters, labels_from=str(seg.get("labels_from", "random_walk")),
                                   label_dir=mm.wsss.labels, train_images=len(train_ds),
                                   model_config=mm.wsss.model_config, backbone_init=mm.wsss.backbone_init,
                                   train_seconds=round(elapsed, 1),
                                   world_size=world_size)
    if losses:
        k = max(1, min(10, len(losses) // 4))
        metrics.update(loss_first=float(np.mean(losses[:k])), loss_last=float(np.mean(losses[-k:])),
                       loss_history=[round(v, 5) for v in losses[-200:]])
    try:
        t = runner.message_hub.get_scalar("train/time").data[0]
        metrics["s_per_iter"] = float(np.mean(t[-50:]))
    except KeyError:
        pass
    try:
        metrics["val_mIoU"] = float(runner.message_hub.get_scalar("val/mIoU").current())
    except KeyError:
        pass
    if rank == 0:
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        meta = dict(dataset_meta=dict(classes=list(train_ds.classes)), iter=done_iters,
                    num_classes=train_ds.num_classes)
        with atomic_path(out_dir / "model.pth", suffix=".pth") as tmp:
            torch.save(dict(state_dict=state, meta=meta), tmp)
    if owns_group:
        shutdown_distributed()
    return metrics


# ------------------------------------------------------------------------------------------- inference
def load_model(out_dir: str | os.PathLike, device: Any = "cpu", num_classes: int | None = None) -> Any:
    """The trained segmentor from a segment stage's ``mmseg_config.py`` + ``model.pth`` (eval mode)."""
    import torch
    from mmengine.config import Config
    from mmengine.model.utils import revert_sync_batchnorm
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS

    import wsss.mmseg_ext  # noqa: F401

    out_dir = Path(out_dir)
    cfg_path, ckpt = out_dir / "mmseg_config.py", out_dir / "model.pth"
    for p in (cfg_path, ckpt):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing (run the segment stage first)")
    mm = Config.fromfile(str(cfg_path))
    if num_classes is not None:
        check_num_classes(mm, num_classes, str(cfg_path))
    mm.model.pretrained = None
    mm.model.train_cfg = None
    if mm.model.backbone.get("type") == "TVMobileNetV2":
        mm.model.backbone.tv_checkpoint = None  # the trained weights come from model.pth
    mm.model.backbone.init_cfg = None
    from mmengine.registry import init_default_scope

    init_default_scope("mmseg")
    model = MODELS.build(mm.model)
    if not torch.cuda.is_available() or torch.device(device).type == "cpu":
        model = revert_sync_batchnorm(model)
    load_checkpoint(model, str(ckpt), map_location="cpu", strict=True, logger="silent")
    model.cfg = mm
    return model.to(device).eval()


def _rescale_size(h: int, w: int, scale: Sequence[int]) -> tuple[int, int]:
    """mmcv ``rescale_size`` with keep_ratio: fit (long, short) = scale; returns (h, w)."""
    long_e, short_e = max(scale), min(scale)
    f = min(long_e / max(h, w), short_e / min(h, w))
    return int(h * f + 0.5), int(w * f + 0.5)


def predict_probs(model: Any, image: np.ndarray, img_scale: Sequence[int], scales: Sequence[float] = (1.0,),
                  flip: bool = False) -> np.ndarray:
    """Class probabilities (K, H, W) for an RGB image: per scale (relative to the single-scale size ``img_scale``)
    and flip, logits resized to the image and flipped back, softmax, averaged (mmseg ``SegTTAModel`` arithmetic;
    with one scale and no flip, exactly mmseg's single-scale test)."""
    import cv2
    import torch
    import torch.nn.functional as F

    h0, w0 = image.shape[:2]
    bh, bw = _rescale_size(h0, w0, img_scale)
    dev = next(model.parameters()).device
    prep = model.data_preprocessor
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    total = None
    n = 0
    with torch.no_grad():
        for s in scales:
            h, w = max(1, int(bh * s + 0.5)), max(1, int(bw * s + 0.5))
            img = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR) if (h, w) != (h0, w0) else bgr
            x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(dev)
            x = prep(dict(inputs=[x], data_samples=None), False)["inputs"]
            if flip:
                x = torch.cat([x, x.flip(-1)])
            metas = [dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w))] * x.shape[0]
            logits = model.inference(x, metas)[:, :, :h, :w]
            logits = F.interpolate(logits, size=(h0, w0), mode="bilinear", align_corners=False)
            if flip:
                logits[1] = logits[1].flip(-1)
            p = logits.softmax(dim=1).sum(0)
            total = p if total is None else total + p
            n += logits.shape[0]
    return (total / n).float().cpu().numpy()


def iou_metric(pairs: Callable[[], Any], classes: Sequence[str]) -> dict[str, Any]:
    """mmseg's ``IoUMetric`` over (pred, gt) uint8 maps: mIoU, aAcc, mAcc and per-class IoU (percent)."""
    import torch
    from mmseg.evaluation import IoUMetric

    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = dict(classes=list(classes))
    for pred, gt in pairs():
        metric.process({}, [dict(pred_sem_seg=dict(data=torch.from_numpy(pred.astype(np.int64))[None]),
                                 gt_sem_seg=dict(data=torch.from_numpy(gt.astype(np.int64))[None]))])
    if not metric.results:
        raise ValueError("iou_metric: no images")
    results = tuple(zip(*metric.results))
    areas = [sum(r) for r in results]
    ret = IoUMetric.total_area_to_metrics(*areas, ["mIoU"], metric.nan_to_num, metric.beta)
    iou = ret["IoU"]
    return dict(mIoU=float(np.nanmean(iou) * 100), aAcc=float(ret["aAcc"] * 100),
                mAcc=float(np.nanmean(ret["Acc"]) * 100), num_images=len(metric.results),
                per_class={c: (None if np.isnan(v) else float(v * 100)) for c, v in zip(classes, iou)})


def format_iou_table(results: Mapping[str, Mapping[str, Any]], classes: Sequence[str]) -> str:
    """Per-class IoU table, one column per evaluated variant."""
    names = list(results)
    w = max(len(c) for c in list(classes) + ["mIoU"])
    cw = [max(8, len(n)) for n in names]
    lines = [f"{'class':<{w}} | " + " | ".join(f"{n:>{c}}" for n, c in zip(names, cw))]
    lines.append("-" * len(lines[0]))

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for cls in classes:
        row = [f"{f(results[n]['per_class'][cls]):>{c}}" for n, c in zip(names, cw)]
        lines.append(f"{cls:<{w}} | " + " | ".join(row))
    lines.append("-" * len(lines[0]))
    lines.append(f"{'mIoU':<{w}} | " + " | ".join(f"{f(results[n]['mIoU']):>{c}}" for n, c in zip(names, cw)))
    return "\n".join(lines)


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_text(path, text if text.endswith("\n") else text + "\n")
