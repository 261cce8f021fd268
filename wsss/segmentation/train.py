"""Train DeepLab with mmengine's Runner (checkpoints, resume, TensorBoard, torchrun); console kept quiet."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cache import atomic_path
from pipeline.compat import QuietStackMessages, trusted_checkpoints
from pipeline.distributed import shutdown_distributed, world
from wsss.datasets import SegDataset

from .checks import check_label_folder
from .mmseg_config import background_only_ids, build_mmseg_config, dump_config, label_dir_for

log = logging.getLogger("wsss.segmentation")


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


def resume_checkpoint(mm_work_dir: Path, logger: logging.Logger | None = None) -> str | None:
    """The checkpoint an interrupted training resumes from: the one mmengine's ``last_checkpoint`` names, taken by
    its file name from ``mm_work_dir``. mmengine writes an absolute path there, which still points into the old
    directory after a work dir was moved (resume would fail) or copied (it would resume the original's run).
    None when there is nothing to resume (training starts over)."""
    saved = mm_work_dir / "last_checkpoint"
    if not saved.is_file():
        return None
    name = Path(saved.read_text(encoding="utf-8").strip()).name
    here = mm_work_dir / name
    if name and here.is_file():
        return str(here)
    (logger or log).warning("segment: %s names %s, which is not in %s: training starts over", saved, name or "nothing",
                            mm_work_dir)
    return None


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
    negatives = background_only_ids(train_ds, label_dir)
    if label_dir is not None and seg.get("check_labels", True):
        check_label_folder(train_ds, label_dir, ids=[i for i in train_ds.ids if i not in set(negatives)])
    mm = build_mmseg_config(cfg, work_dir, out_dir, train_ds, val_ds, label_dir)
    rank, world_size = world()
    if rank == 0:
        dump_config(mm, out_dir / "mmseg_config.py")
    resume_from = resume_checkpoint(Path(mm.work_dir), lg)
    mm.resume, mm.load_from = resume_from is not None, resume_from  # resume from this directory's checkpoint only
    if mm.wsss.backbone_init.startswith("random"):
        lg.warning("segment: backbone from RANDOM init (segment.pretrained=False)")
    lg.info("segment: %s on %d images of '%s' (%d of them background-only) with labels from %s; %d iterations, "
            "batch %d, crop %s", Path(mm.wsss.model_config).name, len(train_ds), train_ds.split, len(negatives),
            mm.wsss.labels,
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
                                   train_seconds=round(elapsed, 1), world_size=world_size,
                                   resumed_from=Path(resume_from).name if resume_from else None)
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
